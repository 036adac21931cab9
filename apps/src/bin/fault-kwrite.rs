//! Writes kernel memory: the kernel must end this task with a page fault.
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    sdk::println!("fault-kwrite: writing the kernel image");
    let target = 0xFFFF_FFFF_8010_6000u64 as *mut u64;
    // SAFETY: deliberately invalid — this task exists to fault.
    unsafe { core::ptr::write_volatile(target, 0xdead) };
    sdk::println!("fault-kwrite: still alive after writing kernel memory");
    0
}
