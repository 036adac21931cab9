//! Keeps running while other tasks fault around it, then exits 0.
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    // Long enough (~240M instructions) to span many time slices on any host,
    // so the faulting tasks run while it is still busy.
    apps::busy("bystander", 6, 20_000_000)
}
