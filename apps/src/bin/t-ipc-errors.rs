//! Scenario "ipc-errors": every error the IPC calls can return, triggered
//! through the system calls and checked — InvalidArgument, PermissionDenied,
//! NotFound, WouldBlock, Timeout and BufferTooSmall (the message stays
//! pending and a second receive gets it intact); a call on an asynchronous
//! endpoint, a reply token used twice, capabilities sent without GRANT.
//! PeerGone is the subject of "ipc-lifecycle".
#![no_std]
#![no_main]

use apps::{Checker, Job, JobOp};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use sdk::abi::{exit, kind, map, rights, token, Counter, Error};
use sdk::println;
use sdk::sys;
use sdk::syscall_api::*;

sdk::entry!(main);

/// This task's priority in the manifest (helper threads run at it too).
const PRIO: u8 = 10;

static JOB: Job = Job::new();

extern "C" fn idle_thread(_: u64) -> ! {
    sys::thread_exit(0)
}

/// A byte slice over `len` bytes at `addr`, which need not be mapped: only
/// its address and length are ever used (the kernel reads or writes it).
fn raw_slice(addr: u64, len: usize) -> &'static mut [u8] {
    // SAFETY: the slice is never read or written by this program; it only
    // carries an address and a length to the kernel, which checks both.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) }
}

