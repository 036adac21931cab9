//! Scenario "ipc-lifecycle": IPC waits end cleanly when the other side or
//! the endpoint goes away. (a) Revoking a parent token wakes a receiver
//! (and a sender) blocked through a derived token with NotFound. (b) A
//! server that exits or faults while holding a call: the caller gets
//! PeerGone. (c) A server that deletes the reply token: PeerGone. (d)
//! Deleting an endpoint wakes every receiver waiting on it with NotFound,
//! (e) and every sender and caller blocked on it. (f) A client task that
//! dies while its threads wait in IPC leaves no ghost sender or receiver
//! behind, and a reply to its call gets PeerGone and uses up the reply
//! right, (g) which can then never reach a later caller. (h) An endpoint
//! whose last capability is deleted is gone, and its waiters get NotFound.
#![no_std]
#![no_main]

use apps::{Checker, Job, JobOp};
use core::sync::atomic::Ordering::Acquire;
use sdk::abi::{exit, kind, rights, Counter, Error};
use sdk::syscall_api::*;
use sdk::{println, sys};

sdk::entry!(main);

/// This task's priority in the manifest.
const PRIO: u8 = 10;

static JOBS: [Job; 3] = [Job::new(), Job::new(), Job::new()];

/// Checks that `job` started and is still blocked.
fn blocked(c: &mut Checker, what: &str, job: &Job) {
    c.check(what, job.started.load(Acquire) && !job.done.load(Acquire));
}

/// Waits for `job` to finish and checks its result.
fn ends_with(c: &mut Checker, what: &str, job: &Job, want: Error) {
    let done = apps::wait_for(&job.done, 500);
    let r = job.result();
    if !done || r != Err(want) {
        println!("ipc-lifecycle: {}: done {}, result {:?}", what, done, r);
    }
    c.check(what, done && r == Err(want));
}

fn main() -> u64 {
    let mut c = Checker::new("ipc-lifecycle");
    let before = apps::resources();
    let eps_before = apps::endpoints();

    revoke_wakes_waiters(&mut c);
    server_dies_during_call(&mut c);
    server_deletes_reply(&mut c);
    delete_wakes_receivers(&mut c);
    delete_wakes_senders(&mut c);
    client_dies(&mut c);
    last_token_deleted(&mut c);

    apps::check_clean(&mut c, before, eps_before);
    c.finish()
}

