//! Scenario "ipc-regs": a short message travels as all eight message
//! registers exactly as the sender loaded them — whatever its length says
//! counts — on a call, a receive and a reply-and-receive alike, and the
//! registers the ABI keeps (`r10`) survive. A server thread of higher
//! priority waits first, so with the fast path on every call and reply takes
//! it (the registers pass through the CPU); with `nofastpath` the general
//! path must deliver the same.
#![no_std]
#![no_main]

use apps::Checker;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use sdk::abi::ipc::{encode, TIMEOUT_NEVER};
use sdk::abi::Sys;
use sdk::println;
use sdk::syscall_api::*;

sdk::entry!(main);

/// This task's priority in the manifest.
const PRIO: u8 = 11;
/// Message lengths of the rounds.
const LENS: [u64; 5] = [0, 1, 8, 20, 64];
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
        let want = if last { r.mr } else { request(round) };
        server_check(r.rax == 0, "a call arrived");
        server_check(r.mr == want, "all eight message registers arrived as the caller loaded them");
        let len = LENS.get(round as usize).copied().unwrap_or(8);
        server_check(last || r.rdx == len, "the length arrived");
        server_check(r.rsi != 0 && r.r10 == R10, "a reply token came, r10 stayed");
        SERVED.fetch_add(1, Ordering::Relaxed);
        let token = r.rsi;
        let back = if last { 0 } else { len / 2 };
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
            mr: reply(round),
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
    let mut r = Regs { rax: encode(Sys::IpcCall as u64, 0, 8, 64), rdi: ep, rdx: TIMEOUT_NEVER, ..Regs::default() };
    r.mr[0] = STOP;
    // SAFETY: as above.
    unsafe { raw_ipc(&mut r) };
    c.check("the last call got its reply", r.rax == 0 && r.rdx == 0 && r.mr == reply(99));
    w.join();
    c.check(
        "the server checked every call",
        SERVER_DONE.load(Ordering::Acquire) && SERVED.load(Ordering::Relaxed) == 6,
    );
    c.check("and found every register as sent", SERVER_OK.load(Ordering::Relaxed));
    c.check("delete the endpoint", sys_endpoint_delete(ep).is_ok());
    apps::check_clean(&mut c, before, eps_before);
    c.finish()
}
