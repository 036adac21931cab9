//! A busy task for the preemption scenario: works without ever yielding
//! and prints after each round.
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    apps::busy("busy-b", 8, 10_000_000)
}
