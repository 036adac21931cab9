//! Server of the "resend" scenario (see `t-resend`). Serves calls on the
//! endpoint it is given (its first startup capability) with
//! reply-and-receive, alternating between two buffers: call `k` is
//! received into buffer `k % 2` at the offset `apps::resend_round` gives,
//! the server XORs the bytes that round names (a write into pages it
//! shares with the client), and replies from the same buffer. A private
//! shadow of each buffer takes every write the server makes. After each
//! receive it checks the length, that the receive buffer kept its bytes
//! around the message, and that the other buffer — replied from in the
//! same system call, and since shared with the client, which may have
//! written its copies — still equals its shadow. A one-way "quit" ends it;
//! its exit code is the number of failed checks.
#![no_std]
#![no_main]

use apps::{first_difference, resend_round, Checker, RESEND_REGION as REGION, RESEND_ROUNDS as ROUNDS};
use sdk::abi::map;
use sdk::syscall_api::*;
use sdk::{println, sys};

sdk::entry!(main);

fn region(c: &mut Checker) -> Option<&'static mut [u8]> {
    let a = c.expect_ok("map a buffer region", sys::mem_map(REGION as u64, map::WRITE));
    // SAFETY: a fresh writable mapping of REGION bytes, owned by this task
    // alone and never unmapped while the slice lives (the task exits).
    (a != 0).then(|| unsafe { core::slice::from_raw_parts_mut(a as *mut u8, REGION) })
}

/// A receive buffer and its shadow.
struct Buffer {
    buf: &'static mut [u8],
    shadow: &'static mut [u8],
}

fn main() -> u64 {
    let mut c = Checker::new("resend-srv");
    let (caps, n) = sdk::startup_caps();
    if n != 1 {
        c.check("started with one endpoint capability", false);
        return c.finish();
    }
    let ep = caps[0];
    let mut buffer = || Some(Buffer { buf: region(&mut c)?, shadow: region(&mut c)? });
    let (Some(b0), Some(b1)) = (buffer(), buffer()) else { return c.finish() };
    let mut bufs = [b0, b1];
    let (mut reply, mut reply_range) = (0u64, 0..0);
    let mut bad = 0u64;
    let mut k = 0u64;
    loop {
        let r = resend_round(k);
        let (off, end) = (r.off, r.off + r.len);
        let [b0, b1] = &mut bufs;
        let (recv, replied) = if k.is_multiple_of(2) { (b0, &*b1) } else { (b1, &*b0) };
        let got = sys_ipc_reply_receive(reply, &replied.buf[reply_range.clone()], ep, &mut recv.buf[off..]);
        let m = match got {
            Ok(m) => m,
            Err(e) => {
                println!("resend-srv: FAILED: reply-and-receive {}: {:?}", k, e);
                return bad + 1;
            }
        };
        // The client wrote its copies since this buffer was replied from.
        if let Some(at) = first_difference(replied.buf, replied.shadow) {
            println!("resend-srv: FAILED: call {}: the buffer replied from changed at byte {}", k, at);
            bad += 1;
        }
        if m.reply == 0 {
            let quit = k == ROUNDS && recv.buf[off..].starts_with(b"quit") && m.len == 4;
            if !quit {
                println!("resend-srv: FAILED: one-way message of {} bytes after {} calls", m.len, k);
                bad += 1;
            }
            break;
        }
        let end = if m.len == r.len {
            end
        } else {
            println!("resend-srv: FAILED: call {}: {} bytes, wanted {}", k, m.len, r.len);
            bad += 1;
            off + m.len.min(REGION - off)
        };
        let (rb, rs) = (&recv.buf, &recv.shadow);
        let outside = first_difference(&rb[..off], &rs[..off])
            .or_else(|| first_difference(&rb[end..], &rs[end..]).map(|j| end + j));
        if let Some(at) = outside {
            println!("resend-srv: FAILED: call {}: the receive buffer changed outside the message at byte {}", k, at);
            bad += 1;
        }
        let (from, to, x) = r.xor;
        for b in &mut recv.buf[off + from..off + to] {
            *b ^= x;
        }
        recv.shadow[off..end].copy_from_slice(&recv.buf[off..end]);
        (reply, reply_range) = (m.reply, off..end);
        k += 1;
    }
    println!("resend-srv: served {} calls; {} failures", k, bad);
    bad
}
