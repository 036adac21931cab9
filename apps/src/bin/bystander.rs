//! Keeps running while other tasks fault around it, then exits 0.
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    apps::busy("bystander", 6, 2_000_000)
}
