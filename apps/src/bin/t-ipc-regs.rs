//! Scenario "ipc-regs": a short message travels as all eight message
//! registers exactly as the sender loaded them — whatever its length says
//! counts — on a call, a receive and a reply-and-receive alike, and the
//! registers the ABI keeps (`r10`) survive. A server thread of higher
//! priority waits first, so with the fast path on every call and reply takes
//! it (the registers pass through the CPU); with `nofastpath` the general
//! path must deliver the same.
//!
//! Then the SDK's packing: one `sys_ipc_call` of every length from 0 to 64
//! bytes, from an unaligned buffer. The server (raw registers) checks that
//! the message registers hold exactly the message, zeros past it, and
//! replies with the same length from eight registers full of bytes; the
//! client checks that exactly those bytes, and none past the length,
//! reached its unaligned reply buffer.
#![no_std]
#![no_main]

use apps::Checker;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use sdk::abi::ipc::{encode, SHORT_MAX, TIMEOUT_NEVER};
use sdk::abi::Sys;
use sdk::println;
use sdk::syscall_api::*;

sdk::entry!(main);

/// This task's priority in the manifest.
const PRIO: u8 = 11;
/// Message lengths of the rounds.
const LENS: [u64; 5] = [0, 1, 8, 20, 64];
/// Rounds through the SDK after those of `LENS`: lengths 0 to 64.
const SDK_ROUNDS: usize = SHORT_MAX + 1;
/// What the client's reply buffer holds before each SDK call.
const CANARY: u8 = 0x11;
/// MR0 of the last call: the server replies and ends.
const STOP: u64 = 0x5709;
/// A value `r10` holds across each call; nothing is received into it.
const R10: u64 = 0x1234_5678;

static EP: AtomicU64 = AtomicU64::new(0);
static SERVED: AtomicU64 = AtomicU64::new(0);
static SERVER_OK: AtomicBool = AtomicBool::new(true);
static SERVER_DONE: AtomicBool = AtomicBool::new(false);

fn request(round: u64) -> [u64; 8] {
    core::array::from_fn(|i| 0xC0DE_0000_0000 + (round << 8) + i as u64)
}

fn reply(round: u64) -> [u64; 8] {
    core::array::from_fn(|i| 0xBEEF_0000_0000 + (round << 8) + i as u64)
}

/// Byte `i` of the SDK request of `len` bytes (never 0).
fn sdk_request_byte(len: usize, i: usize) -> u8 {
    (len * 37 + i * 11) as u8 | 1
}

/// Byte `i` of the SDK reply registers for a request of `len` bytes (never
/// [`CANARY`]).
fn sdk_reply_byte(len: usize, i: usize) -> u8 {
    (len * 53 + i * 29) as u8 | 0x80
}

/// Message registers holding `n` bytes `byte(i)`, little-endian, zeros after.
fn words(n: usize, byte: impl Fn(usize) -> u8) -> [u64; 8] {
    core::array::from_fn(|w| {
        (0..8).fold(0, |v, b| if 8 * w + b < n { v | u64::from(byte(8 * w + b)) << (8 * b) } else { v })
    })
}

fn server_check(ok: bool, what: &str) {
    if !ok {
        println!("ipc-regs: FAILED (server): {what}");
        SERVER_OK.store(false, Ordering::Relaxed);
    }
}

extern "C" fn server(_: u64) -> ! {
    let ep = EP.load(Ordering::Relaxed);
    let mut r = Regs {
        rax: encode(Sys::IpcReceive as u64, 0, 0, 64),
        rdi: ep,
        rdx: TIMEOUT_NEVER,
        r10: R10,
        ..Regs::default()
    };
    // SAFETY: register-only calls (capacity 64): no memory is touched.
    unsafe { raw_ipc(&mut r) };
    for round in 0u64.. {
        let last = r.mr[0] == STOP;
        // What should have arrived, and the reply: its length and registers.
        let (want, len, back, out) = if last {
            (r.mr, r.rdx, 0, reply(99))
        } else if let Some(&len) = LENS.get(round as usize) {
            (request(round), len, len / 2, reply(round))
        } else {
            let len = round as usize - LENS.len();
            let r = words(len, |i| sdk_request_byte(len, i));
            (r, len as u64, len as u64, words(SHORT_MAX, |i| sdk_reply_byte(len, i)))
        };
        server_check(r.rax == 0, "a call arrived");
        server_check(r.mr == want, "all eight message registers arrived as the caller loaded them");
        server_check(r.rdx == len, "the length arrived");
        server_check(r.rsi != 0 && r.r10 == R10, "a reply token came, r10 stayed");
        SERVED.fetch_add(1, Ordering::Relaxed);
        let token = r.rsi;
        if last {
            r = Regs { rax: encode(Sys::IpcReply as u64, 0, 0, 0), rdi: token, mr: reply(99), ..Regs::default() };
            // SAFETY: as above.
            unsafe { raw_ipc(&mut r) };
            server_check(r.rax == 0, "the last reply went");
            break;
        }
        r = Regs {
            rax: encode(Sys::IpcReplyReceive as u64, 0, back, 64),
            rdi: ep,
            rsi: token,
            rdx: TIMEOUT_NEVER,
            r10: R10,
            mr: out,
        };
        // SAFETY: as above.
        unsafe { raw_ipc(&mut r) };
    }
    SERVER_DONE.store(true, Ordering::Release);
    sdk::sys::thread_exit(0)
}

