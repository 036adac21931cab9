//! Scenario "resend": the same buffers sent again and again between two
//! tasks by remap, with writes on both sides in between. The client calls
//! the server (`resend-srv`) 72 times, alternating between two pairs of
//! request and reply buffers; the server alternates between two buffers,
//! receiving each request and replying from the same buffer. Every message
//! sits at the same page offset on both sides and is at least 16 KiB, so
//! its whole pages are remapped copy-on-write both ways.
//!
//! Each pair goes through a cycle of six uses (`apps::resend_phase`), so
//! that the kernel meets every kind of remap destination:
//!
//! | phase | the server writes its copy | the client writes after the call | so the pair's next use remaps |
//! | --- | --- | --- | --- |
//! | 0 | — | — | request and reply: all pages settled |
//! | 1 | — | — | request settled; reply: one page fresh |
//! | 2 | one page | — | request: one page fresh; reply: one page fresh |
//! | 3 | — | one page of the request, one of the reply buffer | request: one page fresh; reply: all fresh |
//! | 4 | all | the whole request buffer | request and reply: all fresh |
//! | 5 | — | the whole reply buffer | (shape changes) request: the pages both shapes share settled; reply: all fresh |
//!
//! A settled page is one the destination already maps exactly as the
//! remap would leave it (the same frame, read-only, copy-on-write); the
//! kernel then leaves it alone. Both sides keep a private shadow copy of
//! each buffer that takes every write they make and is never sent. After
//! every call the client checks that the reply is byte for byte the
//! request as sent with the server's writes, that its reply buffer kept
//! its bytes around the reply, and that its request buffers and its other
//! pair's reply buffer equal their shadows (the server's writes never
//! reached them); the server checks the same of its own buffers (the
//! client's writes never reached them). The kernel's counters show every
//! whole page remapped, and every frame comes back at the end.
#![no_std]
#![no_main]

use apps::{first_difference, resend_phase, resend_round, Checker, RESEND_REGION as REGION, RESEND_ROUNDS as ROUNDS};
use core::ops::Range;
use sdk::abi::{exit, map, rights, Counter};
use sdk::syscall_api::*;
use sdk::{println, sys};

sdk::entry!(main);

/// One buffer region and its shadow: a private copy that takes every
/// write the client makes to the buffer and is never sent.
struct Mirrored {
    buf: &'static mut [u8],
    shadow: &'static mut [u8],
}

impl Mirrored {
    fn new(c: &mut Checker) -> Option<Mirrored> {
        Some(Mirrored { buf: region(c)?, shadow: region(c)? })
    }

    /// Writes the pattern `seed` into `range` of the buffer and its shadow.
    fn write(&mut self, range: Range<usize>, seed: u64) {
        apps::fill_pattern(&mut self.buf[range.clone()], seed);
        apps::fill_pattern(&mut self.shadow[range], seed);
    }

    /// Where the buffer first differs from its shadow.
    fn differs(&self) -> Option<usize> {
        first_difference(self.buf, self.shadow)
    }

    fn unmap(self, c: &mut Checker) {
        for r in [self.buf, self.shadow] {
            c.expect_ok("unmap a buffer region", sys::mem_unmap(r.as_ptr() as u64, REGION as u64));
        }
    }
}

/// The request and reply buffers of one pair.
struct Pair {
    request: Mirrored,
    reply: Mirrored,
}

fn region(c: &mut Checker) -> Option<&'static mut [u8]> {
    let a = c.expect_ok("map a buffer region", sys::mem_map(REGION as u64, map::WRITE));
    // SAFETY: a fresh writable mapping of REGION bytes, used only through
    // this slice and unmapped at the end after its last use.
    (a != 0).then(|| unsafe { core::slice::from_raw_parts_mut(a as *mut u8, REGION) })
}

/// Failed expectations of one kind, each reported with its call.
struct Tally {
    what: &'static str,
    failed: u64,
}

impl Tally {
    const fn new(what: &'static str) -> Tally {
        Tally { what, failed: 0 }
    }

    /// Records the outcome of call `k`: `at` is the first wrong byte.
    fn note(&mut self, k: u64, at: Option<usize>) {
        if let Some(at) = at {
            self.failed += 1;
            println!("resend: FAILED: call {}: {}: wrong at byte {}", k, self.what, at);
        }
    }
}

