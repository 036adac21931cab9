//! Host tests of the IPC engine.

use super::*;
use abi::token;
use std::boxed::Box;
use std::collections::BTreeMap;
use std::vec;

// ===================== a model of user memory =====================

const PAGE: u64 = 4096;

#[derive(Clone, PartialEq, Eq)]
struct Page {
    data: Box<[u8; PAGE as usize]>,
    read: bool,
    write: bool,
}

/// User memory of every space, page by page, plus the queue storage of
/// asynchronous endpoints.
#[derive(Clone, Default, PartialEq, Eq)]
struct Mem {
    pages: BTreeMap<(SpaceId, u64), Page>,
    queues: BTreeMap<usize, Vec<Vec<u8>>>,
    /// Bytes of queue storage reserved now.
    queue_bytes: usize,
    /// `queue_alloc` fails when it would take `queue_bytes` past this.
    queue_limit: Option<usize>,
    /// Successful copies (user to user, into and out of queues).
    copies: usize,
}

impl core::fmt::Debug for Mem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mem")
            .field("pages", &self.pages.len())
            .field("queues", &self.queues.keys().collect::<Vec<_>>())
            .field("queue_bytes", &self.queue_bytes)
            .finish()
    }
}

impl Mem {
    fn pages_of(addr: u64, len: usize) -> Option<core::ops::RangeInclusive<u64>> {
        let end = addr.checked_add(len as u64)?;
        Some(addr / PAGE..=(end - 1) / PAGE)
    }

    fn all_pages(&self, space: SpaceId, addr: u64, len: usize, ok: impl Fn(&Page) -> bool) -> bool {
        if len == 0 {
            return true;
        }
        let Some(range) = Self::pages_of(addr, len) else { return false };
        range.into_iter().all(|p| self.pages.get(&(space, p)).is_some_and(&ok))
    }

    /// Maps `len` bytes at `addr` (whole pages, zeroed when new).
    fn map(&mut self, space: SpaceId, addr: u64, len: usize, read: bool, write: bool) {
        for p in Self::pages_of(addr, len.max(1)).unwrap() {
            let page = self.pages.entry((space, p)).or_insert_with(|| Page {
                data: Box::new([0; PAGE as usize]),
                read: false,
                write: false,
            });
            page.read = read;
            page.write = write;
        }
    }

    fn unmap(&mut self, space: SpaceId, addr: u64, len: usize) {
        for p in Self::pages_of(addr, len.max(1)).unwrap() {
            self.pages.remove(&(space, p));
        }
    }

    /// Writes bytes whatever the page rights (the test's own access).
    fn poke(&mut self, space: SpaceId, addr: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let a = addr + i as u64;
            let page = self.pages.get_mut(&(space, a / PAGE)).expect("poke into mapped memory");
            page.data[(a % PAGE) as usize] = b;
        }
    }

    /// Reads bytes whatever the page rights.
    fn peek(&self, space: SpaceId, addr: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| {
                let a = addr + i;
                self.pages.get(&(space, a / PAGE)).expect("peek into mapped memory").data[(a % PAGE) as usize]
            })
            .collect()
    }

    fn peek_u64(&self, space: SpaceId, addr: u64) -> u64 {
        u64::from_le_bytes(self.peek(space, addr, 8).try_into().unwrap())
    }
}

impl Env for Mem {
    fn copy(&mut self, from: (SpaceId, u64), to: (SpaceId, u64), len: usize) -> Result<(), Side> {
        if !self.readable(from.0, from.1, len) {
            return Err(Side::Source);
        }
        if !self.writable(to.0, to.1, len) {
            return Err(Side::Destination);
        }
        let data = self.peek(from.0, from.1, len);
        self.poke(to.0, to.1, &data);
        self.copies += 1;
        Ok(())
    }

    fn readable(&self, space: SpaceId, addr: u64, len: usize) -> bool {
        self.all_pages(space, addr, len, |p| p.read)
    }

    fn writable(&self, space: SpaceId, addr: u64, len: usize) -> bool {
        self.all_pages(space, addr, len, |p| p.write)
    }

    fn queue_alloc(&mut self, ep: usize, slots: usize, bytes: usize) -> bool {
        assert!(!self.queues.contains_key(&ep), "queue storage of endpoint {ep} reserved twice");
        let total = slots * bytes;
        if self.queue_limit.is_some_and(|l| self.queue_bytes + total > l) {
            return false;
        }
        self.queues.insert(ep, vec![vec![0; bytes]; slots]);
        self.queue_bytes += total;
        true
    }

