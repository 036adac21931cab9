//! Scenario "frames": after tasks that map memory, run threads, fault and
//! exit have all ended, the free-frame count (and capability slots, tasks,
//! threads) return exactly to their values before they started.
#![no_std]
#![no_main]

use sdk::abi::exit;
use sdk::println;

sdk::entry!(main);

fn main() -> u64 {
    let mut c = apps::Checker::new("frames");
    let before = apps::resources();
    println!("frames: before: {:?}", before);
    for round in 0..3 {
        let hog = apps::spawn(&mut c, "memhog");
        let threads = apps::spawn(&mut c, "threads");
        let null = apps::spawn(&mut c, "fault-null");
        let hello = apps::spawn(&mut c, "hello");
        apps::wait_expect(&mut c, "memhog", hog, (exit::EXITED, 0));
        apps::wait_expect(&mut c, "threads", threads, (exit::EXITED, 0));
        apps::wait_expect(&mut c, "fault-null", null, (exit::FAULTED, 14));
        apps::wait_expect(&mut c, "hello", hello, (exit::EXITED, 0));
        let after = apps::resources();
        println!("frames: after round {}: {:?}", round, after);
        c.check("every frame, slot, task and thread came back", before == after);
    }
    c.finish()
}
