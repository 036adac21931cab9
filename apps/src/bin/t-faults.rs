//! Scenario "faults": a task that reads address 0, one that writes kernel
//! memory and one that executes a privileged instruction are each ended
//! with a report, while a bystander keeps running and exits normally; a
//! task that panics is ended by its SDK panic handler with code 101.
#![no_std]
#![no_main]

use sdk::abi::exit;

sdk::entry!(main);

fn main() -> u64 {
    let mut c = apps::Checker::new("faults");
    let before = apps::resources();
    let bystander = apps::spawn(&mut c, "bystander");
    let null = apps::spawn(&mut c, "fault-null");
    let kwrite = apps::spawn(&mut c, "fault-kwrite");
    let privileged = apps::spawn(&mut c, "fault-priv");
    apps::wait_expect(&mut c, "fault-null", null, (exit::FAULTED, 14));
    apps::wait_expect(&mut c, "fault-kwrite", kwrite, (exit::FAULTED, 14));
    apps::wait_expect(&mut c, "fault-priv", privileged, (exit::FAULTED, 13));
    let panicker = apps::spawn(&mut c, "panicker");
    apps::wait_expect(&mut c, "panicker", panicker, (exit::EXITED, exit::PANIC_CODE));
    apps::wait_expect(&mut c, "bystander", bystander, (exit::EXITED, 0));
    let after = apps::resources();
    c.check("frames, slots, tasks and threads returned to their start values", before == after);
    c.finish()
}