    fn queue_free(&mut self, ep: usize) {
        let q = self.queues.remove(&ep).expect("queue storage freed that was not reserved");
        self.queue_bytes -= q.iter().map(Vec::len).sum::<usize>();
    }

    fn queue_store(&mut self, ep: usize, slot: usize, from: (SpaceId, u64), len: usize) -> Result<(), Side> {
        let size = self.queues.get(&ep).expect("store into reserved storage")[slot].len();
        assert!(len <= size, "message of {len} bytes stored into a slot of {size}");
        if !self.readable(from.0, from.1, len) {
            return Err(Side::Source);
        }
        let data = self.peek(from.0, from.1, len);
        self.queues.get_mut(&ep).unwrap()[slot][..len].copy_from_slice(&data);
        self.copies += 1;
        Ok(())
    }

    fn queue_load(&mut self, ep: usize, slot: usize, to: (SpaceId, u64), len: usize) -> Result<(), Side> {
        let data = self.queues.get(&ep).expect("load from reserved storage")[slot][..len].to_vec();
        if !self.writable(to.0, to.1, len) {
            return Err(Side::Destination);
        }
        self.poke(to.0, to.1, &data);
        self.copies += 1;
        Ok(())
    }
}

#[test]
fn the_memory_model_checks_every_page() {
    let mut m = Mem::default();
    m.map(1, 0x1000, 0x2000, true, true);
    m.map(1, 0x3000, 0x1000, true, false);
    assert!(m.readable(1, 0x1000, 0x3000));
    assert!(!m.writable(1, 0x1000, 0x3000));
    assert!(m.writable(1, 0x2fff, 1));
    assert!(!m.writable(1, 0x2fff, 2));
    assert!(!m.readable(1, 0x0fff, 2));
    assert!(!m.readable(2, 0x1000, 1));
    assert!(m.readable(2, 0x1000, 0));
    assert!(!m.readable(1, u64::MAX - 3, 8));
    m.poke(1, 0x1ffe, &[1, 2, 3, 4]);
    assert_eq!(m.copy((1, 0x1ffe), (1, 0x2ffc), 4), Ok(()));
    assert_eq!(m.peek(1, 0x2ffc, 4), [1, 2, 3, 4]);
    assert_eq!(m.copy((1, 0x1ffe), (1, 0x3000), 4), Err(Side::Destination));
    assert_eq!(m.copy((2, 0x1ffe), (1, 0x1000), 4), Err(Side::Source));
    assert!(m.queue_alloc(5, 2, 100));
    assert_eq!(m.queue_bytes, 200);
    assert_eq!(m.queue_store(5, 1, (1, 0x1ffe), 4), Ok(()));
    assert_eq!(m.queue_load(5, 1, (1, 0x3000), 4), Err(Side::Destination));
    assert_eq!(m.queue_load(5, 1, (1, 0x1000), 4), Ok(()));
    assert_eq!(m.peek(1, 0x1000, 4), [1, 2, 3, 4]);
    m.queue_free(5);
    assert_eq!(m.queue_bytes, 0);
    m.unmap(1, 0x1000, 1);
    assert!(!m.readable(1, 0x1000, 1));
}

// ===================== a small world =====================

/// The task whose table holds capabilities in flight.
const HOLDER: TaskId = 7;
const SLOTS: usize = 64;
/// Where each space has a mapped, writable region for buffers.
const BUF: u64 = 0x10_0000;
const BUF_LEN: usize = 0x3_0000;

fn space_of(task: TaskId) -> SpaceId {
    0x100 + task as u64
}

struct W {
    ipc: Ipc,
    caps: CapSpace,
    mem: Mem,
}

impl W {
    /// Tasks 0, 1, 2 and the holder; each task's space maps `BUF`.
    fn new() -> W {
        let mut caps = CapSpace::new(SLOTS);
        let mut mem = Mem::default();
        for t in [0, 1, 2, HOLDER] {
            caps.add_task(t).unwrap();
            mem.map(space_of(t), BUF, BUF_LEN, true, true);
        }
        W { ipc: Ipc::new(HOLDER), caps, mem }
    }

    fn thread(&mut self, id: ThreadId, task: TaskId, priority: u8) {
        self.ipc.add_thread(id, task, space_of(task), priority);
    }

    /// A new endpoint of `task`: its token and id.
    fn endpoint(&mut self, task: TaskId, kind: EndpointKind, max_msg: usize) -> (u64, usize) {
        let tok = self.ipc.create_endpoint(&mut self.caps, &mut self.mem, task, kind, max_msg).unwrap();
        (tok, self.caps.lookup(task, tok).unwrap().object.id as usize)
    }

