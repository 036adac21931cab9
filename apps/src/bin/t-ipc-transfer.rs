//! Scenario "ipc-transfer": messages of every size class reach the other
//! task byte for byte. A client calls the echo server (`ipc-echo`, in its
//! own address space) with 0 to 65536 bytes from unaligned buffers: through
//! registers (≤ 64 bytes), copied, and large. The server checks every byte
//! and the canaries around its unaligned receive buffer and replies with a
//! transform of the payload; the client checks the reply byte for byte, the
//! canaries around its reply buffer, that its request buffer was not
//! written, and that earlier requests and replies stay unchanged while the
//! server reuses its buffers (no pages shared behind either side's back).
#![no_std]
#![no_main]

use apps::Checker;
use sdk::abi::{exit, map, rights, Counter};
use sdk::syscall_api::*;
use sdk::{println, sys};

sdk::entry!(main);

const MAX: usize = 64 * 1024;
const SLACK: usize = 100;
/// Region for one request or reply buffer: room for an odd offset of up to a page.
const REGION: usize = MAX + SLACK + 2 * 4096;
const SEND_CANARY: u8 = 0x3C;
const REPLY_CANARY: u8 = 0x96;
/// Badge of the client's token (ipc-echo checks it).
const CLIENT_BADGE: u64 = 0xEC40;
/// Request sizes: empty, in registers, just past registers, page-sized, large.
const SIZES: [usize; 18] =
    [0, 1, 8, 56, 63, 64, 65, 100, 4095, 4096, 4097, 8192, 16383, 16384, 16385, 40000, 65535, 65536];
/// Odd offsets of the request and reply buffers, used in turn.
const ODD_OFFSETS: [usize; 5] = [1, 4095, 2049, 7, 3];

/// Offsets of the request and reply buffers of the `k`-th call. Calls
/// 0, 1, 4, 5, … use the offsets ipc-echo uses for that message (its
/// receive buffer at 4093 or page-aligned, its reply at 2051 or
/// page-aligned, in turn), so both sides share the offset within a page;
/// the others use odd offsets that differ from the server's.
fn offsets(k: usize) -> (usize, usize) {
    match (k / 2 % 2, k % 2) {
        (0, 0) => (4093, 2051),
        (0, _) => (4096, 4096),
        _ => (ODD_OFFSETS[k % 5], ODD_OFFSETS[(k + 2) % 5]),
    }
}

/// The pattern seed of a request of `len` bytes (ipc-echo checks the same).
fn seed(len: usize) -> u64 {
    0x7000 + len as u64
}

/// Reply byte `i` for request byte `b` (as ipc-echo computes it).
fn transform(b: u8, i: usize) -> u8 {
    b.rotate_left(3) ^ (i as u8).wrapping_mul(7) ^ 0x5A
}

fn region(c: &mut Checker) -> &'static mut [u8] {
    let a = c.expect_ok("map a buffer region", sys::mem_map(REGION as u64, map::WRITE));
    if a == 0 {
        return &mut [];
    }
    // SAFETY: a fresh writable mapping of REGION bytes, used only through
    // this slice and unmapped at the end after its last use.
    unsafe { core::slice::from_raw_parts_mut(a as *mut u8, REGION) }
}

/// A finished call whose buffers are checked again later.
struct Done {
    len: usize,
    send: usize,
    reply: usize,
    soff: usize,
    roff: usize,
}

fn reply_ok(buf: &[u8], len: usize) -> Option<usize> {
    (0..len).find(|&i| buf[i] != transform(apps::pattern_byte(seed(len), i), i))
}

