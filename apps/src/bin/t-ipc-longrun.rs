//! Scenario "ipc-longrun": 150,000 calls in a row between two threads, each
//! consuming a reply right, with nothing else going on. Every call must
//! succeed and the kernel must stay within its memory: used-up reply rights
//! may leave nothing behind (an earlier kernel kept a record of each and ran
//! out of heap after about 131,000 calls).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use sdk::println;
use sdk::syscall_api::{sys_endpoint_create, sys_endpoint_delete, sys_ipc_call, sys_ipc_reply_receive, EndpointKind};

sdk::entry!(main);

const CALLS: u64 = 150_000;
static EP: AtomicU64 = AtomicU64::new(0);

/// Replies to every call with the request's first byte plus one.
extern "C" fn server(_: u64) -> ! {
    let ep = EP.load(Ordering::Acquire);
    let mut buf = [0u8; 8];
    let mut reply = 0;
    let mut answer = [0u8; 1];
    loop {
        match sys_ipc_reply_receive(reply, &answer, ep, &mut buf) {
            Ok(m) => {
                reply = m.reply;
                answer[0] = buf[0].wrapping_add(1);
            }
            Err(_) => sdk::sys::thread_exit(0),
        }
    }
}

fn main() -> u64 {
    let mut c = apps::Checker::new("longrun");
    let before = apps::resources();
    let ep = c.expect_ok("create endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    EP.store(ep, Ordering::Release);
    let worker = apps::start_thread(&mut c, server, 0, 10);
    let mut bad = 0u64;
    let mut out = [0u8; 8];
    for i in 0..CALLS {
        let req = [i as u8];
        match sys_ipc_call(ep, &req, &mut out) {
            Ok(1) if out[0] == (i as u8).wrapping_add(1) => {}
            r => {
                bad += 1;
                if bad < 5 {
                    println!("longrun: call {} returned {:?}", i, r);
                }
            }
        }
    }
    println!("longrun: {} calls, {} bad", CALLS, bad);
    c.check("every call got its reply", bad == 0);
    // Deleting the endpoint ends the server's wait with NotFound; it exits.
    c.expect_ok("delete the endpoint", sys_endpoint_delete(ep));
    worker.join();
    let after = apps::resources();
    c.check("frames, slots, tasks and threads returned to their start values", before == after);
    c.finish()
}
