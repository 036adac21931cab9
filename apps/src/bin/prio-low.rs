//! A busy task for the priority scenario.
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    apps::busy("prio-low", 3, 2_000_000)
}
