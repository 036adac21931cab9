//! Says hello, shows its capability-free view of the kernel, and exits.
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    sdk::println!("hello: hello from a user task in its own address space");
    0
}