fn main() -> u64 {
    let mut c = Checker::new("resend");
    let before = apps::resources();
    let eps_before = apps::endpoints();
    let ep = c.expect_ok("create a sync endpoint", sys_endpoint_create(EndpointKind::Sync, 0));
    let srv = c.expect_ok("mint a receive token for the server", sys::cap_mint(ep, rights::READ | rights::GRANT, 0));
    let cl = c.expect_ok("mint a send token", sys::cap_mint(ep, rights::WRITE, 0));
    let server = match sys::task_spawn_with("resend-srv", &[srv]) {
        Ok(t) => t,
        Err(e) => {
            println!("resend: FAILED: spawning resend-srv: {:?}", e);
            return 1;
        }
    };
    c.expect_ok("delete the server's token here (the server has its copy)", sys::cap_delete(srv));
    let pairs = [0u64, 1].map(|p| {
        let (request, reply) = (Mirrored::new(&mut c)?, Mirrored::new(&mut c)?);
        let mut pair = Pair { request, reply };
        pair.request.write(0..REGION, 1000 + p);
        pair.reply.write(0..REGION, 2000 + p);
        Some(pair)
    });
    let [Some(p0), Some(p1)] = pairs else { return c.finish() };
    let mut pairs = [p0, p1];
    let mut calls = Tally::new("every call returned the whole reply");
    let mut replies = Tally::new("every reply is the request as sent, with the server's writes");
    let mut around = Tally::new("every reply buffer kept its bytes around the reply");
    let mut requests = Tally::new("after every call the request buffer holds only the client's writes");
    let mut others = Tally::new("after every call the other pair's buffers hold only the client's writes and replies");
    let (remapped0, cow0) = (sys::counter(Counter::RemappedPages), sys::counter(Counter::CowCopies));
    let mut whole_pages = 0u64;
    for k in 0..ROUNDS {
        let r = resend_round(k);
        let (off, end) = (r.off, r.off + r.len);
        whole_pages += 2 * r.whole_pages() as u64;
        let [p0, p1] = &mut pairs;
        let (pair, other) = if k.is_multiple_of(2) { (p0, &*p1) } else { (p1, &*p0) };
        let got = sys_ipc_call(cl, &pair.request.buf[off..end], &mut pair.reply.buf[off..]);
        if got != Ok(r.len) {
            println!("resend: FAILED: call {} returned {:?}", k, got);
            calls.failed += 1;
        }
        let reply = &pair.reply.buf[off..end];
        let sent = &pair.request.shadow[off..end];
        replies.note(k, (0..r.len).find(|&j| reply[j] != r.reply_byte(sent[j], j)));
        let (rb, rs) = (&pair.reply.buf, &pair.reply.shadow);
        let outside = first_difference(&rb[..off], &rs[..off])
            .or_else(|| first_difference(&rb[end..], &rs[end..]).map(|j| end + j));
        around.note(k, outside);
        pair.reply.shadow[off..end].copy_from_slice(&pair.reply.buf[off..end]);
        requests.note(k, pair.request.differs());
        others.note(k, other.request.differs().or(other.reply.differs()));
        // The client's writes, in pages the server may still share.
        let seed = 10_000 + k;
        match resend_phase(k) {
            3 => {
                let (a, b) = r.page(k + 1);
                pair.request.write(off + a..off + b, seed);
                let (a, b) = r.page(k + 3);
                pair.reply.write(off + a..off + b, seed + 1);
            }
            4 => pair.request.write(0..REGION, seed),
            5 => pair.reply.write(0..REGION, seed),
            _ => {}
        }
    }
    let remapped = sys::counter(Counter::RemappedPages) - remapped0;
    let cow = sys::counter(Counter::CowCopies) - cow0;
    println!(
        "resend: {} calls: {} pages remapped of {} whole pages sent, {} copy-on-write copies",
        ROUNDS, remapped, whole_pages, cow
    );
    for t in [&calls, &replies, &around, &requests, &others] {
        c.check(t.what, t.failed == 0);
    }
    c.expect_ok("send 'quit'", sys_ipc_send(cl, b"quit"));
    apps::wait_expect(&mut c, "resend-srv", server, (exit::EXITED, 0));
    for pair in pairs {
        pair.request.unmap(&mut c);
        pair.reply.unmap(&mut c);
    }
    c.expect_ok("delete the send token", sys::cap_delete(cl));
    c.expect_ok("delete the endpoint", sys_endpoint_delete(ep));
    apps::check_clean(&mut c, before, eps_before);
    c.finish()
}
