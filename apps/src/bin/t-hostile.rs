//! Scenario "hostile": the boot image carries malformed and hostile ELF
//! files; the kernel refused each at boot (the test reads its messages), the
//! rest of the system started, and spawning one now is refused too.
#![no_std]
#![no_main]

use sdk::abi::{exit, Error};
use sdk::sys;

sdk::entry!(main);

const HOSTILE: [&str; 7] =
    ["bad-kaddr", "bad-pastend", "bad-overlap", "bad-huge", "bad-trunc", "bad-wx", "bad-machine"];

fn main() -> u64 {
    let mut c = apps::Checker::new("hostile");
    let before = apps::resources();
    for name in HOSTILE {
        c.expect_err(name, sys::task_spawn(name), Error::InvalidArgument);
    }
    let after_refusals = apps::resources();
    c.check("refusals leaked nothing", before == after_refusals);
    let ok = apps::spawn(&mut c, "hello");
    apps::wait_expect(&mut c, "hello", ok, (exit::EXITED, 0));
    let after = apps::resources();
    c.check("frames, slots, tasks and threads returned to their start values", before == after);
    c.finish()
}
