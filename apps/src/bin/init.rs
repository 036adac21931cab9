//! The demo system's init task.
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    sdk::println!("init: hello from user space");
    0
}
