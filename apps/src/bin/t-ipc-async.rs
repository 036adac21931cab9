//! Scenario "ipc-async": an asynchronous endpoint is a bounded FIFO queue.
//! With room for 4, four non-blocking sends succeed and the fifth gets
//! WouldBlock; a timed send gets Timeout; a blocking send (from a second
//! thread) waits until a receive makes room, then completes; all five
//! messages come out in order and intact. Queue storage for long messages
//! is taken from free memory when the endpoint is created and returned
//! exactly when it is deleted, also with messages and capabilities still
//! queued.
#![no_std]
#![no_main]

use apps::{Checker, Job, JobOp};
use core::sync::atomic::Ordering::Acquire;
use sdk::abi::{kind, rights, Counter, Error};
use sdk::syscall_api::*;
use sdk::{println, sys};

sdk::entry!(main);

/// This task's priority in the manifest.
const PRIO: u8 = 10;
/// Lengths of the five messages (short, the register limit, just over it, long, the endpoint maximum).
const LENS: [usize; 5] = [10, 64, 65, 200, 256];

static JOB: Job = Job::new();

fn seed(i: usize) -> u64 {
    0xA5 + i as u64
}

fn main() -> u64 {
    let mut c = Checker::new("ipc-async");
    let before = apps::resources();
    let eps_before = apps::endpoints();

    let free0 = sys::counter(Counter::FreeFrames);
    let aq = c.expect_ok(
        "create an async endpoint for 4 messages of 256 bytes",
        sys_endpoint_create(EndpointKind::Async(4), 256),
    );
    let taken = free0 - sys::counter(Counter::FreeFrames);
    c.check("its queue storage (1 KiB) took one frame", taken == 1);
    let tx = c.expect_ok("mint a badged send token", sys::cap_mint(aq, rights::WRITE, 0xA51));

    let mut msg = [0u8; 256];
    for (i, &len) in LENS.iter().enumerate().take(4) {
        apps::fill_pattern(&mut msg[..len], seed(i));
        c.expect_ok(
            "a non-blocking send to a queue with room",
            sys_ipc_send_timeout(tx, &msg[..len], Timeout::NonBlocking),
        );
    }
    apps::fill_pattern(&mut msg[..LENS[4]], seed(4));
    c.expect_err(
        "the fifth non-blocking send to the full queue",
        sys_ipc_send_timeout(tx, &msg[..LENS[4]], Timeout::NonBlocking),
        Error::WouldBlock,
    );
    let t0 = sys::counter(Counter::Ticks);
    c.expect_err(
        "a timed send (30 ms) to the full queue",
        sys_ipc_send_timeout(tx, &msg[..LENS[4]], Timeout::Micros(30_000)),
        Error::Timeout,
    );
    c.check("it waited at least 30 ms", sys::counter(Counter::Ticks) - t0 >= 3);

    // A blocking send from another thread waits for room.
    JOB.set(JobOp::Send, tx, LENS[4], 0, seed(4));
    let w = JOB.start(&mut c, PRIO);
    c.check("the sender thread ran", apps::wait_for(&JOB.started, 500));
    let mut blocked = true;
    for _ in 0..200 {
        sys::yield_now();
        blocked &= !JOB.done.load(Acquire);
    }
    apps::spin_ticks(5);
    blocked &= !JOB.done.load(Acquire);
    c.check("the blocking send stays blocked across 200 yields and 5 ticks while the queue is full", blocked);

    let mut buf = [0u8; 256];
    let m = c.expect_ok("receive one message", sys_ipc_receive(aq, &mut buf));
    c.check(
        "the first message sent comes out first",
        m.len == LENS[0] && apps::pattern_mismatch(&buf[..m.len], seed(0)).is_none(),
    );
    c.check("with the sender's badge", m.badge == 0xA51 && m.reply == 0);
    c.check("then the blocked send completes", apps::wait_for(&JOB.done, 500));
    c.check("successfully", JOB.result() == Ok(LENS[4]));
    w.join();
    c.expect_err("the queue is full again", sys_ipc_send_timeout(tx, b"x", Timeout::NonBlocking), Error::WouldBlock);
    for (i, &len) in LENS.iter().enumerate().skip(1) {
        buf.fill(0);
        let m = sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking);
        let ok = m.is_ok_and(|m| m.len == len) && apps::pattern_mismatch(&buf[..len], seed(i)).is_none();
        if !ok {
            println!("ipc-async: message {} ({} bytes): got {:?}", i, len, m);
        }
        c.check("the next message in FIFO order, intact", ok);
        c.check("nothing written past its end", buf[len..].iter().all(|&b| b == 0));
    }
    c.expect_err("the queue is empty", sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking), Error::WouldBlock);
    let total: usize = LENS.iter().sum();
    c.check("stats: 5 delivered, their bytes, no calls", sys_endpoint_stats(aq) == Ok((5, total as u64, 0)));

    // A receiver waiting on an empty queue gets the next send directly.
    JOB.set(JobOp::Receive, aq, 0, 256, 77);
    let w = JOB.start(&mut c, PRIO);
    apps::settle();
    c.check("the receiver waits on the empty queue", JOB.started.load(Acquire) && !JOB.done.load(Acquire));
    apps::fill_pattern(&mut msg[..150], 77);
    c.expect_ok("send 150 bytes", sys_ipc_send_timeout(tx, &msg[..150], Timeout::NonBlocking));
    c.check(
        "the waiting receiver gets them",
        apps::wait_for(&JOB.done, 500) && JOB.result() == Ok(150) && JOB.intact.load(Acquire),
    );
    w.join();

    // Wrap-around: many rounds through the 4 slots keep FIFO order.
    let mut ok = true;
    for round in 0..50u64 {
        for k in 0..3u64 {
            let len = 60 + ((round * 3 + k) % 190) as usize;
            apps::fill_pattern(&mut msg[..len], 1000 + round * 3 + k);
            ok &= sys_ipc_send_timeout(tx, &msg[..len], Timeout::NonBlocking).is_ok();
        }
        for k in 0..3u64 {
            let len = 60 + ((round * 3 + k) % 190) as usize;
            let m = sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking);
            ok &= m.is_ok_and(|m| m.len == len) && apps::pattern_mismatch(&buf[..len], 1000 + round * 3 + k).is_none();
        }
    }
    c.check("150 messages through the queue in rounds of 3 stay in order and intact", ok);

    // Capabilities queued with a message travel to the receiver.
    let slots = sys::counter(Counter::CapSlots);
    let gift = c.expect_ok("mint a capability to pass", sys::cap_mint(aq, rights::READ | rights::GRANT, 0x61F7));
    c.expect_ok("queue a message with it", sys_ipc_send_caps(aq, b"gift", &[gift], Timeout::NonBlocking));
    c.expect_ok("delete the sender's copy", sys::cap_delete(gift));
    let m = c.expect_ok("receive the message", sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking));
    c.check(
        "the capability survived its sender's copy and arrived",
        m.ncaps == 1 && sys::cap_inspect(m.caps[0]) == Ok((kind::ENDPOINT, rights::READ | rights::GRANT, 0x61F7)),
    );
    c.expect_ok("delete it", sys::cap_delete(m.caps[0]));
    c.check("capability slots are back", sys::counter(Counter::CapSlots) == slots);

    // Revoking the sender's original reaches a capability still queued.
    let gift = c.expect_ok(
        "mint a revocable capability",
        sys::cap_mint(aq, rights::READ | rights::GRANT | rights::REVOKE, 0x61F8),
    );
    c.expect_ok("queue a message with it", sys_ipc_send_caps(aq, b"gift", &[gift], Timeout::NonBlocking));
    c.check("revoking the sender's original reaches the queued copy", sys::cap_revoke(gift) == Ok(1));
    let m = c.expect_ok("the message still arrives", sys_ipc_receive_timeout(aq, &mut buf, Timeout::NonBlocking));
    c.check("without a live capability", m.len == 4 && m.caps[..m.ncaps].iter().all(|&t| sys::cap_inspect(t).is_err()));
    c.expect_ok("delete the original", sys::cap_delete(gift));
    c.check("capability slots are back", sys::counter(Counter::CapSlots) == slots);

    c.expect_ok("delete the endpoint", sys_endpoint_delete(aq));
    c.check("its queue storage came back", sys::counter(Counter::FreeFrames) == free0);
    c.expect_err("the badged token went with it", sys::cap_inspect(tx), Error::NotFound);

    big_queue(&mut c);
    apps::check_clean(&mut c, before, eps_before);
    c.finish()
}

