//! Reads address 0: the kernel must end this task with a page fault report.
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    sdk::println!("fault-null: reading address 0");
    // SAFETY: deliberately invalid — this task exists to fault.
    let v = unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) };
    sdk::println!("fault-null: still alive after reading {}", v);
    0
}
