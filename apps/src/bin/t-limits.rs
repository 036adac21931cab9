//! Scenario "limits": what a task can make the kernel keep on its heap is
//! bounded, and running into a bound is an error, not a crash: task records
//! (64, dead ones still named by a token included), asynchronous queue
//! slots (8,192 over all endpoints) and capability slots (256 per task).
//! After each, everything comes back.
#![no_std]
#![no_main]

use sdk::abi::{exit, Error};
use sdk::syscall_api::{sys_endpoint_create, sys_endpoint_delete, EndpointKind};
use sdk::{println, sys};

sdk::entry!(main);

fn main() -> u64 {
    let mut c = apps::Checker::new("limits");
    let before = apps::resources();

    // Task records: spawn and keep the tokens (a dead task's record stays
    // while a token names it).
    let mut tokens = [0u64; 64];
    let mut spawned = 0;
    let refused = loop {
        match sys::task_spawn("hello") {
            Ok(t) if spawned < tokens.len() => {
                tokens[spawned] = t;
                spawned += 1;
            }
            Ok(t) => {
                let _ = sys::task_wait(t);
                let _ = sys::cap_delete(t);
                break None;
            }
            Err(e) => break Some(e),
        }
    };
    println!("limits: {} tasks spawned before the bound", spawned);
    c.check("the 64th task record is refused with OutOfMemory", spawned == 63 && refused == Some(Error::OutOfMemory));
    for &t in &tokens[..spawned] {
        let _ = sys::task_wait(t);
        let _ = sys::cap_delete(t);
    }
    let again = c.expect_ok("spawning works again once the tokens are gone", sys::task_spawn("hello"));
    apps::wait_expect(&mut c, "hello", again, (exit::EXITED, 0));

    // Queue slots: 32 endpoints of 256 slots reach the bound of 8,192.
    let mut eps = [0u64; 32];
    for e in eps.iter_mut() {
        *e = sys_endpoint_create(EndpointKind::Async(256), 64).unwrap_or(0);
    }
    c.check("32 queues of 256 short messages fit", eps.iter().all(|&e| e != 0));
    c.expect_err(
        "one more queue slot beyond 8,192",
        sys_endpoint_create(EndpointKind::Async(1), 64),
        Error::OutOfMemory,
    );
    for e in eps {
        let _ = sys_endpoint_delete(e);
    }
    let q = c.expect_ok("queues can be created again", sys_endpoint_create(EndpointKind::Async(8), 64));
    c.expect_ok("and deleted", sys_endpoint_delete(q));

    // Capability slots: 256 per task.
    let mut sync = [0u64; 256];
    let mut made = 0;
    let full = loop {
        match sys_endpoint_create(EndpointKind::Sync, 0) {
            Ok(e) if made < sync.len() => {
                sync[made] = e;
                made += 1;
            }
            Ok(e) => {
                let _ = sys_endpoint_delete(e);
                break None;
            }
            Err(e) => break Some(e),
        }
    };
    let base = before.cap_slots as usize;
    println!("limits: {} endpoints created before the table was full", made);
    c.check("a full capability table refuses with OutOfMemory", full == Some(Error::OutOfMemory) && made + base <= 256);
    for &e in &sync[..made] {
        let _ = sys_endpoint_delete(e);
    }
    let after = apps::resources();
    c.check("frames, slots, tasks and threads returned to their start values", before == after);
    c.finish()
}
