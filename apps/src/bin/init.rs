//! The demo system's init task: starts the demo tasks, waits for each, and
//! prints what the kernel counters say before and after.
#![no_std]
#![no_main]

use sdk::abi::Counter;
use sdk::{println, sys};

sdk::entry!(main);

fn main() -> u64 {
    println!("init: Iris demo system starting");
    let before = apps::resources();
    let mut c = apps::Checker::new("init");
    for name in ["hello", "threads"] {
        let t = apps::spawn(&mut c, name);
        apps::wait_expect(&mut c, name, t, (sdk::abi::exit::EXITED, 0));
    }
    let after = apps::resources();
    println!(
        "init: {} timer ticks, {} context switches; free frames {} before, {} after",
        sys::counter(Counter::Ticks),
        sys::counter(Counter::Switches),
        before.frames,
        after.frames
    );
    c.check("every frame and capability slot came back", before == after);
    c.finish()
}
