//! The receiver of the "ipc-stress" scenario. Capabilities: 0 the
//! synchronous endpoint (senders 1 and 2), 1 the asynchronous one (sender
//! 3). Two threads serve each endpoint (the main thread is one of them),
//! answering calls with reply-and-receive. Every message is checked — its
//! length, checksum, pattern, that its sender id matches the badge and the
//! endpoint, that a call came from the calling sender — and recorded in a
//! bitmap of (sender, sequence number) that rejects duplicates. Threads end
//! when the endpoints are deleted (NotFound); the main thread then checks
//! that every message arrived exactly once. Exit code: the number of
//! failures.
#![no_std]
#![no_main]

use apps::Checker;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use sdk::abi::Error;
use sdk::println;
use sdk::syscall_api::{sys_ipc_receive, sys_ipc_reply_receive};

sdk::entry!(main);

/// This task's priority in the manifest.
const PRIO: u8 = 6;
/// Messages per sender (as ipc-stress-tx and t-ipc-stress).
const PER_SENDER: u32 = 33_334;
const SENDERS: usize = 3;
const CALLER: u8 = 2;
const TOTAL: usize = SENDERS * PER_SENDER as usize;

static SEEN: [AtomicU64; TOTAL.div_ceil(64)] = [const { AtomicU64::new(0) }; TOTAL.div_ceil(64)];
static RECEIVED: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);
static DUPLICATES: AtomicU64 = AtomicU64::new(0);
static BAD: AtomicU64 = AtomicU64::new(0);
static ENDED_BADLY: AtomicU64 = AtomicU64::new(0);

/// As in ipc-stress-tx.
fn mix(id: u8, seq: u32) -> u64 {
    let mut z = (u64::from(id) << 32 | u64::from(seq)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// As in ipc-stress-tx.
fn length(id: u8, seq: u32) -> usize {
    let h = mix(id, seq);
    if h.is_multiple_of(16) {
        65 + ((h >> 8) % (2048 - 65 + 1)) as usize
    } else {
        12 + ((h >> 8) % 53) as usize
    }
}

fn bad(why: &str, badge: u64, len: usize, seq: u32) {
    if BAD.fetch_add(1, Relaxed) < 10 {
        println!("ipc-stress-rx: FAILED: {} (badge {}, {} bytes, seq {})", why, badge, len, seq);
    }
}

/// Checks one message and records it; returns the reply for a call.
fn check(msg: &[u8], badge: u64, is_call: bool, sync: bool) -> [u8; 8] {
    let len = msg.len();
    if !(12..=2048).contains(&len) {
        bad("length out of range", badge, len, 0);
        return [0; 8];
    }
    let seq = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let id = msg[4];
    let sum = u32::from_le_bytes([msg[len - 4], msg[len - 3], msg[len - 2], msg[len - 1]]);
    let mut ack = [0u8; 8];
    ack[..4].copy_from_slice(&seq.to_le_bytes());
    ack[4..].copy_from_slice(&sum.to_le_bytes());
    if apps::checksum(&msg[..len - 4]) != sum {
        bad("bad checksum", badge, len, seq);
        return ack;
    }
    let ok = u64::from(id) == badge
        && (1..=SENDERS as u8).contains(&id)
        && seq < PER_SENDER
        && len == length(id, seq)
        && (id == SENDERS as u8) != sync
        && (id == CALLER) == is_call
        && apps::pattern_mismatch(&msg[5..len - 4], mix(id, seq)).is_none();
    if !ok {
        bad("wrong sender, sequence number, length, endpoint, kind or content", badge, len, seq);
        return ack;
    }
    let bit = (id as usize - 1) * PER_SENDER as usize + seq as usize;
    if SEEN[bit / 64].fetch_or(1 << (bit % 64), Relaxed) & (1 << (bit % 64)) != 0 {
        bad("duplicate", badge, len, seq);
        DUPLICATES.fetch_add(1, Relaxed);
    }
    RECEIVED.fetch_add(1, Relaxed);
    BYTES.fetch_add(len as u64, Relaxed);
    CALLS.fetch_add(u64::from(is_call), Relaxed);
    ack
}

/// Serves one endpoint until it is deleted.
fn serve(ep: u64, sync: bool) {
    let mut buf = [0u8; 2048];
    let (mut reply, mut ack) = (0u64, [0u8; 8]);
    loop {
        let r =
            if reply != 0 { sys_ipc_reply_receive(reply, &ack, ep, &mut buf) } else { sys_ipc_receive(ep, &mut buf) };
        match r {
            Ok(m) => {
                ack = check(&buf[..m.len.min(buf.len())], m.badge, m.reply != 0, sync);
                reply = m.reply;
            }
            Err(Error::NotFound) => return,
            Err(e) => {
                println!("ipc-stress-rx: FAILED: receive ended with {:?}", e);
                ENDED_BADLY.fetch_add(1, Relaxed);
                return;
            }
        }
    }
}

extern "C" fn worker(arg: u64) -> ! {
    let (ep, sync) = (arg >> 1, arg & 1 == 1);
    serve(ep, sync);
    sdk::sys::thread_exit(0)
}

fn main() -> u64 {
    let mut c = Checker::new("ipc-stress-rx");
    let (caps, n) = sdk::startup_caps();
    if n != 2 {
        c.check("started with two endpoint capabilities", false);
        return c.finish();
    }
    let (sync, aq) = (caps[0], caps[1]);
    // Tokens fit in 63 bits (kind and index), so the flag fits below them.
    let workers = [
        apps::start_thread(&mut c, worker, sync << 1 | 1, PRIO),
        apps::start_thread(&mut c, worker, sync << 1 | 1, PRIO),
        apps::start_thread(&mut c, worker, aq << 1, PRIO),
    ];
    serve(aq, false);
    for w in workers {
        w.join();
    }
    let missing: usize = (0..TOTAL).filter(|&b| SEEN[b / 64].load(Relaxed) & (1 << (b % 64)) == 0).count();
    let (received, bytes, calls) = (RECEIVED.load(Relaxed), BYTES.load(Relaxed), CALLS.load(Relaxed));
    let (dups, badn, ended) = (DUPLICATES.load(Relaxed), BAD.load(Relaxed), ENDED_BADLY.load(Relaxed));
    println!(
        "ipc-stress-rx: received {} messages ({} calls, {} bytes) from {} senders: {} duplicates, {} bad, {} missing",
        received, calls, bytes, SENDERS, dups, badn, missing
    );
    c.check(
        "every message arrived exactly once, intact",
        missing == 0 && dups == 0 && badn == 0 && received == TOTAL as u64,
    );
    c.check("every receiving thread ended with NotFound when the endpoints went", ended == 0);
    c.finish()
}
