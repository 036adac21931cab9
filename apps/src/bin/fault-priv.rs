//! Executes a privileged instruction (`hlt`): the kernel must end this task
//! with a general-protection report.
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    sdk::println!("fault-priv: executing hlt");
    // SAFETY: deliberately privileged — this task exists to fault.
    unsafe { core::arch::asm!("hlt") };
    sdk::println!("fault-priv: still alive after hlt");
    0
}
