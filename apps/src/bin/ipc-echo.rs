//! Echo server of the "ipc-transfer" scenario. Serves calls on the endpoint
//! it is given (its first startup capability) with reply-and-receive, into
//! a buffer at an unaligned offset with canary bytes on both sides. For each
//! request it checks the canaries beyond the message, the sender's badge and
//! every byte (the pattern follows from the length), then scribbles over its
//! reply buffer and replies with a transform of the payload. A one-way
//! "quit" ends it; its exit code is the number of failed checks.
#![no_std]
#![no_main]

use apps::Checker;
use sdk::abi::map;
use sdk::syscall_api::*;
use sdk::{println, sys};

sdk::entry!(main);

/// Largest request (the endpoint's default maximum).
const MAX: usize = 64 * 1024;
/// Capacity beyond the largest message, to see writes past the message.
const SLACK: usize = 100;
const RECV_REGION: usize = (4096 + MAX + SLACK + 4096).next_multiple_of(4096);
const OUT_REGION: usize = (4096 + MAX).next_multiple_of(4096);

/// Offset of the receive buffer for the `k`-th message: unaligned (the
/// message straddles pages at odd places) or page-aligned, in turn.
/// t-ipc-transfer knows this and matches it on some calls.
fn recv_off(k: u64) -> usize {
    if k.is_multiple_of(2) {
        4093
    } else {
        4096
    }
}

/// Offset of the reply to the `k`-th message in its region.
fn out_off(k: u64) -> usize {
    if k.is_multiple_of(2) {
        2051
    } else {
        4096
    }
}
const CANARY: u8 = 0xC3;

/// The badge of the client's token (t-ipc-transfer mints it).
pub const CLIENT_BADGE: u64 = 0xEC40;

/// The pattern seed of a request of `len` bytes (as t-ipc-transfer sends it).
fn seed(len: usize) -> u64 {
    0x7000 + len as u64
}

/// Reply byte `i` for request byte `b` (t-ipc-transfer checks the same).
fn transform(b: u8, i: usize) -> u8 {
    b.rotate_left(3) ^ (i as u8).wrapping_mul(7) ^ 0x5A
}

fn main() -> u64 {
    let mut c = Checker::new("ipc-echo");
    let (caps, n) = sdk::startup_caps();
    if n != 1 {
        c.check("started with one endpoint capability", false);
        return c.finish();
    }
    let ep = caps[0];
    let recv = c.expect_ok("map the receive region", sys::mem_map(RECV_REGION as u64, map::WRITE));
    let out = c.expect_ok("map the reply region", sys::mem_map(OUT_REGION as u64, map::WRITE));
    if recv == 0 || out == 0 {
        return c.finish();
    }
    // SAFETY: both are fresh writable mappings of these sizes, owned by this
    // task alone and never unmapped while the slices live.
    let (region, out) = unsafe {
        (
            core::slice::from_raw_parts_mut(recv as *mut u8, RECV_REGION),
            core::slice::from_raw_parts_mut(out as *mut u8, OUT_REGION),
        )
    };
    let (mut reply, mut reply_off, mut reply_len) = (0u64, 0usize, 0usize);
    let (mut calls, mut bytes, mut bad) = (0u64, 0u64, 0u64);
    for k in 0.. {
        region.fill(CANARY);
        let off = recv_off(k);
        let rbuf = &mut region[off..off + MAX + SLACK];
        let r = sys_ipc_reply_receive(reply, &out[reply_off..reply_off + reply_len], ep, rbuf);
        let m = match r {
            Ok(m) => m,
            Err(e) => {
                println!("ipc-echo: FAILED: reply-and-receive: {:?}", e);
                bad += 1;
                break;
            }
        };
        let len = m.len;
        let before_ok = region[..off].iter().all(|&b| b == CANARY);
        let after_ok = region[off + len..].iter().all(|&b| b == CANARY);
        if !(before_ok && after_ok) {
            println!(
                "ipc-echo: FAILED: a {}-byte message touched the canaries (before ok {}, after ok {})",
                len, before_ok, after_ok
            );
            bad += 1;
        }
        let msg = &region[off..off + len];
        if m.reply == 0 {
            if msg == b"quit" {
                break;
            }
            println!("ipc-echo: FAILED: a one-way message of {} bytes that is not \"quit\"", len);
            bad += 1;
            (reply, reply_len) = (0, 0);
            continue;
        }
        if m.badge != CLIENT_BADGE {
            println!("ipc-echo: FAILED: badge {:#x}, wanted {:#x}", m.badge, CLIENT_BADGE);
            bad += 1;
        }
        if let Some(i) = apps::pattern_mismatch(msg, seed(len)) {
            println!(
                "ipc-echo: FAILED: request of {} bytes differs at byte {}: {:#x}, wanted {:#x}",
                len,
                i,
                msg[i],
                apps::pattern_byte(seed(len), i)
            );
            bad += 1;
        }
        // Scribble over the whole reply buffer first: a reply that shared
        // pages with the client's earlier replies would show it there.
        out.fill(0xEE);
        reply_off = out_off(k);
        for (i, &b) in msg.iter().enumerate() {
            out[reply_off + i] = transform(b, i);
        }
        reply = m.reply;
        reply_len = len;
        calls += 1;
        bytes += len as u64;
    }
    println!("ipc-echo: served {} calls, {} bytes; {} failures", calls, bytes, bad);
    bad + c.failures()
}
