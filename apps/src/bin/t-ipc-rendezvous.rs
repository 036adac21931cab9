//! Scenario "ipc-rendezvous": a synchronous endpoint is a rendezvous. A
//! sender (a second thread of this task, at its priority) stays blocked in
//! its send — however often the main thread yields or is preempted — until
//! a receiver takes the message; a receiver that waits first stays blocked
//! until a sender comes; a caller stays blocked past the delivery of its
//! request until the reply. Short (register) and long (copied) messages
//! arrive intact with the sender's badge. Blocked senders are served by
//! priority, first come first served within a priority.
#![no_std]
#![no_main]

use apps::{Checker, Job, JobOp};
use core::sync::atomic::Ordering::Acquire;
use sdk::abi::{rights, Counter};
use sdk::sys;
use sdk::syscall_api::*;

sdk::entry!(main);

/// This task's priority in the manifest.
const PRIO: u8 = 10;
const SEND_BADGE: u64 = 0x5E4D;

static JOB: Job = Job::new();
static JOBS: [Job; 3] = [Job::new(), Job::new(), Job::new()];

/// Yields `yields` times and spins across `ticks` timer ticks; true if
/// `job` stayed unfinished all along.
fn stays_blocked(job: &Job, yields: u32, ticks: u64) -> bool {
    let mut blocked = true;
    for _ in 0..yields {
        sys::yield_now();
        blocked &= !job.done.load(Acquire);
    }
    let start = sys::counter(Counter::Ticks);
    while sys::counter(Counter::Ticks) < start + ticks {
        apps::spin(1000);
        blocked &= !job.done.load(Acquire);
    }
    blocked
}

