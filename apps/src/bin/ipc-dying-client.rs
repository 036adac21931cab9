//! A client of the "ipc-lifecycle" scenario that dies while its threads
//! wait in IPC. Capabilities: 0 an endpoint to call, 1 a control endpoint,
//! 2 an endpoint to send to, 3 an endpoint to receive from. One thread
//! blocks sending 100 bytes on 2, one blocks receiving on 3, one calls 0
//! with "call from a dying client"; the main thread then waits for "die"
//! on 1 and ends the task, with all three still blocked.
#![no_std]
#![no_main]

use apps::{Checker, Job, JobOp};
use sdk::println;
use sdk::syscall_api::sys_ipc_receive;

sdk::entry!(main);

/// This task's priority in the manifest.
const PRIO: u8 = 5;

static CALL: Job = Job::new();
static SEND: Job = Job::new();
static RECV: Job = Job::new();

fn main() -> u64 {
    let mut c = Checker::new("ipc-dying-client");
    let (caps, n) = sdk::startup_caps();
    if n != 4 {
        println!("ipc-dying-client: FAILED: wanted four endpoints, got {}", n);
        return 1;
    }
    SEND.set(JobOp::Send, caps[2], 100, 0, 1);
    RECV.set(JobOp::Receive, caps[3], 0, 256, 2);
    let _ = SEND.start(&mut c, PRIO);
    let _ = RECV.start(&mut c, PRIO);
    apps::settle();
    CALL.set(JobOp::Call, caps[0], 16, 64, 3);
    let _ = CALL.start(&mut c, PRIO);
    let mut buf = [0u8; 8];
    match sys_ipc_receive(caps[1], &mut buf) {
        Ok(m) if &buf[..m.len] == b"die" => {
            let waiting = [&SEND, &RECV, &CALL].iter().all(|j| j.started.load(core::sync::atomic::Ordering::Acquire))
                && ![&SEND, &RECV, &CALL].iter().any(|j| j.done.load(core::sync::atomic::Ordering::Acquire));
            println!("ipc-dying-client: dying with a sender, a receiver and a caller blocked: {}", waiting);
            if waiting {
                0
            } else {
                1
            }
        }
        r => {
            println!("ipc-dying-client: FAILED: control message: {:?}", r);
            1
        }
    }
}