    /// A capability of `to` derived from `from`'s `tok` with `rights` and `badge`.
    fn give(&mut self, from: TaskId, tok: u64, to: TaskId, rights: u64, badge: u64) -> u64 {
        let minted = self.caps.mint(from, tok, rights::ALL, badge).unwrap();
        let t = self.caps.grant_to(from, minted, to, rights).unwrap();
        self.caps.delete(from, minted).unwrap();
        t
    }

    fn send(&mut self, t: ThreadId, tok: u64, msg: Msg, to: Timeout) -> Outcome {
        self.ipc.send(&mut self.caps, &mut self.mem, t, tok, msg, None, to)
    }

    fn call(&mut self, t: ThreadId, tok: u64, msg: Msg, rbuf: RecvBuf, to: Timeout) -> Outcome {
        self.ipc.send(&mut self.caps, &mut self.mem, t, tok, msg, Some(rbuf), to)
    }

    fn recv(&mut self, t: ThreadId, tok: u64, rbuf: RecvBuf, to: Timeout) -> Outcome {
        self.ipc.receive(&mut self.caps, &mut self.mem, t, tok, rbuf, to)
    }

    fn reply(&mut self, t: ThreadId, tok: u64, msg: Msg) -> Outcome {
        self.ipc.reply(&mut self.caps, &mut self.mem, t, tok, msg)
    }

    #[allow(clippy::too_many_arguments)]
    fn reply_recv(&mut self, t: ThreadId, rtok: u64, msg: Msg, ep: u64, rbuf: RecvBuf, to: Timeout) -> Outcome {
        self.ipc.reply_receive(&mut self.caps, &mut self.mem, t, rtok, msg, ep, rbuf, to)
    }

    fn wakes(&mut self) -> Vec<(ThreadId, IpcResult)> {
        self.ipc.take_wakes()
    }

    /// What the kernel does after capabilities went away (as in
    /// `Kernel::after_cap_changes`): dropped reply rights end their calls,
    /// waits whose token died end.
    fn kernel_after(&mut self) {
        for o in self.caps.take_removed() {
            if o.kind == kind::REPLY {
                self.ipc.reply_dropped(o.id as usize);
            }
        }
        self.ipc.recheck_tokens(&self.caps);
    }

    fn wait(&self, t: ThreadId) -> Wait {
        self.ipc.thread(t).unwrap().wait
    }
}

fn short(len: usize, regs: [u64; MSG_REGS]) -> Msg {
    Msg { len, regs, ..Msg::default() }
}

fn word(w: u64) -> Msg {
    short(8, [w, 0, 0, 0, 0, 0, 0, 0])
}

fn long(buf: u64, len: usize) -> Msg {
    Msg { len, buf, ..Msg::default() }
}

fn rb(addr: u64, cap: usize) -> RecvBuf {
    RecvBuf { addr, cap }
}

const NO_BUF: RecvBuf = RecvBuf { addr: 0, cap: 0 };

fn done(o: Outcome) -> Received {
    match o {
        Outcome::Done(Ok(r)) => r,
        o => panic!("expected success, got {o:?}"),
    }
}

fn failed(o: Outcome) -> IpcError {
    match o {
        Outcome::Done(Err(e)) => e,
        o => panic!("expected an error, got {o:?}"),
    }
}

fn fails_with(o: Outcome, e: Error) {
    assert_eq!(failed(o), IpcError::from(e));
}

fn blocked(o: Outcome) {
    assert_eq!(o, Outcome::Blocked);
}

fn oops(e: Error) -> IpcResult {
    Err(IpcError::from(e))
}

fn sent() -> IpcResult {
    Ok(Received::default())
}

// ===================== bugs found =====================

/// A caller that went away leaves its reply right with the server; that
/// right must not come to name a later call's reply.
#[test]
fn a_stale_reply_right_never_answers_another_call() {
    let mut w = W::new();
    w.thread(0, 0, 1);
    w.thread(1, 0, 1);
    w.thread(2, 1, 1);
    let (ep, _) = w.endpoint(1, EndpointKind::Sync, 0);
    let ep0 = w.give(1, ep, 0, rights::WRITE, 0);
    blocked(w.call(0, ep0, word(1), NO_BUF, Timeout::Never));
    let stale = done(w.recv(2, ep, NO_BUF, Timeout::Never)).reply;
    w.ipc.remove_thread(0);
    assert_eq!(w.wakes(), []);
    blocked(w.call(1, ep0, word(2), NO_BUF, Timeout::Never));
    let fresh = done(w.recv(2, ep, NO_BUF, Timeout::Never)).reply;
    assert_ne!(fresh, stale);
    fails_with(w.reply(2, stale, word(99)), Error::PeerGone);
    assert_eq!(w.wakes(), []);
    assert!(matches!(w.wait(1), Wait::Reply { .. }));
    done(w.reply(2, fresh, word(100)));
    assert_eq!(w.wakes(), [(1, Ok(Received { len: 8, regs: word(100).regs, ..Received::default() }))]);
}