fn main() -> u64 {
    let mut c = Checker::new("ipc-transfer");
    let before = apps::resources();
    let eps_before = apps::endpoints();
    let ep = c.expect_ok("create a sync endpoint (64 KiB maximum)", sys_endpoint_create(EndpointKind::Sync, 0));
    let srv = c.expect_ok("mint a receive token for the server", sys::cap_mint(ep, rights::READ | rights::GRANT, 0));
    let cl = c.expect_ok("mint a badged send token", sys::cap_mint(ep, rights::WRITE, CLIENT_BADGE));
    let server = match sys::task_spawn_with("ipc-echo", &[srv]) {
        Ok(t) => t,
        Err(e) => {
            println!("ipc-transfer: FAILED: spawning ipc-echo: {:?}", e);
            return 1;
        }
    };
    c.expect_ok("delete the server's token here (the server has its copy)", sys::cap_delete(srv));
    let sends = [region(&mut c), region(&mut c)];
    let replies = [region(&mut c), region(&mut c)];
    if sends.iter().chain(replies.iter()).any(|r| r.is_empty()) {
        return c.finish();
    }
    let (mut sends, mut replies) = (sends, replies);
    let mut last: Option<Done> = None;
    let mut total = 0u64;
    let (remapped0, cow0) = (sys::counter(Counter::RemappedPages), sys::counter(Counter::CowCopies));
    // Every size twice: once with the server's offsets, once with others.
    for (k, &len) in SIZES.iter().chain(SIZES.iter()).enumerate() {
        let (soff, roff) = offsets(k);
        let (s, r) = (k % 2, k % 2);
        sends[s].fill(SEND_CANARY);
        apps::fill_pattern(&mut sends[s][soff..soff + len], seed(len));
        replies[r].fill(REPLY_CANARY);
        let (send, reply) = (&sends[s][soff..soff + len], &mut replies[r][roff..roff + MAX + SLACK]);
        let got = sys_ipc_call(cl, send, reply);
        let mut ok = got == Ok(len);
        if !ok {
            println!("ipc-transfer: call with {} bytes returned {:?}", len, got);
        }
        if let Some(i) = reply_ok(&replies[r][roff..], len) {
            println!("ipc-transfer: reply to {} bytes differs at byte {}", len, i);
            ok = false;
        }
        let canaries = replies[r][..roff].iter().all(|&b| b == REPLY_CANARY)
            && replies[r][roff + len..].iter().all(|&b| b == REPLY_CANARY);
        let untouched = sends[s][..soff].iter().all(|&b| b == SEND_CANARY)
            && sends[s][soff + len..].iter().all(|&b| b == SEND_CANARY)
            && apps::pattern_mismatch(&sends[s][soff..soff + len], seed(len)).is_none();
        println!(
            "ipc-transfer: call with {} bytes, request at page offset {}, reply at {}: reply {}",
            len,
            soff % 4096,
            roff % 4096,
            if ok { "intact" } else { "WRONG" }
        );
        c.check("the reply came back whole and transformed", ok);
        c.check("nothing written outside the reply", canaries);
        c.check("the request buffer was not written", untouched);
        // The previous call's buffers must not have changed while the server
        // reused its own for this call.
        if let Some(d) = last.take() {
            let still = reply_ok(&replies[d.reply][d.roff..], d.len).is_none()
                && apps::pattern_mismatch(&sends[d.send][d.soff..d.soff + d.len], seed(d.len)).is_none();
            c.check("the previous request and reply are unchanged", still);
        }
        last = Some(Done { len, send: s, reply: r, soff, roff });
        total += len as u64;
    }
    // Same-offset requests and replies of 16 KiB or more may be remapped
    // (copy-on-write) rather than copied; the checks above hold either way.
    println!(
        "ipc-transfer: {} pages remapped, {} copy-on-write copies",
        sys::counter(Counter::RemappedPages) - remapped0,
        sys::counter(Counter::CowCopies) - cow0
    );
    c.expect_ok("tell the server to quit", sys_ipc_send(cl, b"quit"));
    apps::wait_expect(&mut c, "ipc-echo", server, (exit::EXITED, 0));
    let n = 2 * SIZES.len() as u64;
    let stats = sys_endpoint_stats(ep);
    println!("ipc-transfer: endpoint stats {:?}; {} calls, {} request bytes", stats, n, total);
    c.check("the endpoint counted every call and byte", stats == Ok((n + 1, total + 4, n)));
    for r in sends.iter_mut().chain(replies.iter_mut()) {
        let (a, len) = (r.as_ptr() as u64, r.len() as u64);
        *r = &mut [];
        c.expect_ok("unmap a buffer region", sys::mem_unmap(a, len));
    }
    c.expect_ok("delete the endpoint", sys_endpoint_delete(ep));
    apps::check_clean(&mut c, before, eps_before);
    c.finish()
}