fn main() -> u64 {
    let mut c = Checker::new("ipc-errors");
    let before = apps::resources();
    let eps_before = apps::endpoints();

    let ep = c.expect_ok("create a sync endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    let aq = c.expect_ok("create an async endpoint (4 x 256 bytes)", sys_endpoint_create(EndpointKind::Async(4), 256));
    c.check(
        "a new endpoint token is an endpoint with READ|WRITE|GRANT|REVOKE|DELETE",
        sys::cap_inspect(ep)
            == Ok((kind::ENDPOINT, rights::READ | rights::WRITE | rights::GRANT | rights::REVOKE | rights::DELETE, 0)),
    );
    c.check("the endpoint counter went up by two", apps::endpoints() == eps_before + 2);

    invalid_argument(&mut c, ep, aq);
    permission_denied(&mut c, ep, aq);
    not_found(&mut c);
    would_block(&mut c, ep, aq);
    timeout(&mut c, ep, aq);
    buffer_too_small(&mut c, ep, aq);
    reply_errors(&mut c, ep, aq);
    table_full(&mut c, ep, aq);
    short_reply_errors(&mut c, ep);

    c.expect_ok("delete the sync endpoint", sys_endpoint_delete(ep));
    c.expect_ok("delete the async endpoint", sys_endpoint_delete(aq));
    apps::check_clean(&mut c, before, eps_before);
    c.finish()
}

fn invalid_argument(c: &mut Checker, ep: u64, aq: u64) {
    c.expect_err(
        "send of an empty message",
        sys_ipc_send_timeout(ep, &[], Timeout::NonBlocking),
        Error::InvalidArgument,
    );
    c.expect_err(
        "send of an empty message (async)",
        sys_ipc_send_timeout(aq, &[], Timeout::NonBlocking),
        Error::InvalidArgument,
    );
    let small = c.expect_ok("create an endpoint with max_msg 128", sys_endpoint_create(EndpointKind::Sync, 128));
    let big = [0x5Au8; 129];
    c.expect_err(
        "send of 129 bytes to a 128-byte endpoint",
        sys_ipc_send_timeout(small, &big, Timeout::Micros(30_000)),
        Error::InvalidArgument,
    );
    c.expect_err(
        "call with 129 bytes to a 128-byte endpoint",
        sys_ipc_call_timeout(small, &big, &mut [], Timeout::Micros(30_000)),
        Error::InvalidArgument,
    );
    c.expect_err(
        "send of 257 bytes to a 256-byte async endpoint",
        sys_ipc_send_timeout(aq, &[1u8; 257], Timeout::NonBlocking),
        Error::InvalidArgument,
    );
    c.expect_ok("delete the 128-byte endpoint", sys_endpoint_delete(small));

    // Long messages (> 64 bytes) are read from the sender's memory: it must be mapped.
    let page = c.expect_ok("map a page", sys::mem_map(4096, map::WRITE));
    let gone = raw_slice(page + 100, 200);
    c.expect_ok("unmap it again", sys::mem_unmap(page, 4096));
    c.expect_err(
        "send of 200 bytes from an unmapped buffer",
        sys_ipc_send_timeout(ep, gone, Timeout::Micros(30_000)),
        Error::InvalidArgument,
    );
    c.expect_err(
        "send of 200 bytes from an unmapped buffer (async)",
        sys_ipc_send_timeout(aq, gone, Timeout::NonBlocking),
        Error::InvalidArgument,
    );
    c.expect_err(
        "call with 200 bytes from an unmapped buffer",
        sys_ipc_call_timeout(ep, gone, &mut [], Timeout::Micros(30_000)),
        Error::InvalidArgument,
    );
    c.expect_err(
        "send of 200 bytes from kernel memory",
        sys_ipc_send_timeout(aq, raw_slice(0xFFFF_FFFF_8010_0000, 200), Timeout::NonBlocking),
        Error::InvalidArgument,
    );
    c.check("nothing was queued by the refused sends", needed_size(aq) == Err(Error::WouldBlock));

    // Receiving a long message into memory that cannot take it.
    let mut msg = [0u8; 200];
    apps::fill_pattern(&mut msg, 11);
    c.expect_ok("queue a 200-byte message", sys_ipc_send_timeout(aq, &msg, Timeout::NonBlocking));
    c.expect_err(
        "receive of 200 bytes into an unmapped buffer",
        sys_ipc_receive_timeout(aq, gone, Timeout::NonBlocking),
        Error::InvalidArgument,
    );
    let ro = c.expect_ok("map a read-only page", sys::mem_map(4096, 0));
    c.expect_err(
        "receive of 200 bytes into a read-only buffer",
        sys_ipc_receive_timeout(aq, raw_slice(ro, 256), Timeout::NonBlocking),
        Error::InvalidArgument,
    );
    c.expect_err(
        "receive of 200 bytes into kernel memory",
        sys_ipc_receive_timeout(aq, raw_slice(0xFFFF_FFFF_8010_0000, 256), Timeout::NonBlocking),
        Error::InvalidArgument,
    );
    c.expect_ok("unmap the read-only page", sys::mem_unmap(ro, 4096));
    let mut buf = [0u8; 256];
    let m = c.expect_ok(
        "the message stayed queued: a good buffer receives it",
        sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking),
    );
    c.check("it arrived intact", m.len == 200 && buf[..200] == msg);

    // A receiver that blocked with an unmapped buffer is told when a long message comes.
    let page = c.expect_ok("map a page for a blocked receiver", sys::mem_map(4096, map::WRITE));
    c.expect_ok("unmap it", sys::mem_unmap(page, 4096));
    RECV_INTO.store(page, Ordering::Relaxed);
    RECV_EP.store(ep, Ordering::Relaxed);
    let w = apps::start_thread(c, receive_into_unmapped, 0, PRIO);
    apps::settle();
    c.check("the receiver waits", !RECV_DONE.load(Ordering::Acquire));
    c.expect_err(
        "a 200-byte send to a receiver whose buffer is unmapped, with no other receiver",
        sys_ipc_send_timeout(ep, &msg, Timeout::NonBlocking),
        Error::WouldBlock,
    );
    w.join();
    c.check(
        "the blocked receiver got InvalidArgument",
        RECV_RESULT.load(Ordering::Relaxed) == Error::InvalidArgument as u64,
    );

    // Malformed register conventions the SDK never produces (raw syscalls).
    let send = sdk::abi::Sys::IpcSend as u64;
    c.expect_err(
        "a send naming 5 capabilities (raw)",
        sys::syscall(sdk::abi::ipc::encode(send, 5, 8, 0), [aq, 0, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    c.expect_err(
        "a short send of 60 bytes with 1 capability: no room (raw)",
        sys::syscall(sdk::abi::ipc::encode(send, 1, 60, 0), [aq, 0, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    c.expect_err(
        "call on an async endpoint",
        sys_ipc_call_timeout(aq, b"hi", &mut [], Timeout::NonBlocking),
        Error::InvalidArgument,
    );
    c.expect_err(
        "call on an async endpoint (blocking)",
        sys_ipc_call(aq, b"hi", &mut [0u8; 8]),
        Error::InvalidArgument,
    );

    // Endpoint creation arguments.
    c.expect_err(
        "async endpoint with a queue of 0",
        sys_endpoint_create(EndpointKind::Async(0), 64),
        Error::InvalidArgument,
    );
    c.expect_err(
        "async endpoint with a queue of 257",
        sys_endpoint_create(EndpointKind::Async(257), 64),
        Error::InvalidArgument,
    );
    c.expect_err(
        "endpoint with a maximum message over 1 MiB",
        sys_endpoint_create(EndpointKind::Sync, (1 << 20) + 1),
        Error::InvalidArgument,
    );
    c.expect_err(
        "async endpoint with 256 x 64 KiB of queue",
        sys_endpoint_create(EndpointKind::Async(256), 64 * 1024),
        Error::InvalidArgument,
    );
    c.expect_err(
        "unknown endpoint kind",
        sys::syscall(sdk::abi::Sys::EndpointCreate as u64, [7, 1, 64, 0, 0, 0]),
        Error::InvalidArgument,
    );
}

static RECV_INTO: AtomicU64 = AtomicU64::new(0);
static RECV_EP: AtomicU64 = AtomicU64::new(0);
static RECV_RESULT: AtomicU64 = AtomicU64::new(0);
static RECV_DONE: AtomicBool = AtomicBool::new(false);

extern "C" fn receive_into_unmapped(_: u64) -> ! {
    use Ordering::{Relaxed, Release};
    let buf = raw_slice(RECV_INTO.load(Relaxed), 1024);
    let r = sys_ipc_receive(RECV_EP.load(Relaxed), buf);
    RECV_RESULT.store(
        match r {
            Ok(_) => 0,
            Err(e) => e as u64,
        },
        Relaxed,
    );
    RECV_DONE.store(true, Release);
    sys::thread_exit(0)
}

fn permission_denied(c: &mut Checker, ep: u64, aq: u64) {
    let read_only = c.expect_ok("mint a READ-only token", sys::cap_mint(ep, rights::READ, 1));
    let write_only = c.expect_ok("mint a WRITE-only token", sys::cap_mint(ep, rights::WRITE, 2));
    c.expect_err(
        "send with a READ-only token",
        sys_ipc_send_timeout(read_only, b"x", Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err(
        "call with a READ-only token",
        sys_ipc_call_timeout(read_only, b"x", &mut [], Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err(
        "receive with a WRITE-only token",
        sys_ipc_receive_timeout(write_only, &mut [0u8; 8], Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err(
        "blocking receive with a WRITE-only token",
        sys_ipc_receive(write_only, &mut [0u8; 8]),
        Error::PermissionDenied,
    );
    c.expect_err("stats with a WRITE-only token", sys_endpoint_stats(write_only), Error::PermissionDenied);
    c.expect_err("delete with a token lacking DELETE", sys_endpoint_delete(read_only), Error::PermissionDenied);
    c.expect_ok("the endpoint survived", sys_endpoint_stats(ep));

    // Tokens of the wrong kind.
    let stack = c.expect_ok("map a stack", sys::mem_map(16384, map::WRITE));
    let t = c.expect_ok("create a thread", sys::thread_create(idle_thread, stack + 16384, 0, PRIO));
    c.expect_err(
        "send with a thread token",
        sys_ipc_send_timeout(t, b"x", Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err(
        "receive with a thread token",
        sys_ipc_receive_timeout(t, &mut [0u8; 8], Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err("delete a thread as an endpoint", sys_endpoint_delete(t), Error::PermissionDenied);
    c.expect_err("reply with a thread token", sys_ipc_reply(t, b"x"), Error::NotFound);
    let task = apps::spawn(c, "hello");
    c.expect_err(
        "send with a task token",
        sys_ipc_send_timeout(task, b"x", Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err(
        "call with a task token",
        sys_ipc_call_timeout(task, b"x", &mut [], Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err("reply with an endpoint token", sys_ipc_reply(ep, b"x"), Error::NotFound);
    apps::wait_expect(c, "hello", task, (exit::EXITED, 0));
    c.expect_ok("start the thread so that it ends", sys::thread_start(t));
    while sys::cap_inspect(t).is_ok() {
        sys::yield_now();
    }
    c.expect_ok("unmap its stack", sys::mem_unmap(stack, 16384));

    // Capabilities travel only with GRANT: on the endpoint token and on each capability.
    let no_grant_ep = c.expect_ok("mint a WRITE-only async token", sys::cap_mint(aq, rights::WRITE, 3));
    let passable =
        c.expect_ok("mint a passable copy of the sync token", sys::cap_mint(ep, rights::READ | rights::GRANT, 4));
    c.expect_err(
        "send a capability through a token without GRANT",
        sys_ipc_send_caps(no_grant_ep, b"cap", &[passable], Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err(
        "send a capability that lacks GRANT",
        sys_ipc_send_caps(aq, b"cap", &[read_only], Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err(
        "send a never-issued capability",
        sys_ipc_send_caps(aq, b"cap", &[token::make(200, 9, kind::ENDPOINT)], Timeout::NonBlocking),
        Error::NotFound,
    );
    c.check("nothing was queued by the refused sends", needed_size(aq) == Err(Error::WouldBlock));
    let slots = sys::counter(Counter::CapSlots);
    c.expect_ok(
        "send a capability with GRANT on both",
        sys_ipc_send_caps(aq, b"cap", &[passable], Timeout::NonBlocking),
    );
    let mut buf = [0u8; 64];
    let m = c.expect_ok("receive it", sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking));
    c.check("one capability came with 3 bytes", m.ncaps == 1 && m.len == 3 && &buf[..3] == b"cap");
    c.check(
        "it names the endpoint with the sender's rights and badge",
        sys::cap_inspect(m.caps[0]) == Ok((kind::ENDPOINT, rights::READ | rights::GRANT, 4)),
    );
    c.check("the transfer used exactly one new slot", sys::counter(Counter::CapSlots) == slots + 1);
    for (what, t) in [
        ("received capability", m.caps[0]),
        ("passable token", passable),
        ("WRITE-only async token", no_grant_ep),
        ("READ-only token", read_only),
        ("WRITE-only token", write_only),
    ] {
        c.expect_ok(what, sys::cap_delete(t));
    }
}

fn not_found(c: &mut Checker) {
    let bogus = token::make(200, 7, kind::ENDPOINT);
    c.expect_err(
        "send with a never-issued token",
        sys_ipc_send_timeout(bogus, b"x", Timeout::NonBlocking),
        Error::NotFound,
    );
    c.expect_err(
        "receive with a never-issued token",
        sys_ipc_receive_timeout(bogus, &mut [0u8; 8], Timeout::NonBlocking),
        Error::NotFound,
    );
    c.expect_err(
        "reply with a never-issued token",
        sys_ipc_reply(token::make(201, 3, kind::REPLY), b"x"),
        Error::NotFound,
    );
    c.expect_err("stats with a never-issued token", sys_endpoint_stats(bogus), Error::NotFound);

    let parent = c.expect_ok("create an endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    let child = c.expect_ok("mint a child token", sys::cap_mint(parent, rights::READ | rights::WRITE, 5));
    let grandchild = c.expect_ok("copy the child", sys::cap_copy(parent));
    c.check("revoke the parent token", sys::cap_revoke(parent) == Ok(2));
    c.expect_err(
        "send through the revoked child",
        sys_ipc_send_timeout(child, b"x", Timeout::NonBlocking),
        Error::NotFound,
    );
    c.expect_err(
        "receive through the revoked child",
        sys_ipc_receive_timeout(grandchild, &mut [0u8; 8], Timeout::NonBlocking),
        Error::NotFound,
    );
    c.expect_err(
        "the parent still works (nobody waits)",
        sys_ipc_send_timeout(parent, b"x", Timeout::NonBlocking),
        Error::WouldBlock,
    );

    let copy = c.expect_ok("copy the parent", sys::cap_copy(parent));
    let eps = apps::endpoints();
    c.expect_ok("delete the endpoint", sys_endpoint_delete(parent));
    c.check("the endpoint counter went down by one", apps::endpoints() == eps - 1);
    c.expect_err(
        "send on the deleted endpoint",
        sys_ipc_send_timeout(parent, b"x", Timeout::NonBlocking),
        Error::NotFound,
    );
    c.expect_err(
        "receive through a copy of the deleted endpoint",
        sys_ipc_receive_timeout(copy, &mut [0u8; 8], Timeout::NonBlocking),
        Error::NotFound,
    );
    c.expect_err("blocking send on the deleted endpoint", sys_ipc_send(parent, b"x"), Error::NotFound);
    c.expect_err("delete it twice", sys_endpoint_delete(parent), Error::NotFound);
    c.expect_err("the copy is gone with it", sys::cap_inspect(copy), Error::NotFound);
}

fn would_block(c: &mut Checker, ep: u64, aq: u64) {
    c.expect_err(
        "non-blocking send with no receiver",
        sys_ipc_send_timeout(ep, b"x", Timeout::NonBlocking),
        Error::WouldBlock,
    );
    c.expect_err(
        "non-blocking long send with no receiver",
        sys_ipc_send_timeout(ep, &[7u8; 300], Timeout::NonBlocking),
        Error::WouldBlock,
    );
    c.expect_err(
        "non-blocking call with no server",
        sys_ipc_call_timeout(ep, b"x", &mut [0u8; 8], Timeout::NonBlocking),
        Error::WouldBlock,
    );
    c.expect_err(
        "non-blocking receive with nothing sent (sync)",
        sys_ipc_receive_timeout(ep, &mut [0u8; 8], Timeout::NonBlocking),
        Error::WouldBlock,
    );
    c.expect_err(
        "non-blocking receive with nothing queued (async)",
        sys_ipc_receive_timeout(aq, &mut [0u8; 8], Timeout::NonBlocking),
        Error::WouldBlock,
    );
    c.expect_err("needed_size with nothing pending", needed_size(aq), Error::WouldBlock);
    for i in 0..4u8 {
        c.expect_ok("fill the async queue", sys_ipc_send_timeout(aq, &[i; 8], Timeout::NonBlocking));
    }
    c.expect_err(
        "non-blocking send to a full queue",
        sys_ipc_send_timeout(aq, b"x", Timeout::NonBlocking),
        Error::WouldBlock,
    );
    let mut buf = [0u8; 8];
    for i in 0..4u8 {
        let m = sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking);
        c.check("drain the queue in order", m.map(|m| m.len) == Ok(8) && buf == [i; 8]);
    }
}

fn timeout(c: &mut Checker, ep: u64, aq: u64) {
    let elapsed = |f: &mut dyn FnMut() -> bool| {
        let t0 = sys::counter(Counter::Ticks);
        let ok = f();
        (ok, sys::counter(Counter::Ticks) - t0)
    };
    // 30 ms = 3 ticks of 10 ms; the kernel rounds up and adds the current tick.
    let (ok, ticks) = elapsed(&mut || sys_ipc_send_timeout(ep, b"x", Timeout::Micros(30_000)) == Err(Error::Timeout));
    println!("ipc-errors: timed send gave up after {} ticks", ticks);
    c.check("timed send with no receiver -> Timeout", ok);
    c.check("after at least 30 ms (and under 2 s)", (3..=200).contains(&ticks));
    let (ok, ticks) =
        elapsed(&mut || sys_ipc_receive_timeout(ep, &mut [0u8; 8], Timeout::Micros(30_000)) == Err(Error::Timeout));
    println!("ipc-errors: timed receive gave up after {} ticks", ticks);
    c.check("timed receive with no sender -> Timeout", ok);
    c.check("after at least 30 ms (and under 2 s)", (3..=200).contains(&ticks));
    let (ok, ticks) =
        elapsed(&mut || sys_ipc_call_timeout(ep, b"x", &mut [0u8; 8], Timeout::Micros(30_000)) == Err(Error::Timeout));
    c.check("timed call with no server -> Timeout", ok);
    c.check("after at least 30 ms (and under 2 s)", (3..=200).contains(&ticks));
    let (ok, _) =
        elapsed(&mut || sys_ipc_receive_timeout(aq, &mut [0u8; 8], Timeout::Micros(30_000)) == Err(Error::Timeout));
    c.check("timed receive on an empty queue -> Timeout", ok);
    for _ in 0..4 {
        let _ = sys_ipc_send_timeout(aq, b"fill", Timeout::NonBlocking);
    }
    let (ok, ticks) = elapsed(&mut || sys_ipc_send_timeout(aq, b"x", Timeout::Micros(30_000)) == Err(Error::Timeout));
    c.check("timed send to a full queue -> Timeout", ok);
    c.check("after at least 30 ms (and under 2 s)", (3..=200).contains(&ticks));
    let mut n = 0;
    while sys_ipc_receive_timeout(aq, &mut [0u8; 8], Timeout::NonBlocking).is_ok() {
        n += 1;
    }
    c.check("the timed-out message was not queued", n == 4);
    c.check(
        "a timeout leaves no thread waiting",
        sys_ipc_send_timeout(ep, b"x", Timeout::NonBlocking) == Err(Error::WouldBlock),
    );
}

fn buffer_too_small(c: &mut Checker, ep: u64, aq: u64) {
    // A queued long message.
    let mut msg = [0u8; 200];
    apps::fill_pattern(&mut msg, 21);
    c.expect_ok("queue a 200-byte message", sys_ipc_send_timeout(aq, &msg, Timeout::NonBlocking));
    let mut small = [0u8; 100];
    c.expect_err(
        "receive of 200 bytes into 100 (async)",
        sys_ipc_receive_timeout(aq, &mut small, Timeout::NonBlocking),
        Error::BufferTooSmall,
    );
    c.check("the small buffer was not written", small.iter().all(|&b| b == 0));
    c.check("needed_size reports 200", needed_size(aq) == Ok(200));
    let mut big = [0u8; 256];
    let m = sys_ipc_receive_timeout(aq, &mut big, Timeout::NonBlocking);
    c.check("a 256-byte buffer then receives it intact", m.map(|m| m.len) == Ok(200) && big[..200] == msg);

    // A blocked sender's long message (synchronous endpoint).
    JOB.set(JobOp::Send, ep, 300, 0, 22);
    let w = JOB.start(c, PRIO);
    apps::settle();
    c.check(
        "the sender is blocked in its send",
        JOB.started.load(Ordering::Acquire) && !JOB.done.load(Ordering::Acquire),
    );
    c.expect_err(
        "receive of 300 bytes into 100 (sync)",
        sys_ipc_receive_timeout(ep, &mut small, Timeout::NonBlocking),
        Error::BufferTooSmall,
    );
    c.check("needed_size reports 300", needed_size(ep) == Ok(300));
    apps::settle();
    c.check("the sender is still blocked", !JOB.done.load(Ordering::Acquire));
    let mut big = [0u8; 512];
    let m = sys_ipc_receive_timeout(ep, &mut big, Timeout::NonBlocking);
    c.check(
        "a 512-byte buffer then receives it intact",
        m.map(|m| m.len) == Ok(300) && apps::pattern_mismatch(&big[..300], 22).is_none(),
    );
    w.join();
    c.check("the sender's send succeeded", JOB.result() == Ok(300));

    // A short message (in registers) into a buffer smaller than it.
    let mut msg = [0u8; 40];
    apps::fill_pattern(&mut msg, 23);
    c.expect_ok("queue a 40-byte message", sys_ipc_send_timeout(aq, &msg, Timeout::NonBlocking));
    let mut small = [0u8; 16];
    c.expect_err(
        "receive of a 40-byte (short) message into 16 bytes (async)",
        sys_ipc_receive_timeout(aq, &mut small, Timeout::NonBlocking),
        Error::BufferTooSmall,
    );
    c.check("needed_size reports 40", needed_size(aq) == Ok(40));
    let mut big = [0u8; 64];
    let m = sys_ipc_receive_timeout(aq, &mut big, Timeout::NonBlocking);
    c.check("a 64-byte buffer then receives the short message intact", m.map(|m| m.len) == Ok(40) && big[..40] == msg);
    while sys_ipc_receive_timeout(aq, &mut [0u8; 256], Timeout::NonBlocking).is_ok() {}

    JOB.set(JobOp::Send, ep, 48, 0, 24);
    let w = JOB.start(c, PRIO);
    apps::settle();
    c.expect_err(
        "receive of a 48-byte (short) message into 16 bytes (sync)",
        sys_ipc_receive_timeout(ep, &mut small, Timeout::NonBlocking),
        Error::BufferTooSmall,
    );
    let mut big = [0u8; 64];
    let m = sys_ipc_receive_timeout(ep, &mut big, Timeout::NonBlocking);
    c.check(
        "a 64-byte buffer then receives the short message intact (sync)",
        m.map(|m| m.len) == Ok(48) && apps::pattern_mismatch(&big[..48], 24).is_none(),
    );
    // Whatever happened above, let the sender finish.
    let _ = sys_ipc_receive_timeout(ep, &mut big, Timeout::NonBlocking);
    w.join();
}

fn reply_errors(c: &mut Checker, ep: u64, aq: u64) {
    use Ordering::Acquire;
    // A caller whose reply buffer holds 16 bytes.
    JOB.set(JobOp::Call, ep, 24, 16, 30);
    let w = JOB.start(c, PRIO);
    let mut buf = [0u8; 64];
    let m = c.expect_ok("receive a call", sys_ipc_receive(ep, &mut buf));
    c.check("it carries a reply token", m.reply != 0 && sys::cap_inspect(m.reply).map(|x| x.0) == Ok(kind::REPLY));
    c.check("and the request intact", m.len == 24 && apps::pattern_mismatch(&buf[..24], 30).is_none());
    c.check("the reply token holds WRITE only", sys::cap_inspect(m.reply) == Ok((kind::REPLY, rights::WRITE, 0)));
    c.expect_err("copy the reply token", sys::cap_copy(m.reply), Error::PermissionDenied);
    c.expect_err("mint from the reply token", sys::cap_mint(m.reply, rights::WRITE, 1), Error::PermissionDenied);
    c.expect_err("revoke through the reply token", sys::cap_revoke(m.reply), Error::PermissionDenied);
    c.expect_err(
        "pass the reply token to a new task",
        sys::task_spawn_with("hello", &[m.reply]),
        Error::PermissionDenied,
    );
    // Forged from the live one: another generation, the 8-bit generation
    // field, a flag bit.
    for forged in [m.reply.wrapping_add(1 << 16), m.reply | 1 << 48, m.reply | 1 << 60] {
        c.expect_err("inspect a forged reply token", sys::cap_inspect(forged), Error::NotFound);
        c.expect_err("copy a forged reply token", sys::cap_copy(forged), Error::NotFound);
        c.expect_err("revoke a forged reply token", sys::cap_revoke(forged), Error::NotFound);
        c.expect_err("delete a forged reply token", sys::cap_delete(forged), Error::NotFound);
        c.expect_err("reply with a forged reply token", sys_ipc_reply(forged, b"x"), Error::NotFound);
    }
    c.check("the caller still waits after the forgeries", !JOB.done.load(Acquire));
    c.expect_err(
        "pass the reply token on in a message",
        sys_ipc_send_caps(aq, b"r", &[m.reply], Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    c.expect_err(
        "send through the reply token",
        sys_ipc_send_timeout(m.reply, b"x", Timeout::NonBlocking),
        Error::PermissionDenied,
    );
    let mut long = [0u8; 100];
    apps::fill_pattern(&mut long, 31);
    c.expect_err("reply of 100 bytes into the caller's 16", sys_ipc_reply(m.reply, &long), Error::BufferTooSmall);
    c.check("the caller still waits", !JOB.done.load(Acquire));
    let page = c.expect_ok("map a page", sys::mem_map(4096, map::WRITE));
    c.expect_ok("unmap it", sys::mem_unmap(page, 4096));
    c.expect_err("reply from an unmapped buffer", sys_ipc_reply(m.reply, raw_slice(page, 100)), Error::InvalidArgument);
    c.expect_err("reply with an endpoint token", sys_ipc_reply(ep, &long[..8]), Error::NotFound);
    c.expect_ok("reply with 8 bytes through the same token", sys_ipc_reply(m.reply, &long[..8]));
    c.expect_err("reply a second time with the used token", sys_ipc_reply(m.reply, &long[..8]), Error::NotFound);
    c.expect_err("the used reply token is gone", sys::cap_inspect(m.reply), Error::NotFound);
    w.join();
    c.check("the caller got the 8-byte reply intact", JOB.result() == Ok(8) && JOB.intact.load(Acquire));
}

/// Sleeps 50 ms, then sends "wake" on the endpoint `ep`.
extern "C" fn delayed_wake(ep: u64) -> ! {
    apps::sleep_us(50_000);
    let _ = sys_ipc_send(ep, b"wake");
    sys::thread_exit(0)
}

/// A short reply (in registers) into a caller's buffer smaller than it:
/// refused with BufferTooSmall, the reply right stays valid — by
/// `IpcReply` and by `IpcReplyReceive` (which takes the fast path: a short
/// reply, no capabilities, nobody else sending).
fn short_reply_errors(c: &mut Checker, ep: u64) {
    use Ordering::Acquire;
    let mut buf = [0u8; 64];
    let mut reply = [0u8; 40];
    apps::fill_pattern(&mut reply, 41);

    JOB.set(JobOp::Call, ep, 24, 16, 40);
    let w = JOB.start(c, PRIO);
    let m = c.expect_ok("receive a call with a 16-byte reply buffer", sys_ipc_receive(ep, &mut buf));
    c.expect_err(
        "reply of 40 (short) bytes into the caller's 16",
        sys_ipc_reply(m.reply, &reply),
        Error::BufferTooSmall,
    );
    c.check("the caller still waits after the refused short reply", !JOB.done.load(Acquire));
    c.expect_ok("reply with 16 bytes through the same token", sys_ipc_reply(m.reply, &reply[..16]));
    w.join();
    c.check("the caller got the 16-byte reply intact", JOB.result() == Ok(16) && JOB.intact.load(Acquire));

    JOB.set(JobOp::Call, ep, 24, 16, 40);
    let w = JOB.start(c, PRIO);
    let m = c.expect_ok("receive a call with a 16-byte reply buffer", sys_ipc_receive(ep, &mut buf));
    let d = apps::start_thread(c, delayed_wake, ep, PRIO);
    match sys_ipc_reply_receive(m.reply, &reply, ep, &mut buf) {
        Err(Error::BufferTooSmall) => {
            c.check("reply-and-receive of 40 (short) bytes into 16 -> BufferTooSmall, nothing received", true);
            c.check("the caller still waits", !JOB.done.load(Acquire));
            c.expect_ok("reply with 16 bytes through the same token", sys_ipc_reply(m.reply, &reply[..16]));
            let m = sys_ipc_receive(ep, &mut buf);
            c.check("then the delayed message is received", m.map(|m| m.len) == Ok(4) && &buf[..4] == b"wake");
        }
        r => {
            println!("ipc-errors: reply-and-receive of 40 (short) bytes into 16 returned {:?}", r);
            c.check("reply-and-receive of 40 (short) bytes into 16 -> BufferTooSmall, nothing received", false);
        }
    }
    w.join();
    d.join();
    c.check("the caller got the 16-byte reply intact", JOB.result() == Ok(16) && JOB.intact.load(Acquire));
}

/// OutOfMemory: a receiver whose capability table is full cannot take a
/// message carrying a capability (it stays pending and arrives once there
/// is room), but still takes a call (a reply right takes no slot).
fn table_full(c: &mut Checker, ep: u64, aq: u64) {
    use Ordering::Acquire;
    let gift = c.expect_ok("mint a capability to pass", sys::cap_mint(aq, rights::READ | rights::GRANT, 0x6));
    c.expect_ok("queue a message carrying it", sys_ipc_send_caps(aq, b"gift", &[gift], Timeout::NonBlocking));
    c.expect_ok("delete the sender's copy", sys::cap_delete(gift));
    JOB.set(JobOp::Call, ep, 8, 64, 60);
    let w = JOB.start(c, PRIO);
    apps::settle();
    c.check("a caller waits", JOB.started.load(Acquire) && !JOB.done.load(Acquire));

    let mut fillers = [0u64; 256];
    let mut n = 0;
    while n < fillers.len() {
        match sys::cap_copy(ep) {
            Ok(t) => {
                fillers[n] = t;
                n += 1;
            }
            Err(_) => break,
        }
    }
    println!("ipc-errors: {} more capabilities filled the table", n);
    c.check("the capability table is full", n > 0 && sys::cap_copy(ep) == Err(Error::OutOfMemory));
    let mut buf = [0u8; 64];
    c.expect_err(
        "receive of a message with a capability into a full table",
        sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking),
        Error::OutOfMemory,
    );
    let call = c.expect_ok(
        "receive of a call into a full table (a reply right takes no slot)",
        sys_ipc_receive_timeout(ep, &mut buf, Timeout::NonBlocking),
    );
    c.check(
        "and it arrives whole with a reply token",
        call.len == 8 && call.reply != 0 && apps::pattern_mismatch(&buf[..8], 60).is_none(),
    );
    c.check("the table is still full", sys::cap_copy(ep) == Err(Error::OutOfMemory));
    c.check("the caller still waits", !JOB.done.load(Acquire));
    n -= 1;
    c.expect_ok("free one slot", sys::cap_delete(fillers[n]));
    let m = c.expect_ok(
        "the message with the capability is still there",
        sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking),
    );
    c.check(
        "and arrives whole with its capability",
        m.len == 4 && &buf[..4] == b"gift" && m.ncaps == 1 && sys::cap_inspect(m.caps[0]).map(|x| x.2) == Ok(0x6),
    );
    let mut reply = [0u8; 8];
    apps::fill_pattern(&mut reply, 61);
    c.expect_ok("reply", sys_ipc_reply(call.reply, &reply));
    for &t in &fillers[..n] {
        let _ = sys::cap_delete(t);
    }
    let _ = sys::cap_delete(m.caps[0]);
    w.join();
    c.check("the caller got the reply", JOB.result() == Ok(8) && JOB.intact.load(Acquire));
}