/// The kernel reports the reply right a reply consumed (through
/// `take_removed`) at some later point; by then the reply's number may name
/// a new call, which must not end.
#[test]
fn a_late_report_of_a_used_reply_right_ends_no_other_call() {
    let mut w = W::new();
    w.thread(0, 0, 1);
    w.thread(1, 0, 1);
    w.thread(2, 1, 1);
    let (ep, _) = w.endpoint(1, EndpointKind::Sync, 0);
    let ep0 = w.give(1, ep, 0, rights::WRITE, 0);
    blocked(w.call(0, ep0, word(1), NO_BUF, Timeout::Never));
    let r0 = done(w.recv(2, ep, NO_BUF, Timeout::Never)).reply;
    blocked(w.call(1, ep0, word(2), NO_BUF, Timeout::Never));
    let got = done(w.reply_recv(2, r0, word(10), ep, NO_BUF, Timeout::Never));
    assert_eq!(got.regs[0], 2);
    assert_eq!(w.wakes().len(), 1);
    w.kernel_after();
    assert_eq!(w.wakes(), []);
    assert!(matches!(w.wait(1), Wait::Reply { .. }));
    done(w.reply(2, got.reply, word(20)));
    assert_eq!(w.wakes()[0].1.unwrap().regs[0], 20);
}

/// A blocked sender whose capability died while it waited cannot move into
/// the freed queue place; that must cost nothing (no queue slot, no
/// capability left in the holder's table), and the next blocked sender
/// takes the place.
#[test]
fn a_blocked_sender_that_cannot_move_into_the_queue_leaks_nothing() {
    let mut w = W::new();
    w.thread(0, 0, 5);
    w.thread(1, 0, 1);
    w.thread(2, 1, 1);
    let (q, qid) = w.endpoint(1, EndpointKind::Async(2), 128);
    let q0 = w.give(1, q, 0, rights::WRITE | rights::GRANT, 0);
    let (other, _) = w.endpoint(0, EndpointKind::Sync, 0);
    let doomed = w.caps.copy(0, other).unwrap();
    let sp = space_of(0);
    let a = BUF + 0x100;
    done(w.send(1, q0, word(1), Timeout::Zero));
    w.mem.poke(sp, a, &[0xB0; 100]);
    done(w.send(1, q0, long(a, 100), Timeout::Zero));
    // Full: the high-priority sender blocks with a message carrying two
    // capabilities, the low-priority one with a plain message.
    let mut m = long(a + 200, 100);
    w.mem.poke(sp, a + 200, &[0xC0; 100]);
    m.caps[0] = other;
    m.caps[1] = doomed;
    m.ncaps = 2;
    blocked(w.send(0, q0, m, Timeout::Never));
    blocked(w.send(1, q0, word(3), Timeout::Never));
    w.caps.delete(0, doomed).unwrap();
    w.kernel_after();
    assert_eq!(w.wakes(), []);
    // Receiving the short message frees a place.
    assert_eq!(done(w.recv(2, q, NO_BUF, Timeout::Zero)).regs[0], 1);
    assert_eq!(w.wakes(), [(0, oops(Error::NotFound)), (1, sent())]);
    assert_eq!(w.caps.slots_in_use_of(HOLDER), Ok(0));
    // Queue storage is intact: the queued long message, then another.
    let r = BUF + 0x1000;
    assert_eq!(done(w.recv(2, q, rb(r, 128), Timeout::Zero)).len, 100);
    assert_eq!(w.mem.peek(space_of(1), r, 100), [0xB0; 100]);
    w.mem.poke(sp, a + 400, &[0xD0; 100]);
    done(w.send(0, q0, long(a + 400, 100), Timeout::Zero));
    assert_eq!(done(w.recv(2, q, NO_BUF, Timeout::Zero)).regs[0], 3);
    assert_eq!(done(w.recv(2, q, rb(r, 128), Timeout::Zero)).len, 100);
    assert_eq!(w.mem.peek(space_of(1), r, 100), [0xD0; 100]);
    fails_with(w.recv(2, q, NO_BUF, Timeout::Zero), Error::WouldBlock);
    let ep = w.ipc.endpoint(qid).unwrap();
    assert_eq!(ep.free_slots.len(), 2);
}