/// A queue of 8 × 64 KiB takes 128 frames at creation and gives them all
/// back at deletion, also while messages and a capability are queued.
fn big_queue(c: &mut Checker) {
    let free0 = sys::counter(Counter::FreeFrames);
    let charged0 = sys::counter(Counter::QueueFrames);
    let slots0 = sys::counter(Counter::CapSlots);
    let q = c.expect_ok(
        "create an async endpoint for 8 messages of 64 KiB",
        sys_endpoint_create(EndpointKind::Async(8), 64 * 1024),
    );
    let taken = free0 - sys::counter(Counter::FreeFrames);
    println!("ipc-async: 8 x 64 KiB queue took {} frames", taken);
    c.check("it took 128 frames for its storage (and at most a few more)", (128..=132).contains(&taken));
    c.check(
        "the 128 frames are charged to this task, the creator",
        sys::counter(Counter::QueueFrames) == charged0 + 128,
    );

    let len = 64 * 1024;
    let buf = c.expect_ok("map a 64 KiB buffer", sys::mem_map(len as u64, sdk::abi::map::WRITE));
    // SAFETY: `buf` is a fresh writable mapping of `len` bytes, unmapped below after its last use.
    let bytes = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, len) };
    let free1 = sys::counter(Counter::FreeFrames);
    for i in 0..3u64 {
        apps::fill_pattern(bytes, 500 + i);
        c.expect_ok("queue a 64 KiB message", sys_ipc_send_timeout(q, bytes, Timeout::NonBlocking));
    }
    let gift = c.expect_ok("mint a capability", sys::cap_mint(q, rights::READ | rights::GRANT, 9));
    c.expect_ok("queue a message carrying it", sys_ipc_send_caps(q, b"cap", &[gift], Timeout::NonBlocking));
    c.expect_ok("delete the sender's copy", sys::cap_delete(gift));
    c.check("queued messages take no frames beyond the storage", sys::counter(Counter::FreeFrames) == free1);
    bytes.fill(0);
    let m = sys_ipc_receive_timeout(q, bytes, Timeout::NonBlocking);
    c.check(
        "the first 64 KiB message comes out intact",
        m.is_ok_and(|m| m.len == len) && apps::pattern_mismatch(bytes, 500).is_none(),
    );
    c.expect_ok("unmap the buffer", sys::mem_unmap(buf, len as u64));

    c.expect_ok("delete the endpoint with 2 long messages and a capability queued", sys_endpoint_delete(q));
    let back = sys::counter(Counter::FreeFrames);
    println!("ipc-async: free frames {} before the queue, {} after deleting it", free0, back);
    c.check("every frame came back", back == free0);
    c.check("and the charge to this task is gone", sys::counter(Counter::QueueFrames) == charged0);
    c.check("the queued capability was dropped: slots are back", sys::counter(Counter::CapSlots) == slots0);

    let free0 = sys::counter(Counter::FreeFrames);
    let q = c.expect_ok(
        "create an async endpoint for 256 messages of 64 bytes",
        sys_endpoint_create(EndpointKind::Async(256), 64),
    );
    c.check("a queue of short messages takes no frames", sys::counter(Counter::FreeFrames) == free0);
    // The quota: 16 MiB of queue storage per task (4096 frames).
    let mut held = [0u64; 4];
    for h in held.iter_mut() {
        *h = sys_endpoint_create(EndpointKind::Async(64), 64 * 1024).unwrap_or(0);
    }
    c.check("four 4 MiB queues fill the 16 MiB quota", held.iter().all(|&h| h != 0));
    c.expect_err(
        "one more queue, however small, beyond the quota",
        sys_endpoint_create(EndpointKind::Async(1), 64 * 1024),
        sdk::SyscallError::OutOfMemory,
    );
    for h in held {
        let _ = sdk::syscall_api::sys_endpoint_delete(h);
    }
    for i in 0..256u64 {
        if sys_ipc_send_timeout(q, &i.to_le_bytes(), Timeout::NonBlocking).is_err() {
            c.check("fill 256 slots", false);
            break;
        }
    }
    c.expect_err("the 257th send", sys_ipc_send_timeout(q, b"x", Timeout::NonBlocking), Error::WouldBlock);
    let mut buf = [0u8; 8];
    let m = sys_ipc_receive_timeout(q, &mut buf, Timeout::NonBlocking);
    c.check("the first of 256 comes out first", m.is_ok_and(|m| m.len == 8) && buf == 0u64.to_le_bytes());
    c.expect_ok("delete it with 255 messages queued", sys_endpoint_delete(q));
    c.check("still no frame taken", sys::counter(Counter::FreeFrames) == free0);
}