fn main() -> u64 {
    let mut c = Checker::new("ipc-regs");
    let before = apps::resources();
    let eps_before = apps::endpoints();
    let ep = c.expect_ok("create a sync endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    EP.store(ep, Ordering::Relaxed);
    let w = apps::start_thread(&mut c, server, 0, PRIO);
    if !w.alive() {
        return c.finish();
    }
    // Let the server reach its receive first.
    sdk::sys::yield_now();
    for (round, &len) in LENS.iter().enumerate() {
        let round = round as u64;
        let mut r = Regs {
            rax: encode(Sys::IpcCall as u64, 0, len, 64),
            rdi: ep,
            rdx: TIMEOUT_NEVER,
            r10: R10,
            mr: request(round),
            ..Regs::default()
        };
        // SAFETY: register-only calls (length and capacity at most 64).
        unsafe { raw_ipc(&mut r) };
        c.check("the call succeeded", r.rax == 0);
        c.check("all eight reply registers came back as the server loaded them", r.mr == reply(round));
        c.check("with the reply's length, no badge, no reply token", r.rdx == len / 2 && r.rdi == 0 && r.rsi == 0);
        c.check("r10 stayed", r.r10 == R10);
    }
    // Through the SDK: every short length, unaligned buffers on both sides;
    // the reply buffer is exactly as long as the reply or longer, in turn.
    let (mut src, mut dst) = ([0u8; 3 + SHORT_MAX], [0u8; 5 + 70]);
    let (mut sent, mut intact, mut clean) = (true, true, true);
    for len in 0..SDK_ROUNDS {
        for (i, b) in src[3..3 + len].iter_mut().enumerate() {
            *b = sdk_request_byte(len, i);
        }
        dst.fill(CANARY);
        let cap = if len % 2 == 0 { len } else { 70 };
        let got = sys_ipc_call(ep, &src[3..3 + len], &mut dst[5..5 + cap]);
        let ok = (0..len).all(|i| dst[5 + i] == sdk_reply_byte(len, i));
        let untouched = dst[..5].iter().chain(&dst[5 + len..]).all(|&b| b == CANARY);
        if got != Ok(len) || !ok || !untouched {
            println!(
                "ipc-regs: SDK call of {} bytes: {:?}, reply intact {}, nothing past it {}",
                len, got, ok, untouched
            );
        }
        sent &= got == Ok(len);
        intact &= ok;
        clean &= untouched;
    }
    c.check("an SDK call of every length up to 64 bytes returned the reply's length", sent);
    c.check("with the reply's bytes in the buffer", intact);
    c.check("and nothing written past them", clean);
    let mut r = Regs { rax: encode(Sys::IpcCall as u64, 0, 8, 64), rdi: ep, rdx: TIMEOUT_NEVER, ..Regs::default() };
    r.mr[0] = STOP;
    // SAFETY: as above.
    unsafe { raw_ipc(&mut r) };
    c.check("the last call got its reply", r.rax == 0 && r.rdx == 0 && r.mr == reply(99));
    w.join();
    c.check(
        "the server checked every call",
        SERVER_DONE.load(Ordering::Acquire) && SERVED.load(Ordering::Relaxed) == (LENS.len() + SDK_ROUNDS + 1) as u64,
    );
    c.check("and found every register as sent", SERVER_OK.load(Ordering::Relaxed));
    c.check("delete the endpoint", sys_endpoint_delete(ep).is_ok());
    apps::check_clean(&mut c, before, eps_before);
    c.finish()
}