fn main() -> u64 {
    let mut c = Checker::new("ipc-rendezvous");
    let before = apps::resources();
    let eps_before = apps::endpoints();
    let ep = c.expect_ok("create a sync endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    let tx = c.expect_ok("mint a badged send token", sys::cap_mint(ep, rights::WRITE, SEND_BADGE));
    let (mut msgs, mut bytes, mut calls) = (0u64, 0u64, 0u64);

    // The sender comes first.
    for (len, seed) in [(48usize, 1u64), (3000, 2)] {
        JOB.set(JobOp::Send, tx, len, 0, seed);
        let w = JOB.start(&mut c, PRIO);
        c.check("the sender thread ran", apps::wait_for(&JOB.started, 500));
        c.check(
            "the sender stays blocked across 200 yields and 5 timer ticks while nobody receives",
            stays_blocked(&JOB, 200, 5),
        );
        let mut buf = [0u8; 4096];
        let m = c.expect_ok("receive", sys_ipc_receive(ep, &mut buf));
        c.check("the message arrived whole", m.len == len && apps::pattern_mismatch(&buf[..len], seed).is_none());
        c.check("with the sender's badge and no reply token", m.badge == SEND_BADGE && m.reply == 0);
        c.check("then the sender's send returns", apps::wait_for(&JOB.done, 500));
        c.check("successfully", JOB.result() == Ok(len));
        w.join();
        (msgs, bytes) = (msgs + 1, bytes + len as u64);
    }

    // The receiver comes first.
    for (len, seed, timeout) in [(48usize, 3u64, Timeout::Never), (3000, 4, Timeout::NonBlocking)] {
        JOB.set(JobOp::Receive, ep, 0, 4096, seed);
        let w = JOB.start(&mut c, PRIO);
        c.check("the receiver thread ran", apps::wait_for(&JOB.started, 500));
        c.check(
            "the receiver stays blocked across 200 yields and 5 timer ticks while nobody sends",
            stays_blocked(&JOB, 200, 5),
        );
        let mut msg = [0u8; 4096];
        apps::fill_pattern(&mut msg[..len], seed);
        c.expect_ok("send to the waiting receiver", sys_ipc_send_timeout(tx, &msg[..len], timeout));
        c.check("then the receiver's receive returns", apps::wait_for(&JOB.done, 500));
        c.check("with the whole message", JOB.result() == Ok(len) && JOB.intact.load(Acquire));
        c.check("and the sender's badge", JOB.badge.load(Acquire) == SEND_BADGE);
        w.join();
        (msgs, bytes) = (msgs + 1, bytes + len as u64);
    }
    c.check(
        "a non-blocking send finds no receiver once it has gone",
        sys_ipc_send_timeout(tx, b"x", Timeout::NonBlocking) == Err(sdk::abi::Error::WouldBlock),
    );

    // A call: blocked until the reply, not just until its request is taken.
    for (len, seed) in [(32usize, 5u64), (2000, 7)] {
        JOB.set(JobOp::Call, tx, len, 4096, seed);
        let w = JOB.start(&mut c, PRIO);
        c.check("the caller thread ran", apps::wait_for(&JOB.started, 500));
        c.check("the caller stays blocked while no server receives", stays_blocked(&JOB, 100, 3));
        let mut buf = [0u8; 4096];
        let m = c.expect_ok("receive the call", sys_ipc_receive(ep, &mut buf));
        c.check("the request arrived whole", m.len == len && apps::pattern_mismatch(&buf[..len], seed).is_none());
        c.check("with a reply token and the badge", m.reply != 0 && m.badge == SEND_BADGE);
        c.check("the caller stays blocked after its request was taken", stays_blocked(&JOB, 100, 3));
        let mut reply = [0u8; 4096];
        apps::fill_pattern(&mut reply[..len], seed + 1);
        c.expect_ok("reply", sys_ipc_reply(m.reply, &reply[..len]));
        c.check("then the call returns", apps::wait_for(&JOB.done, 500));
        c.check("with the whole reply", JOB.result() == Ok(len) && JOB.intact.load(Acquire));
        w.join();
        (msgs, bytes, calls) = (msgs + 1, bytes + len as u64, calls + 1);
    }

    // The server waits first; the caller, at a lower priority, runs only
    // once the server has blocked (this is the call fast path's case).
    JOB.set(JobOp::Call, tx, 16, 64, 9);
    let w = JOB.start(&mut c, PRIO - 1);
    let mut buf = [0u8; 64];
    let m = c.expect_ok("receive while the caller has not run yet", sys_ipc_receive(ep, &mut buf));
    c.check("the call arrived", m.len == 16 && m.reply != 0 && apps::pattern_mismatch(&buf[..16], 9).is_none());
    let mut reply = [0u8; 16];
    apps::fill_pattern(&mut reply, 10);
    c.expect_ok("reply", sys_ipc_reply(m.reply, &reply));
    w.join();
    c.check("the lower-priority caller got the reply", JOB.result() == Ok(16) && JOB.intact.load(Acquire));
    (msgs, bytes, calls) = (msgs + 1, bytes + 16, calls + 1);

    // Blocked senders are served by priority, first come first served within one.
    let order = [(3u8, 10usize), (6, 20), (6, 30)];
    let mut workers = [None, None, None];
    for (i, &(prio, len)) in order.iter().enumerate() {
        JOBS[i].set(JobOp::Send, tx, len, 0, 100 + i as u64);
        workers[i] = Some(JOBS[i].start(&mut c, prio));
        apps::sleep_us(30_000);
        c.check(
            "the lower-priority sender blocked in its send",
            JOBS[i].started.load(Acquire) && !JOBS[i].done.load(Acquire),
        );
    }
    let mut got = [0usize; 3];
    for g in got.iter_mut() {
        let m = sys_ipc_receive_timeout(ep, &mut buf, Timeout::NonBlocking);
        *g = m.map_or(0, |m| m.len);
    }
    sdk::println!("ipc-rendezvous: senders of priority 3, 6, 6 (in that order) delivered lengths {:?}", got);
    c.check("priority 6 first (in arrival order), then priority 3", got == [20, 30, 10]);
    for w in workers.into_iter().flatten() {
        w.join();
    }
    c.check("all three sends succeeded", JOBS.iter().zip(order).all(|(j, (_, len))| j.result() == Ok(len)));
    (msgs, bytes) = (msgs + 3, bytes + 60);

    let stats = sys_endpoint_stats(ep);
    sdk::println!("ipc-rendezvous: endpoint stats {:?}, expected {:?}", stats, (msgs, bytes, calls));
    c.check("the endpoint counted every message, byte and call", stats == Ok((msgs, bytes, calls)));
    c.expect_ok("delete the endpoint", sys_endpoint_delete(ep));
    c.check("the badged token went with it", sys::cap_inspect(tx) == Err(sdk::abi::Error::NotFound));
    apps::check_clean(&mut c, before, eps_before);
    c.finish()
}