/// (a) Revoke the parent: waits through derived tokens end with NotFound.
fn revoke_wakes_waiters(c: &mut Checker) {
    let ep = c.expect_ok("create an endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    let child = c.expect_ok("mint a child token", sys::cap_mint(ep, rights::READ | rights::WRITE, 0xC1));
    JOBS[0].set(JobOp::Receive, child, 0, 64, 1);
    let w = JOBS[0].start(c, PRIO);
    apps::settle();
    blocked(c, "a thread blocks receiving through the child token", &JOBS[0]);
    c.check("revoking the parent deletes the child", sys::cap_revoke(ep) == Ok(1));
    ends_with(c, "the blocked receiver wakes with NotFound", &JOBS[0], Error::NotFound);
    w.join();

    let child = c.expect_ok("mint another child token", sys::cap_mint(ep, rights::WRITE, 0xC2));
    JOBS[0].set(JobOp::Send, child, 100, 0, 2);
    let w = JOBS[0].start(c, PRIO);
    apps::settle();
    blocked(c, "a thread blocks sending 100 bytes through the child token", &JOBS[0]);
    c.check("revoking the parent deletes the child", sys::cap_revoke(ep) == Ok(1));
    ends_with(c, "the blocked sender wakes with NotFound", &JOBS[0], Error::NotFound);
    w.join();
    c.expect_err(
        "its message went with it",
        sys_ipc_receive_timeout(ep, &mut [0u8; 128], Timeout::NonBlocking),
        Error::WouldBlock,
    );
    c.expect_ok("delete the endpoint", sys_endpoint_delete(ep));
}

/// (b) The server exits or faults while it holds a call.
fn server_dies_during_call(c: &mut Checker) {
    let ep = c.expect_ok("create an endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    for (how, status) in [("exit", (exit::EXITED, 0)), ("fault", (exit::FAULTED, 14))] {
        let server = match sys::task_spawn_with("ipc-dying-server", &[ep]) {
            Ok(t) => t,
            Err(e) => {
                println!("ipc-lifecycle: FAILED: spawning ipc-dying-server: {:?}", e);
                c.check("spawn ipc-dying-server", false);
                continue;
            }
        };
        let mut reply = [0u8; 64];
        let r = sys_ipc_call(ep, how.as_bytes(), &mut reply);
        println!("ipc-lifecycle: call to a server that will {}: {:?}", how, r);
        c.check("the caller of a server that dies holding the call gets PeerGone", r == Err(Error::PeerGone));
        apps::wait_expect(c, "ipc-dying-server", server, status);
    }
    c.expect_err(
        "no receiver is left behind on the endpoint",
        sys_ipc_send_timeout(ep, b"x", Timeout::NonBlocking),
        Error::WouldBlock,
    );
    c.expect_ok("delete the endpoint", sys_endpoint_delete(ep));
}

/// (c) The server deletes the reply token instead of replying.
fn server_deletes_reply(c: &mut Checker) {
    let ep = c.expect_ok("create an endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    JOBS[0].set(JobOp::Call, ep, 20, 64, 3);
    let w = JOBS[0].start(c, PRIO);
    let mut buf = [0u8; 64];
    let m = c.expect_ok("receive a call", sys_ipc_receive(ep, &mut buf));
    c.check("with a reply token", m.reply != 0 && sys::cap_inspect(m.reply).map(|x| x.0) == Ok(kind::REPLY));
    apps::settle();
    blocked(c, "the caller waits for the reply", &JOBS[0]);
    c.expect_ok("delete the reply token", sys::cap_delete(m.reply));
    ends_with(c, "the caller wakes with PeerGone", &JOBS[0], Error::PeerGone);
    c.expect_err("the deleted reply token no longer replies", sys_ipc_reply(m.reply, b"late"), Error::NotFound);
    w.join();
    c.expect_ok("delete the endpoint", sys_endpoint_delete(ep));
}

/// (d) Deleting the endpoint wakes both receivers waiting on it.
fn delete_wakes_receivers(c: &mut Checker) {
    let ep = c.expect_ok("create an endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    let other = c.expect_ok("copy its token", sys::cap_copy(ep));
    JOBS[0].set(JobOp::Receive, ep, 0, 64, 4);
    JOBS[1].set(JobOp::Receive, other, 0, 4096, 5);
    let w0 = JOBS[0].start(c, PRIO);
    let w1 = JOBS[1].start(c, PRIO);
    apps::settle();
    blocked(c, "the first receiver waits", &JOBS[0]);
    blocked(c, "the second receiver waits", &JOBS[1]);
    let eps = apps::endpoints();
    c.expect_ok("delete the endpoint", sys_endpoint_delete(ep));
    c.check("the endpoint counter went down by one", apps::endpoints() == eps - 1);
    ends_with(c, "the first receiver wakes with NotFound", &JOBS[0], Error::NotFound);
    ends_with(c, "the second receiver wakes with NotFound", &JOBS[1], Error::NotFound);
    c.expect_err("the copied token is gone too", sys::cap_inspect(other), Error::NotFound);
    w0.join();
    w1.join();

    // The same for an asynchronous endpoint.
    let aq = c.expect_ok("create an async endpoint", sys_endpoint_create(EndpointKind::Async(2), 128));
    JOBS[0].set(JobOp::Receive, aq, 0, 128, 6);
    let w = JOBS[0].start(c, PRIO);
    apps::settle();
    blocked(c, "a receiver waits on the empty queue", &JOBS[0]);
    c.expect_ok("delete the async endpoint", sys_endpoint_delete(aq));
    ends_with(c, "it wakes with NotFound", &JOBS[0], Error::NotFound);
    w.join();
}

/// (e) Deleting the endpoint wakes its blocked senders and callers.
fn delete_wakes_senders(c: &mut Checker) {
    let ep = c.expect_ok("create an endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    JOBS[0].set(JobOp::Send, ep, 3000, 0, 7);
    JOBS[1].set(JobOp::Send, ep, 48, 0, 8);
    JOBS[2].set(JobOp::Call, ep, 16, 64, 9);
    let ws = [JOBS[0].start(c, PRIO), JOBS[1].start(c, PRIO), JOBS[2].start(c, PRIO)];
    apps::settle();
    for (i, what) in ["a long sender waits", "a short sender waits", "a caller waits"].iter().enumerate() {
        blocked(c, what, &JOBS[i]);
    }
    c.check("the long message is first in line", needed_size(ep) == Ok(3000));
    c.expect_ok("delete the endpoint", sys_endpoint_delete(ep));
    ends_with(c, "the long sender wakes with NotFound", &JOBS[0], Error::NotFound);
    ends_with(c, "the short sender wakes with NotFound", &JOBS[1], Error::NotFound);
    ends_with(c, "the caller wakes with NotFound", &JOBS[2], Error::NotFound);
    for w in ws {
        w.join();
    }

    let aq = c.expect_ok("create an async endpoint for 1 message", sys_endpoint_create(EndpointKind::Async(1), 64));
    c.expect_ok("fill its queue", sys_ipc_send_timeout(aq, b"first", Timeout::NonBlocking));
    JOBS[0].set(JobOp::Send, aq, 32, 0, 10);
    let w = JOBS[0].start(c, PRIO);
    apps::settle();
    blocked(c, "a sender waits for room", &JOBS[0]);
    c.expect_ok("delete the async endpoint with a message queued", sys_endpoint_delete(aq));
    ends_with(c, "the sender wakes with NotFound", &JOBS[0], Error::NotFound);
    w.join();
}

/// (f) A client task dies while one of its threads waits for a reply,
/// one waits to send and one waits to receive. (g) The reply right of the
/// dead caller's call never reaches another caller.
fn client_dies(c: &mut Checker) {
    let eps: [u64; 4] = core::array::from_fn(|_| sys_endpoint_create(EndpointKind::Sync, 0).unwrap_or(0));
    c.check("create four endpoints", eps.iter().all(|&e| e != 0));
    let [ep, ctl, ghost_send, ghost_recv] = eps;
    let slots0 = sys::counter(Counter::CapSlots);
    let client = match sys::task_spawn_with("ipc-dying-client", &eps) {
        Ok(t) => t,
        Err(e) => {
            println!("ipc-lifecycle: FAILED: spawning ipc-dying-client: {:?}", e);
            c.check("spawn ipc-dying-client", false);
            return;
        }
    };
    let mut buf = [0u8; 64];
    let m = c.expect_ok("receive the client's call", sys_ipc_receive(ep, &mut buf));
    c.check("the request arrived", m.len == 16 && m.reply != 0 && apps::pattern_mismatch(&buf[..16], 3).is_none());
    c.check("the client's sender is blocked with its 100 bytes", needed_size(ghost_send) == Ok(100));
    c.expect_ok("tell the client to die", sys_ipc_send(ctl, b"die"));
    apps::wait_expect(c, "ipc-dying-client", client, (exit::EXITED, 0));

    c.expect_err(
        "the dead client's blocked sender is gone",
        sys_ipc_receive_timeout(ghost_send, &mut [0u8; 128], Timeout::NonBlocking),
        Error::WouldBlock,
    );
    c.expect_err(
        "the dead client's blocked receiver is gone",
        sys_ipc_send_timeout(ghost_recv, b"anyone?", Timeout::NonBlocking),
        Error::WouldBlock,
    );
    let stale = m.reply;
    c.expect_err("a reply to the dead caller", sys_ipc_reply(stale, b"too late"), Error::PeerGone);
    c.expect_err("uses up the reply right", sys::cap_inspect(stale), Error::NotFound);
    c.check("no capability slot is left behind", sys::counter(Counter::CapSlots) == slots0);

    // (g) A new call: the old reply token must not answer it.
    JOBS[0].set(JobOp::Call, ep, 8, 64, 11);
    let w = JOBS[0].start(c, PRIO);
    let m = c.expect_ok("receive a new call", sys_ipc_receive(ep, &mut buf));
    let r = sys_ipc_reply(stale, &[0xEE; 12]);
    println!("ipc-lifecycle: reply through the dead caller's token while another call waits: {:?}", r);
    c.check("the dead caller's reply token does not answer the new call", r.is_err());
    apps::settle();
    blocked(c, "the new caller still waits", &JOBS[0]);
    let mut reply = [0u8; 12];
    apps::fill_pattern(&mut reply, 12);
    c.expect_ok("reply through the new call's token", sys_ipc_reply(m.reply, &reply));
    c.check(
        "the new caller gets that reply",
        apps::wait_for(&JOBS[0].done, 500) && JOBS[0].result() == Ok(12) && JOBS[0].intact.load(Acquire),
    );
    w.join();
    let _ = sys::cap_delete(stale);
    for e in eps {
        c.expect_ok("delete an endpoint", sys_endpoint_delete(e));
    }
}

/// (h) Deleting the last capability that names an endpoint destroys it.
fn last_token_deleted(c: &mut Checker) {
    let eps = apps::endpoints();
    let ep = c.expect_ok("create an endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    let copy = c.expect_ok("copy its token", sys::cap_copy(ep));
    JOBS[0].set(JobOp::Receive, copy, 0, 64, 13);
    let w = JOBS[0].start(c, PRIO);
    apps::settle();
    blocked(c, "a receiver waits through the copy", &JOBS[0]);
    c.expect_ok("delete the original token", sys::cap_delete(ep));
    c.check("the endpoint lives on while the copy names it", apps::endpoints() == eps + 1);
    apps::settle();
    blocked(c, "the receiver still waits", &JOBS[0]);
    c.expect_ok("delete the last token, which the receiver waits through", sys::cap_delete(copy));
    ends_with(c, "the receiver wakes with NotFound", &JOBS[0], Error::NotFound);
    c.check("the endpoint is gone", apps::endpoints() == eps);
    w.join();

    let aq = c
        .expect_ok("create an async endpoint with 64 KiB messages", sys_endpoint_create(EndpointKind::Async(4), 65536));
    let free = sys::counter(Counter::FreeFrames);
    c.expect_ok("queue a message", sys_ipc_send_timeout(aq, &[1u8; 100], Timeout::NonBlocking));
    c.expect_ok("delete its only token", sys::cap_delete(aq));
    c.check("the endpoint is gone", apps::endpoints() == eps);
    c.check("its 64 frames of queue storage came back", sys::counter(Counter::FreeFrames) == free + 64);
}
