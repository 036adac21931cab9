//! Host tests of the IPC engine.

use super::*;
use crate::cap::Capability;
use abi::token;
use proptest::prelude::*;
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
    /// What woken threads received ([`Env::deliver`], [`Env::deliver_plain`]),
    /// in order: the thread, where its registers are, what it got. (The
    /// harness pairs them with the engine's wakes, see `W::wakes`.)
    delivered: Vec<(ThreadId, u64, Received)>,
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

    fn deliver(&mut self, to: (ThreadId, u64), got: &Received) {
        self.delivered.push((to.0, to.1, *got));
    }

    fn deliver_plain(&mut self, to: (ThreadId, u64), msg: &Msg, badge: u64, reply: u64) {
        assert!(msg.len <= SHORT_MAX && msg.ncaps == 0, "a message delivered as plain is not: {msg:?}");
        // All eight registers as the sender had them; no capabilities.
        let got = Received { len: msg.len, regs: msg.regs, badge, reply, caps: [0; MAX_CAPS], ncaps: 0 };
        self.delivered.push((to.0, to.1, got));
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
const BUF_LEN: usize = 0x6_0000;

fn space_of(task: TaskId) -> SpaceId {
    0x100 + task as u64
}

/// Where the harness says thread `t` keeps its registers ([`Ipc::set_frame`]).
fn frame_of(t: ThreadId) -> u64 {
    0xF000_0000 + 0x1000 * t as u64
}

struct W {
    ipc: Ipc,
    caps: CapSpace,
    mem: Mem,
}

impl W {
    /// Tasks 0, 1, 2 and the holder; each task's space maps `BUF`.
    fn new() -> W {
        W::with_buffers(BUF_LEN)
    }

    fn with_buffers(len: usize) -> W {
        let mut caps = CapSpace::new(SLOTS);
        let mut mem = Mem::default();
        for t in [0, 1, 2, HOLDER] {
            caps.add_task(t).unwrap();
            mem.map(space_of(t), BUF, len, true, true);
        }
        W { ipc: Ipc::new(HOLDER), caps, mem }
    }

    fn thread(&mut self, id: ThreadId, task: TaskId, priority: u8) {
        self.ipc.add_thread(id, task, space_of(task), priority);
        self.ipc.set_frame(id, frame_of(id));
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
        self.ipc.send(&mut self.caps, &mut self.mem, t, tok, &msg, None, to)
    }

    fn call(&mut self, t: ThreadId, tok: u64, msg: Msg, rbuf: RecvBuf, to: Timeout) -> Outcome {
        self.ipc.send(&mut self.caps, &mut self.mem, t, tok, &msg, Some(rbuf), to)
    }

    fn recv(&mut self, t: ThreadId, tok: u64, rbuf: RecvBuf, to: Timeout) -> Outcome {
        self.ipc.receive(&mut self.caps, &mut self.mem, t, tok, rbuf, to)
    }

    fn reply(&mut self, t: ThreadId, tok: u64, msg: Msg) -> Outcome {
        self.ipc.reply(&mut self.caps, &mut self.mem, t, tok, &msg)
    }

    #[allow(clippy::too_many_arguments)]
    fn reply_recv(&mut self, t: ThreadId, rtok: u64, msg: Msg, ep: u64, rbuf: RecvBuf, to: Timeout) -> Outcome {
        self.ipc.reply_receive(&mut self.caps, &mut self.mem, t, rtok, &msg, ep, rbuf, to)
    }

    /// The wakes of the last operations, each with the result its thread
    /// returns with, checked: registered threads, no longer waiting, each
    /// once. A thread the engine lists as [`Wake::Delivered`] got its
    /// result through the memory model, at its own frame, exactly once.
    fn wakes(&mut self) -> Vec<(ThreadId, IpcResult)> {
        let mut delivered = core::mem::take(&mut self.mem.delivered);
        let wakes: Vec<(ThreadId, IpcResult)> = self
            .ipc
            .take_wakes()
            .into_iter()
            .map(|(t, w)| match w {
                Wake::Delivered => {
                    let i = delivered.iter().position(|d| d.0 == t);
                    let (_, frame, got) = delivered.remove(i.unwrap_or_else(|| panic!("thread {t} woken undelivered")));
                    assert_eq!(Some(frame), self.ipc.thread(t).map(|x| x.frame), "delivered to a wrong frame");
                    (t, Ok(got))
                }
                Wake::Sent => (t, Ok(Received::default())),
                Wake::Failed(e) => (t, Err(e)),
            })
            .collect();
        // A delivery without its wake went to a thread since removed (its
        // wake with it).
        for (t, ..) in delivered {
            assert!(self.ipc.thread(t).is_none(), "thread {t} got a message without a wake");
        }
        check_wakes(&self.ipc, &wakes);
        wakes
    }

    fn check(&self) {
        check_engine(&self.ipc, &self.caps);
    }

    /// What the kernel does after capabilities went away (as in
    /// `Kernel::after_cap_changes`): waits whose token died end. (No reply
    /// right is a capability.)
    fn kernel_after(&mut self) {
        for o in self.caps.take_removed() {
            assert_ne!(o.kind, kind::REPLY, "a reply right was in the capability table");
        }
        self.ipc.recheck_tokens(&self.caps);
    }

    /// What the kernel does when a task ends (as in `Kernel::end_task`):
    /// its threads go, then its reply rights, then its capabilities.
    fn end_task(&mut self, task: TaskId) {
        let threads: Vec<ThreadId> =
            (0..self.ipc.threads.len()).filter(|&t| self.ipc.thread(t).is_some_and(|x| x.task == task)).collect();
        for t in threads {
            self.ipc.remove_thread(t);
        }
        self.ipc.drop_replies_of(task);
        self.caps.remove_task(task).unwrap();
        self.caps.add_task(task).unwrap();
        self.kernel_after();
    }

    fn wait(&self, t: ThreadId) -> Wait {
        self.ipc.thread(t).unwrap().wait
    }
}

/// The fast call as the kernel makes it: the message registers pass through
/// the CPU, so the server receives `regs` as they are.
fn fast_call(
    ipc: &mut Ipc,
    caps: &CapSpace,
    t: ThreadId,
    token: u64,
    len: usize,
    regs: [u64; MSG_REGS],
    rbuf: RecvBuf,
) -> Option<(ThreadId, Received)> {
    let p = ipc.fast_call(caps, t, token, len, || rbuf, None)?;
    Some((p.thread, Received { len, regs, badge: p.badge, reply: p.reply, ..Received::default() }))
}

/// The fast reply-and-receive as the kernel makes it (see [`fast_call`]).
#[allow(clippy::too_many_arguments)]
fn fast_reply_receive(
    ipc: &mut Ipc,
    caps: &CapSpace,
    t: ThreadId,
    reply_token: u64,
    len: usize,
    regs: [u64; MSG_REGS],
    ep_token: u64,
    rbuf: RecvBuf,
) -> Option<(ThreadId, Received)> {
    let p = ipc.fast_reply_receive(caps, t, reply_token, len, ep_token, || rbuf, None)?;
    Some((p.thread, Received { len, regs, ..Received::default() }))
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

/// Room for any message that travels in registers (no memory is touched).
const REGS: RecvBuf = RecvBuf { addr: 0, cap: SHORT_MAX };

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
    blocked(w.call(0, ep0, word(1), REGS, Timeout::Never));
    let stale = done(w.recv(2, ep, REGS, Timeout::Never)).reply;
    w.ipc.remove_thread(0);
    assert_eq!(w.wakes(), []);
    blocked(w.call(1, ep0, word(2), REGS, Timeout::Never));
    let fresh = done(w.recv(2, ep, REGS, Timeout::Never)).reply;
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
    blocked(w.call(0, ep0, word(1), REGS, Timeout::Never));
    let r0 = done(w.recv(2, ep, REGS, Timeout::Never)).reply;
    blocked(w.call(1, ep0, word(2), REGS, Timeout::Never));
    let got = done(w.reply_recv(2, r0, word(10), ep, REGS, Timeout::Never));
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
    assert_eq!(done(w.recv(2, q, REGS, Timeout::Zero)).regs[0], 1);
    assert_eq!(w.wakes(), [(0, oops(Error::NotFound)), (1, sent())]);
    assert_eq!(w.caps.slots_in_use_of(HOLDER), Ok(0));
    // Queue storage is intact: the queued long message, then another.
    let r = BUF + 0x1000;
    assert_eq!(done(w.recv(2, q, rb(r, 128), Timeout::Zero)).len, 100);
    assert_eq!(w.mem.peek(space_of(1), r, 100), [0xB0; 100]);
    w.mem.poke(sp, a + 400, &[0xD0; 100]);
    done(w.send(0, q0, long(a + 400, 100), Timeout::Zero));
    assert_eq!(done(w.recv(2, q, REGS, Timeout::Zero)).regs[0], 3);
    assert_eq!(done(w.recv(2, q, rb(r, 128), Timeout::Zero)).len, 100);
    assert_eq!(w.mem.peek(space_of(1), r, 100), [0xD0; 100]);
    fails_with(w.recv(2, q, REGS, Timeout::Zero), Error::WouldBlock);
    let ep = w.ipc.endpoint(qid).unwrap();
    assert_eq!(ep.free_slots.len(), 2);
}

// ===================== invariants =====================

fn check_wakes(ipc: &Ipc, wakes: &[(ThreadId, IpcResult)]) {
    for (i, (t, _)) in wakes.iter().enumerate() {
        let th = ipc.thread(*t).unwrap_or_else(|| panic!("woken thread {t} is not registered"));
        assert_eq!(th.wait, Wait::None, "woken thread {t} still waits");
        assert_eq!(th.deadline, None, "woken thread {t} keeps a deadline");
        assert!(wakes[..i].iter().all(|(u, _)| u != t), "thread {t} woken twice: {wakes:?}");
    }
}

/// Panics unless the engine's bookkeeping is consistent with itself and
/// with the capability space.
fn check_engine(ipc: &Ipc, caps: &CapSpace) {
    let eps = || ipc.endpoints.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (i, e)));
    for (i, slot) in ipc.threads.iter().enumerate() {
        let mut places = Vec::new();
        for (id, e) in eps() {
            places.extend(e.senders.members(&ipc.threads).iter().filter(|&&x| x == i).map(|_| (id, true)));
            places.extend(e.receivers.members(&ipc.threads).iter().filter(|&&x| x == i).map(|_| (id, false)));
        }
        if places.is_empty() {
            if let Some(t) = slot {
                assert_eq!(t.links, Links::default(), "thread {i} is queued nowhere but keeps links");
            }
        }
        let Some(t) = slot else {
            assert!(places.is_empty(), "unregistered thread {i} is queued");
            continue;
        };
        match t.wait {
            Wait::None => {
                assert!(places.is_empty(), "thread {i} is queued but not waiting: {places:?}");
                assert_eq!(t.deadline, None, "thread {i} has a deadline but no wait");
            }
            Wait::Send { ep, call, .. } => {
                assert_eq!(places, [(ep, true)], "sending thread {i}");
                if call.is_some() {
                    assert_eq!(ipc.endpoint(ep).unwrap().kind, EndpointKind::Sync);
                }
            }
            Wait::Recv { ep, .. } => assert_eq!(places, [(ep, false)], "receiving thread {i}"),
            Wait::Reply { reply, .. } => {
                assert!(places.is_empty(), "thread {i} awaits a reply but is queued");
                assert_eq!(t.deadline, None, "a reply wait has no deadline");
                assert_eq!(reply & 0xFFFF, i, "reply {reply} of thread {i} names its caller");
            }
        }
    }
    let mut in_flight = 0;
    for (id, e) in eps() {
        for q in [&e.senders, &e.receivers] {
            q.check(&ipc.threads);
            let prios: Vec<u8> = q
                .members(&ipc.threads)
                .iter()
                .map(|&x| ipc.thread(x).expect("queued thread registered").priority)
                .collect();
            assert!(prios.windows(2).all(|p| p[0] >= p[1]), "endpoint {id}: queue out of priority order: {prios:?}");
        }
        match e.kind {
            EndpointKind::Sync => {
                assert!(e.queue.is_empty());
                assert!(e.senders.is_empty() || e.receivers.is_empty(), "endpoint {id}: both sides wait");
            }
            EndpointKind::Async(n) => {
                assert!(e.queue.len() <= n, "endpoint {id}: queue over capacity");
                if !e.senders.is_empty() {
                    assert_eq!(e.queue.len(), n, "endpoint {id}: a sender waits while the queue has room");
                }
                if !e.receivers.is_empty() {
                    assert!(e.queue.is_empty() && e.senders.is_empty(), "endpoint {id}: a receiver waits for nothing");
                }
                if e.max_msg > SHORT_MAX {
                    let mut slots: Vec<usize> = e
                        .queue
                        .iter()
                        .filter(|q| q.msg.len > SHORT_MAX)
                        .map(|q| q.slot)
                        .chain(e.free_slots.iter().copied())
                        .collect();
                    slots.sort_unstable();
                    assert_eq!(slots, (0..n).collect::<Vec<_>>(), "endpoint {id}: queue slots lost or shared");
                }
            }
        }
        for q in &e.queue {
            assert!(q.msg.len <= e.max_msg && q.msg.ncaps <= MAX_CAPS);
            assert_eq!(q.msg.caps, q.held);
            in_flight += q.held.iter().take(q.msg.ncaps).filter(|&&c| caps.lookup(ipc.holder, c).is_ok()).count();
        }
    }
    assert_eq!(caps.slots_in_use_of(ipc.holder), Ok(in_flight), "the holder holds exactly the capabilities in flight");
    let mut held = BTreeMap::new();
    let rights = ipc.rights();
    for &(id, holder, caller) in &rights {
        *held.entry(holder).or_insert(0usize) += 1;
        // An orphan whose number came round again (2^32 calls later) is
        // shadowed by the live call until that one is orphaned too.
        if caller.is_none() && rights.iter().any(|&(x, _, c)| x == id && c.is_some()) {
            continue;
        }
        // Exactly one live token, held by exactly one task; it names no
        // capability.
        let tok = reply_token(id);
        assert_eq!(token::kind(tok), kind::REPLY);
        let r = ipc.right(holder, tok).map(|r| (r.id, r.caller.map(|to| to.thread)));
        assert_eq!(r, Some((id, caller)), "reply {id}: its holder's token");
        for task in 0..=HOLDER + 1 {
            if task != holder {
                assert_eq!(ipc.right(task, tok), None, "reply {id} resolves for task {task}");
            }
        }
        assert!(caps.lookup(holder, tok).is_err(), "reply {id} is in the capability table");
        if caller.is_none() {
            // An orphan's caller no longer waits for it.
            let waits = ipc.thread(id & 0xFFFF).map(|t| t.wait);
            assert!(!matches!(waits, Some(Wait::Reply { reply, .. }) if reply == id), "orphan {id}: {waits:?}");
        }
    }
    for task in 0..ipc.replies.held.len().max(HOLDER + 2) {
        let n = held.get(&task).copied().unwrap_or(0);
        assert_eq!(ipc.replies.held_by(task), n, "reply rights counted for task {task}");
        assert!(n <= MAX_REPLIES_PER_TASK, "task {task} holds {n} reply rights");
    }
}

// ===================== rendezvous =====================

fn regs8(words: &[u64]) -> [u64; MSG_REGS] {
    let mut r = [0; MSG_REGS];
    r[..words.len()].copy_from_slice(words);
    r
}

/// Two tasks: threads 0 and 1 in task 0, threads 2 and 3 in task 1; a
/// synchronous endpoint of task 1 (token `ep`, with `ep0` for task 0).
fn pair() -> (W, u64, u64) {
    let mut w = W::new();
    w.thread(0, 0, 1);
    w.thread(1, 0, 1);
    w.thread(2, 1, 1);
    w.thread(3, 1, 1);
    let (ep, _) = w.endpoint(1, EndpointKind::Sync, 0);
    let ep0 = w.give(1, ep, 0, rights::WRITE | rights::READ | rights::GRANT, 0);
    (w, ep, ep0)
}

#[test]
fn sync_send_waits_for_a_receiver() {
    let (mut w, ep, ep0) = pair();
    let m = short(40, regs8(&[1, 2, 3, 4, 5]));
    blocked(w.send(0, ep0, m, Timeout::Never));
    assert_eq!(w.wakes(), []);
    assert!(matches!(w.wait(0), Wait::Send { .. }));
    w.check();
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    assert_eq!(got, Received { len: 40, regs: m.regs, ..Received::default() });
    assert_eq!(w.wakes(), [(0, sent())]);
    assert_eq!(w.wait(0), Wait::None);
    w.check();
    fails_with(w.recv(2, ep, REGS, Timeout::Zero), Error::WouldBlock);
}

#[test]
fn sync_receive_waits_for_a_sender() {
    let (mut w, ep, ep0) = pair();
    blocked(w.recv(2, ep, REGS, Timeout::Never));
    assert!(matches!(w.wait(2), Wait::Recv { .. }));
    w.check();
    let m = short(64, [9; MSG_REGS]);
    assert_eq!(done(w.send(0, ep0, m, Timeout::Zero)), Received::default());
    assert_eq!(w.wakes(), [(2, Ok(Received { len: 64, regs: m.regs, ..Received::default() }))]);
    w.check();
    fails_with(w.send(0, ep0, m, Timeout::Zero), Error::WouldBlock);
    assert_eq!(w.ipc.stats(0).unwrap().send_blocks, 0);
}

#[test]
fn a_receiver_of_the_senders_own_task_works_too() {
    let (mut w, _, ep0) = pair();
    blocked(w.recv(1, ep0, REGS, Timeout::Never));
    done(w.send(0, ep0, word(5), Timeout::Never));
    assert_eq!(w.wakes()[0].1.unwrap().regs[0], 5);
    blocked(w.call(0, ep0, word(6), REGS, Timeout::Never));
    let got = done(w.recv(1, ep0, REGS, Timeout::Never));
    done(w.reply(1, got.reply, word(7)));
    assert_eq!(w.wakes()[0], (0, Ok(Received { len: 8, regs: word(7).regs, ..Received::default() })));
    w.check();
}

// ===================== asynchronous queues =====================

#[test]
fn async_queue_fills_to_capacity_then_blocks_senders() {
    let mut w = W::new();
    w.thread(0, 0, 1);
    w.thread(1, 0, 1);
    w.thread(2, 1, 1);
    let (q, qid) = w.endpoint(1, EndpointKind::Async(3), 0);
    let q0 = w.give(1, q, 0, rights::WRITE, 0);
    for i in 1..=3 {
        assert_eq!(done(w.send(0, q0, word(i), Timeout::Zero)), Received::default());
    }
    assert_eq!(w.ipc.endpoint(qid).unwrap().queue.len(), 3);
    fails_with(w.send(0, q0, word(4), Timeout::Zero), Error::WouldBlock);
    assert_eq!(w.wakes(), []);
    blocked(w.send(0, q0, word(4), Timeout::Never));
    blocked(w.send(1, q0, word(5), Timeout::Never));
    w.check();
    // Each receive takes the oldest message; a blocked sender's message
    // moves into the freed place and the sender is done.
    assert_eq!(done(w.recv(2, q, REGS, Timeout::Zero)).regs[0], 1);
    assert_eq!(w.wakes(), [(0, sent())]);
    assert_eq!(w.ipc.endpoint(qid).unwrap().queue.len(), 3);
    w.check();
    assert_eq!(done(w.recv(2, q, REGS, Timeout::Zero)).regs[0], 2);
    assert_eq!(w.wakes(), [(1, sent())]);
    for i in 3..=5 {
        assert_eq!(done(w.recv(2, q, REGS, Timeout::Zero)).regs[0], i);
        assert_eq!(w.wakes(), []);
    }
    fails_with(w.recv(2, q, REGS, Timeout::Zero), Error::WouldBlock);
    let s = w.ipc.stats(qid).unwrap();
    assert_eq!((s.delivered, s.bytes, s.calls, s.send_blocks, s.recv_blocks), (5, 40, 0, 2, 0));
    w.check();
}

#[test]
fn async_delivers_straight_to_a_waiting_receiver() {
    let mut w = W::new();
    w.thread(0, 0, 1);
    w.thread(2, 1, 1);
    let (q, qid) = w.endpoint(1, EndpointKind::Async(1), 256);
    let q0 = w.give(1, q, 0, rights::WRITE, 3);
    let r = BUF + 0x100;
    blocked(w.recv(2, q, rb(r, 256), Timeout::Never));
    w.mem.poke(space_of(0), BUF, &[0x5A; 200]);
    let copies = w.mem.copies;
    done(w.send(0, q0, long(BUF, 200), Timeout::Zero));
    assert_eq!(w.wakes(), [(2, Ok(Received { len: 200, badge: 3, ..Received::default() }))]);
    assert_eq!(w.mem.copies, copies + 1, "one copy, not through the queue");
    assert_eq!(w.mem.peek(space_of(1), r, 200), [0x5A; 200]);
    assert!(w.ipc.endpoint(qid).unwrap().queue.is_empty());
    // Queued long messages go through the storage: two copies.
    w.mem.poke(space_of(0), BUF, &[0x6B; 200]);
    done(w.send(0, q0, long(BUF, 200), Timeout::Zero));
    w.mem.poke(space_of(0), BUF, &[0; 200]);
    assert_eq!(done(w.recv(2, q, rb(r, 200), Timeout::Zero)).len, 200);
    assert_eq!(w.mem.peek(space_of(1), r, 200), [0x6B; 200]);
    assert_eq!(w.mem.copies, copies + 3);
    w.check();
}

#[test]
fn a_call_on_an_async_endpoint_is_refused() {
    let mut w = W::new();
    w.thread(0, 0, 1);
    let (q, _) = w.endpoint(0, EndpointKind::Async(1), 0);
    fails_with(w.call(0, q, word(1), REGS, Timeout::Never), Error::InvalidArgument);
}

// ===================== timeouts =====================

#[test]
fn timed_waits_expire() {
    let mut w = W::new();
    for t in 0..5 {
        w.thread(t, 0, 1);
    }
    let (ep, _) = w.endpoint(0, EndpointKind::Sync, 0);
    let (q, _) = w.endpoint(0, EndpointKind::Async(1), 0);
    let (ep2, _) = w.endpoint(0, EndpointKind::Sync, 0);
    blocked(w.recv(0, ep, REGS, Timeout::Until(10)));
    done(w.send(2, q, word(1), Timeout::Zero));
    blocked(w.send(2, q, word(2), Timeout::Until(20)));
    blocked(w.call(4, ep2, word(3), REGS, Timeout::Until(10)));
    assert_eq!(w.ipc.next_deadline(), Some(10));
    w.ipc.expire(9);
    assert_eq!(w.wakes(), []);
    w.ipc.expire(10);
    assert_eq!(w.wakes(), [(0, oops(Error::Timeout)), (4, oops(Error::Timeout))]);
    assert_eq!(w.ipc.next_deadline(), Some(20));
    w.check();
    w.ipc.expire(25);
    assert_eq!(w.wakes(), [(2, oops(Error::Timeout))]);
    assert_eq!(w.ipc.next_deadline(), None);
    w.check();
    // The queue still holds the first message only.
    assert_eq!(done(w.recv(1, q, REGS, Timeout::Zero)).regs[0], 1);
    fails_with(w.recv(1, q, REGS, Timeout::Zero), Error::WouldBlock);
    // A call that got through waits for its reply without a deadline.
    blocked(w.call(4, ep2, word(3), REGS, Timeout::Until(30)));
    let got = done(w.recv(0, ep2, REGS, Timeout::Until(30)));
    assert_eq!(w.ipc.thread(4).unwrap().deadline, None);
    w.ipc.expire(100);
    assert_eq!(w.wakes(), []);
    done(w.reply(0, got.reply, word(4)));
    assert_eq!(w.wakes()[0].0, 4);
    w.check();
}

#[test]
fn a_delivered_wait_keeps_no_deadline() {
    let (mut w, ep, ep0) = pair();
    blocked(w.recv(2, ep, REGS, Timeout::Until(5)));
    done(w.send(0, ep0, word(1), Timeout::Zero));
    assert_eq!(w.wakes().len(), 1);
    assert_eq!(w.ipc.next_deadline(), None);
    w.ipc.expire(5);
    assert_eq!(w.wakes(), []);
    blocked(w.send(0, ep0, word(2), Timeout::Until(7)));
    done(w.recv(2, ep, REGS, Timeout::Zero));
    assert_eq!(w.wakes(), [(0, sent())]);
    w.ipc.expire(7);
    assert_eq!(w.wakes(), []);
}

// ===================== sizes and bytes =====================

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

fn regs_of(bytes: &[u8]) -> [u64; MSG_REGS] {
    let mut b = [0u8; SHORT_MAX];
    b[..bytes.len()].copy_from_slice(bytes);
    core::array::from_fn(|i| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap()))
}

/// Region `k` of a space's buffer area (each 0x1_1000 bytes).
fn region(k: u64) -> u64 {
    BUF + k * 0x1_1000
}

const GUARD: usize = 16;

/// Fills `[addr - GUARD, addr + cap + GUARD)` with 0xAA.
fn fill_guarded(mem: &mut Mem, sp: SpaceId, addr: u64, cap: usize) {
    mem.poke(sp, addr - GUARD as u64, &vec![0xAA; cap + 2 * GUARD]);
}

/// The buffer holds `data` at its start and 0xAA everywhere else around.
fn assert_guarded(mem: &Mem, sp: SpaceId, addr: u64, cap: usize, data: &[u8]) {
    let all = mem.peek(sp, addr - GUARD as u64, cap + 2 * GUARD);
    assert!(all[..GUARD].iter().all(|&b| b == 0xAA), "bytes before the buffer touched");
    assert!(all[GUARD..GUARD + data.len()] == *data, "{} bytes differ", data.len());
    assert!(all[GUARD + data.len()..].iter().all(|&b| b == 0xAA), "bytes after the message touched");
}

fn message(mem: &mut Mem, sp: SpaceId, addr: u64, data: &[u8]) -> Msg {
    if data.len() <= SHORT_MAX {
        // Registers carry it; the buffer address is ignored.
        Msg { len: data.len(), regs: regs_of(data), buf: 0xdead_0000, ..Msg::default() }
    } else {
        mem.poke(sp, addr, data);
        long(addr, data.len())
    }
}

fn check_received(mem: &Mem, sp: SpaceId, buf: RecvBuf, got: &Received, data: &[u8]) {
    assert_eq!(got.len, data.len());
    if data.len() <= SHORT_MAX {
        assert_eq!(got.regs, regs_of(data));
        assert_guarded(mem, sp, buf.addr, buf.cap, &[]);
    } else {
        assert_guarded(mem, sp, buf.addr, buf.cap, data);
    }
}

#[test]
fn call_and_reply_carry_every_size_exactly() {
    for len in [0, 1, 7, 8, 63, 64, 65, 100, 4095, 4096, 4097, 65536] {
        for server_first in [false, true] {
            let (mut w, ep, ep0) = pair();
            let (sp0, sp1) = (space_of(0), space_of(1));
            let request = pattern(len, 1);
            let answer = pattern(len, 77);
            // Unaligned buffers; the server's has room to spare, the
            // caller's fits the reply exactly.
            let srv = rb(region(1) + 21, len + 10);
            let cli = rb(region(2) + 13, len);
            fill_guarded(&mut w.mem, sp1, srv.addr, srv.cap);
            fill_guarded(&mut w.mem, sp0, cli.addr, cli.cap);
            let m = message(&mut w.mem, sp0, region(0) + 3, &request);
            let got = if server_first {
                blocked(w.recv(2, ep, srv, Timeout::Never));
                blocked(w.call(0, ep0, m, cli, Timeout::Never));
                let wakes = w.wakes();
                assert_eq!(wakes.len(), 1);
                assert_eq!(wakes[0].0, 2);
                wakes[0].1.unwrap()
            } else {
                blocked(w.call(0, ep0, m, cli, Timeout::Never));
                let got = done(w.recv(2, ep, srv, Timeout::Never));
                assert_eq!(w.wakes(), []);
                got
            };
            check_received(&w.mem, sp1, srv, &got, &request);
            assert_ne!(got.reply, 0);
            assert!(matches!(w.wait(0), Wait::Reply { .. }));
            w.check();
            let r = message(&mut w.mem, sp1, region(3) + 1, &answer);
            assert_eq!(done(w.reply(2, got.reply, r)), Received::default());
            let wakes = w.wakes();
            assert_eq!(wakes.len(), 1);
            assert_eq!(wakes[0].0, 0);
            let back = wakes[0].1.unwrap();
            assert_eq!((back.badge, back.reply, back.ncaps), (0, 0, 0));
            check_received(&w.mem, sp0, cli, &back, &answer);
            let s = w.ipc.stats(0).unwrap();
            assert_eq!((s.delivered, s.bytes, s.calls), (1, len as u64, 1));
            w.check();
        }
    }
}

#[test]
fn one_way_long_messages_cross_page_boundaries() {
    let (mut w, ep, ep0) = pair();
    for (len, off) in [(65, 4096 - 30), (5000, 4095), (8193, 1)] {
        let data = pattern(len, len as u8);
        let m = message(&mut w.mem, space_of(0), region(0) + off, &data);
        let buf = rb(region(1) + 4096 - 1, len + 3);
        fill_guarded(&mut w.mem, space_of(1), buf.addr, buf.cap);
        blocked(w.send(0, ep0, m, Timeout::Never));
        let got = done(w.recv(2, ep, buf, Timeout::Never));
        check_received(&w.mem, space_of(1), buf, &got, &data);
        assert_eq!(w.wakes(), [(0, sent())]);
    }
}

#[test]
fn the_endpoint_size_limit_is_inclusive() {
    let mut w = W::new();
    w.thread(0, 0, 1);
    w.thread(2, 1, 1);
    let (ep, _) = w.endpoint(1, EndpointKind::Sync, 100);
    let ep0 = w.give(1, ep, 0, rights::WRITE, 0);
    fails_with(w.send(0, ep0, long(BUF, 101), Timeout::Never), Error::InvalidArgument);
    blocked(w.send(0, ep0, long(BUF, 100), Timeout::Never));
    assert_eq!(done(w.recv(2, ep, rb(BUF, 100), Timeout::Never)).len, 100);
    let (small, _) = w.endpoint(1, EndpointKind::Sync, 16);
    fails_with(w.send(2, small, word(1), Timeout::Zero), Error::WouldBlock);
    fails_with(w.send(2, small, short(17, [0; MSG_REGS]), Timeout::Zero), Error::InvalidArgument);
    let (_, default) = w.endpoint(1, EndpointKind::Sync, 0);
    assert_eq!(w.ipc.endpoint(default).unwrap().max_msg, DEFAULT_MAX_MSG);
}

// ===================== buffer too small =====================

#[test]
fn a_receive_buffer_too_small_leaves_the_message_pending() {
    let (mut w, ep, ep0) = pair();
    let data = pattern(100, 3);
    let m = message(&mut w.mem, space_of(0), region(0), &data);
    blocked(w.send(0, ep0, m, Timeout::Never));
    let e = failed(w.recv(2, ep, rb(region(1), 99), Timeout::Never));
    assert_eq!(e, IpcError { error: Error::BufferTooSmall, detail: 100 });
    assert!(matches!(w.wait(0), Wait::Send { .. }));
    assert_eq!(w.wakes(), []);
    w.check();
    let buf = rb(region(1), 100);
    fill_guarded(&mut w.mem, space_of(1), buf.addr, buf.cap);
    let got = done(w.recv(2, ep, buf, Timeout::Never));
    check_received(&w.mem, space_of(1), buf, &got, &data);
    assert_eq!(w.wakes(), [(0, sent())]);
}

#[test]
fn a_waiting_receiver_with_a_small_buffer_is_told_and_the_sender_keeps_its_message() {
    let (mut w, ep, ep0) = pair();
    let data = pattern(300, 4);
    let m = message(&mut w.mem, space_of(0), region(0), &data);
    let buf = rb(region(1), 300);
    fill_guarded(&mut w.mem, space_of(1), buf.addr, buf.cap);
    blocked(w.recv(2, ep, rb(region(1), 50), Timeout::Never));
    // Not blocking: the sender is refused, the receiver told the size.
    fails_with(w.send(0, ep0, m, Timeout::Zero), Error::WouldBlock);
    assert_eq!(w.wakes(), [(2, Err(IpcError { error: Error::BufferTooSmall, detail: 300 }))]);
    blocked(w.recv(2, ep, rb(region(1), 299), Timeout::Never));
    blocked(w.send(0, ep0, m, Timeout::Never));
    assert_eq!(w.wakes(), [(2, Err(IpcError { error: Error::BufferTooSmall, detail: 300 }))]);
    w.check();
    assert_guarded(&w.mem, space_of(1), buf.addr, buf.cap, &[]);
    let got = done(w.recv(2, ep, buf, Timeout::Never));
    check_received(&w.mem, space_of(1), buf, &got, &data);
    assert_eq!(w.wakes(), [(0, sent())]);
}

#[test]
fn a_small_buffer_passes_over_to_the_next_receiver() {
    let (mut w, ep, ep0) = pair();
    let data = pattern(200, 5);
    let m = message(&mut w.mem, space_of(0), region(0), &data);
    blocked(w.recv(2, ep, rb(region(1), 10), Timeout::Never));
    blocked(w.recv(3, ep, rb(region(2), 200), Timeout::Never));
    done(w.send(0, ep0, m, Timeout::Never));
    let wakes = w.wakes();
    assert_eq!(wakes[0], (2, Err(IpcError { error: Error::BufferTooSmall, detail: 200 })));
    assert_eq!(wakes[1].0, 3);
    assert_eq!(w.mem.peek(space_of(1), region(2), 200), data);
    w.check();
}

#[test]
fn a_queued_message_waits_for_a_big_enough_buffer() {
    let mut w = W::new();
    w.thread(0, 0, 1);
    w.thread(2, 1, 1);
    let (q, qid) = w.endpoint(1, EndpointKind::Async(2), 4096);
    let q0 = w.give(1, q, 0, rights::WRITE, 0);
    let data = pattern(4096, 6);
    let m = message(&mut w.mem, space_of(0), region(0) + 1, &data);
    done(w.send(0, q0, m, Timeout::Zero));
    done(w.send(0, q0, word(2), Timeout::Zero));
    let e = failed(w.recv(2, q, rb(region(1), 4095), Timeout::Never));
    assert_eq!(e, IpcError { error: Error::BufferTooSmall, detail: 4096 });
    // Unwritable buffer: refused, still queued.
    w.mem.map(space_of(1), region(4), 4096, true, false);
    fails_with(w.recv(2, q, rb(region(4), 4096), Timeout::Never), Error::InvalidArgument);
    assert_eq!(w.ipc.endpoint(qid).unwrap().queue.len(), 2);
    w.check();
    let buf = rb(region(1) + 7, 5000);
    fill_guarded(&mut w.mem, space_of(1), buf.addr, buf.cap);
    let got = done(w.recv(2, q, buf, Timeout::Never));
    check_received(&w.mem, space_of(1), buf, &got, &data);
    assert_eq!(done(w.recv(2, q, REGS, Timeout::Never)).regs[0], 2);
    w.check();
}

#[test]
fn a_reply_too_big_for_the_callers_buffer_can_be_retried() {
    let (mut w, ep, ep0) = pair();
    blocked(w.call(0, ep0, word(1), rb(region(2), 80), Timeout::Never));
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    let big = message(&mut w.mem, space_of(1), region(3), &pattern(81, 8));
    let e = failed(w.reply(2, got.reply, big));
    assert_eq!(e, IpcError { error: Error::BufferTooSmall, detail: 81 });
    assert!(matches!(w.wait(0), Wait::Reply { .. }));
    assert_eq!(w.wakes(), []);
    w.check();
    let fits = message(&mut w.mem, space_of(1), region(3), &pattern(80, 9));
    done(w.reply(2, got.reply, fits));
    assert_eq!(w.wakes()[0].1.unwrap().len, 80);
    assert_eq!(w.mem.peek(space_of(0), region(2), 80), pattern(80, 9));
}

// ===================== bad arguments =====================

#[test]
fn bad_messages_are_invalid_arguments() {
    let (mut w, ep, ep0) = pair();
    blocked(w.recv(2, ep, rb(region(1), 1000), Timeout::Never));
    // Empty one-way message.
    fails_with(w.send(0, ep0, short(0, [0; MSG_REGS]), Timeout::Never), Error::InvalidArgument);
    // Longer than the endpoint allows.
    fails_with(w.send(0, ep0, long(region(0), DEFAULT_MAX_MSG + 1), Timeout::Never), Error::InvalidArgument);
    // Unmapped, partly mapped, unreadable buffers.
    fails_with(w.send(0, ep0, long(0x5000_0000, 100), Timeout::Never), Error::InvalidArgument);
    fails_with(w.send(0, ep0, long(BUF - 50, 100), Timeout::Never), Error::InvalidArgument);
    fails_with(w.send(0, ep0, long(u64::MAX - 50, 100), Timeout::Never), Error::InvalidArgument);
    w.mem.map(space_of(0), region(5), 4096, false, true);
    fails_with(w.send(0, ep0, long(region(5), 100), Timeout::Never), Error::InvalidArgument);
    // Too many capabilities.
    let mut m = word(1);
    m.ncaps = MAX_CAPS + 1;
    fails_with(w.send(0, ep0, m, Timeout::Never), Error::InvalidArgument);
    // Nothing happened to the waiting receiver.
    assert_eq!(w.wakes(), []);
    assert!(matches!(w.wait(2), Wait::Recv { .. }));
    w.check();
    // A receiver whose buffer is not writable is told; the sender blocks.
    w.mem.map(space_of(1), region(4), 4096, true, false);
    blocked(w.recv(3, ep, rb(region(4), 4096), Timeout::Never));
    // (thread 2 is first in line; drop it)
    w.ipc.cancel(2, Error::Timeout);
    assert_eq!(w.wakes(), [(2, oops(Error::Timeout))]);
    blocked(w.send(0, ep0, long(region(0), 100), Timeout::Never));
    assert_eq!(w.wakes(), [(3, oops(Error::InvalidArgument))]);
    // A receiver with a bad buffer finds the sender waiting: refused.
    fails_with(w.recv(3, ep, rb(region(4), 4096), Timeout::Never), Error::InvalidArgument);
    assert!(matches!(w.wait(0), Wait::Send { .. }));
    w.check();
}

#[test]
fn a_sender_buffer_that_goes_bad_while_waiting_fails_the_sender() {
    let (mut w, ep, ep0) = pair();
    blocked(w.send(0, ep0, long(region(0), 100), Timeout::Never));
    blocked(w.send(1, ep0, word(2), Timeout::Never));
    w.mem.unmap(space_of(0), region(0), 100);
    // The receiver skips the failed sender and takes the next one.
    assert_eq!(done(w.recv(2, ep, rb(region(1), 100), Timeout::Never)).regs[0], 2);
    assert_eq!(w.wakes(), [(0, oops(Error::InvalidArgument)), (1, sent())]);
    w.check();
}

#[test]
fn endpoint_creation_checks_its_arguments() {
    let mut w = W::new();
    let e = |w: &mut W, kind, max| w.ipc.create_endpoint(&mut w.caps, &mut w.mem, 0, kind, max).map(|_| ());
    assert_eq!(e(&mut w, EndpointKind::Sync, MAX_MSG_LIMIT + 1), Err(Error::InvalidArgument.into()));
    assert_eq!(e(&mut w, EndpointKind::Async(0), 0), Err(Error::InvalidArgument.into()));
    assert_eq!(e(&mut w, EndpointKind::Async(MAX_QUEUE + 1), 8), Err(Error::InvalidArgument.into()));
    let widest = MAX_QUEUE_BYTES / MAX_QUEUE;
    assert_eq!(e(&mut w, EndpointKind::Async(MAX_QUEUE), widest + 1), Err(Error::InvalidArgument.into()));
    assert_eq!(e(&mut w, EndpointKind::Async(MAX_QUEUE), 0), Err(Error::InvalidArgument.into()));
    assert_eq!(e(&mut w, EndpointKind::Async(MAX_QUEUE), widest), Ok(()));
    assert_eq!(w.mem.queue_bytes, MAX_QUEUE_BYTES);
    // Short messages need no storage.
    assert_eq!(e(&mut w, EndpointKind::Async(MAX_QUEUE), SHORT_MAX), Ok(()));
    assert_eq!(w.mem.queue_bytes, MAX_QUEUE_BYTES);
    assert_eq!(e(&mut w, EndpointKind::Sync, MAX_MSG_LIMIT), Ok(()));
    w.mem.queue_limit = Some(w.mem.queue_bytes + 1000);
    assert_eq!(e(&mut w, EndpointKind::Async(10), 101), Err(Error::OutOfMemory.into()));
    assert_eq!(e(&mut w, EndpointKind::Async(10), 100), Ok(()));
    assert_eq!(w.ipc.endpoint_count(), 4);
    // A full table: no endpoint, no storage kept.
    let before = w.mem.queue_bytes;
    while w.caps.slots_in_use_of(2).unwrap() < SLOTS {
        w.caps.insert_root(2, ObjectRef { kind: kind::THREAD, id: 0 }, 0).unwrap();
    }
    w.mem.queue_limit = None;
    let r = w.ipc.create_endpoint(&mut w.caps, &mut w.mem, 2, EndpointKind::Async(2), 1000);
    assert_eq!(r, Err(Error::OutOfMemory.into()));
    assert_eq!(w.mem.queue_bytes, before);
    assert_eq!(w.ipc.endpoint_count(), 4);
    w.check();
}

// ===================== rights and tokens =====================

#[test]
fn rights_kinds_and_dead_tokens() {
    let (mut w, ep, _) = pair();
    let write_only = w.give(1, ep, 0, rights::WRITE, 0);
    let read_only = w.give(1, ep, 0, rights::READ, 0);
    fails_with(w.send(0, read_only, word(1), Timeout::Never), Error::PermissionDenied);
    fails_with(w.call(0, read_only, word(1), REGS, Timeout::Never), Error::PermissionDenied);
    fails_with(w.recv(0, write_only, REGS, Timeout::Never), Error::PermissionDenied);
    // Wrong kinds of object.
    let thread_cap = w.caps.insert_root(0, ObjectRef { kind: kind::THREAD, id: 0 }, rights::ALL).unwrap();
    fails_with(w.send(0, thread_cap, word(1), Timeout::Never), Error::PermissionDenied);
    fails_with(w.recv(0, thread_cap, REGS, Timeout::Never), Error::PermissionDenied);
    // A reply takes nothing but a live reply token.
    fails_with(w.reply(0, thread_cap, word(1)), Error::NotFound);
    fails_with(w.reply(0, write_only, word(1)), Error::NotFound);
    // Never issued, forged, deleted, revoked.
    fails_with(w.send(0, token::make(40, 0, kind::ENDPOINT), word(1), Timeout::Never), Error::NotFound);
    fails_with(w.send(0, write_only | 1 << 60, word(1), Timeout::Never), Error::NotFound);
    fails_with(w.send(0, 0, word(1), Timeout::Never), Error::NotFound);
    fails_with(w.reply(0, token::make(41, 0, kind::REPLY), word(1)), Error::NotFound);
    w.caps.delete(0, write_only).unwrap();
    fails_with(w.send(0, write_only, word(1), Timeout::Never), Error::NotFound);
    w.caps.revoke(1, ep).unwrap();
    fails_with(w.recv(0, read_only, REGS, Timeout::Never), Error::NotFound);
    // A live token of an endpoint that is gone.
    let (dead, id) = w.endpoint(0, EndpointKind::Sync, 0);
    w.ipc.destroy_endpoint(&mut w.caps, &mut w.mem, id);
    fails_with(w.send(0, dead, word(1), Timeout::Never), Error::NotFound);
    fails_with(w.recv(0, dead, REGS, Timeout::Never), Error::NotFound);
    assert_eq!(w.wakes(), []);
    w.check();
}

#[test]
fn revoking_a_waiters_token_ends_its_wait() {
    let (mut w, ep, _) = pair();
    let send_tok = w.give(1, ep, 0, rights::WRITE, 0);
    let recv_tok = w.give(1, ep, 0, rights::READ, 0);
    let (other, _) = w.endpoint(1, EndpointKind::Sync, 0);
    let other0 = w.give(1, other, 0, rights::READ, 0);
    blocked(w.send(0, send_tok, word(1), Timeout::Until(50)));
    blocked(w.recv(1, other0, REGS, Timeout::Never));
    w.kernel_after();
    assert_eq!(w.wakes(), []);
    w.caps.revoke(1, ep).unwrap();
    w.kernel_after();
    assert_eq!(w.wakes(), [(0, oops(Error::NotFound))]);
    assert_eq!(w.ipc.next_deadline(), None);
    w.check();
    fails_with(w.recv(2, ep, REGS, Timeout::Zero), Error::WouldBlock);
    // A receiver too; the other endpoint's waiter stays.
    let recv_tok2 = w.give(1, ep, 0, rights::READ, 0);
    blocked(w.recv(0, recv_tok2, REGS, Timeout::Never));
    w.caps.delete(0, recv_tok2).unwrap();
    assert_eq!(w.caps.lookup(0, recv_tok).err(), Some(crate::cap::CapError::NotFound));
    w.kernel_after();
    assert_eq!(w.wakes(), [(0, oops(Error::NotFound))]);
    assert!(matches!(w.wait(1), Wait::Recv { .. }));
    fails_with(w.send(2, ep, word(1), Timeout::Zero), Error::WouldBlock);
    w.check();
}

// ===================== endpoint destruction =====================

#[test]
fn destroying_an_endpoint_ends_every_wait_and_frees_everything() {
    let mut w = W::new();
    for t in 0..6 {
        w.thread(t, 0, 1);
    }
    let (ep, sid) = w.endpoint(0, EndpointKind::Sync, 0);
    let (q, qid) = w.endpoint(0, EndpointKind::Async(2), 1000);
    let (q2, q2id) = w.endpoint(0, EndpointKind::Async(1), 8);
    let (gift, _) = w.endpoint(0, EndpointKind::Sync, 0);
    let bytes = w.mem.queue_bytes;
    assert_eq!(bytes, 2000);
    // Synchronous: a sender, a caller.
    blocked(w.send(0, ep, word(1), Timeout::Never));
    blocked(w.call(1, ep, word(2), REGS, Timeout::Until(9)));
    // Asynchronous: two queued messages with capabilities, a blocked sender.
    let mut m = message(&mut w.mem, space_of(0), region(0), &pattern(500, 1));
    m.caps[0] = gift;
    m.ncaps = 1;
    done(w.send(2, q, m, Timeout::Zero));
    m.caps[1] = ep;
    m.ncaps = 2;
    done(w.send(2, q, m, Timeout::Zero));
    blocked(w.send(4, q, word(3), Timeout::Never));
    assert_eq!(w.caps.slots_in_use_of(HOLDER), Ok(3));
    // A receiver on another endpoint.
    blocked(w.recv(3, q2, REGS, Timeout::Never));
    w.check();
    w.ipc.destroy_endpoint(&mut w.caps, &mut w.mem, sid);
    assert_eq!(w.wakes(), [(0, oops(Error::NotFound)), (1, oops(Error::NotFound))]);
    w.ipc.destroy_endpoint(&mut w.caps, &mut w.mem, qid);
    assert_eq!(w.wakes(), [(4, oops(Error::NotFound))]);
    assert_eq!(w.caps.slots_in_use_of(HOLDER), Ok(0));
    assert_eq!(w.mem.queue_bytes, 0);
    assert!(w.mem.queues.is_empty());
    w.ipc.destroy_endpoint(&mut w.caps, &mut w.mem, q2id);
    assert_eq!(w.wakes(), [(3, oops(Error::NotFound))]);
    assert_eq!(w.ipc.endpoint_count(), 1);
    assert_eq!(w.ipc.next_deadline(), None);
    // Twice is harmless.
    w.ipc.destroy_endpoint(&mut w.caps, &mut w.mem, qid);
    assert_eq!(w.wakes(), []);
    w.check();
    fails_with(w.send(0, q, word(1), Timeout::Zero), Error::NotFound);
    fails_with(w.send(0, q2, word(1), Timeout::Zero), Error::NotFound);
    // A new endpoint may reuse the number; its storage is fresh.
    let (_, again) = w.endpoint(0, EndpointKind::Async(1), 200);
    assert!(again == sid || again == qid || again == q2id);
    assert_eq!(w.mem.queue_bytes, 200);
}

// ===================== replies =====================

#[test]
fn a_reply_right_works_once() {
    let (mut w, ep, ep0) = pair();
    blocked(w.call(0, ep0, word(1), REGS, Timeout::Never));
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    assert_eq!(token::kind(got.reply), kind::REPLY);
    assert_eq!(token::flags(got.reply), 0);
    // It names the reply record, not a capability; the holder's task sees it.
    assert_eq!(w.ipc.reply_token_info(1, got.reply), Ok(()));
    assert_eq!(w.ipc.reply_token_info(0, got.reply), Err(Error::NotFound.into()));
    assert!(w.caps.lookup(1, got.reply).is_err());
    assert_eq!(w.ipc.replies_held(1), 1);
    // It cannot be copied or passed on.
    assert!(w.caps.copy(1, got.reply).is_err());
    done(w.reply(2, got.reply, word(2)));
    assert_eq!(w.wakes().len(), 1);
    assert_eq!(w.ipc.replies_held(1), 0);
    fails_with(w.reply(2, got.reply, word(3)), Error::NotFound);
    fails_with(w.reply(3, got.reply, word(3)), Error::NotFound);
    assert_eq!(w.ipc.reply_token_info(1, got.reply), Err(Error::NotFound.into()));
    assert_eq!(w.ipc.drop_reply(1, got.reply), Err(Error::NotFound.into()));
    assert_eq!(w.wakes(), []);
    w.kernel_after();
    assert_eq!(w.wakes(), []);
    w.check();
}

#[test]
fn a_reply_with_bad_arguments_keeps_the_right() {
    let (mut w, ep, ep0) = pair();
    blocked(w.call(0, ep0, word(1), rb(region(2), 100), Timeout::Never));
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    fails_with(w.reply(2, got.reply, long(0x7000_0000, 100)), Error::InvalidArgument);
    fails_with(w.reply(2, got.reply, long(region(0), MAX_MSG_LIMIT + 1)), Error::InvalidArgument);
    let mut m = word(1);
    m.ncaps = MAX_CAPS + 1;
    fails_with(w.reply(2, got.reply, m), Error::InvalidArgument);
    // Only a thread of the task holding the right can use it.
    fails_with(w.reply(0, got.reply, word(1)), Error::NotFound);
    assert_eq!(w.wakes(), []);
    w.check();
    done(w.reply(3, got.reply, short(0, [0; MSG_REGS])));
    assert_eq!(w.wakes(), [(0, Ok(Received::default()))]);
}

#[test]
fn dropping_the_reply_right_ends_the_call() {
    let (mut w, ep, ep0) = pair();
    blocked(w.call(0, ep0, word(1), REGS, Timeout::Never));
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    // Only the holder's task can drop it.
    assert_eq!(w.ipc.drop_reply(0, got.reply), Err(Error::NotFound.into()));
    assert_eq!(w.wakes(), []);
    w.ipc.drop_reply(1, got.reply).unwrap();
    assert_eq!(w.wakes(), [(0, oops(Error::PeerGone))]);
    fails_with(w.reply(2, got.reply, word(2)), Error::NotFound);
    assert_eq!(w.ipc.drop_reply(1, got.reply), Err(Error::NotFound.into()));
    w.check();
    // The server's task dies with a reply right: same.
    blocked(w.call(0, ep0, word(1), REGS, Timeout::Never));
    done(w.recv(2, ep, REGS, Timeout::Never));
    w.end_task(1);
    assert_eq!(w.wakes(), [(0, oops(Error::PeerGone))]);
    assert_eq!(w.ipc.replies_held(1), 0);
    w.check();
}

#[test]
fn a_reply_number_that_comes_round_again_replaces_its_old_orphan() {
    let (mut w, ep, ep0) = pair();
    w.ipc.replies.calls = 5;
    blocked(w.call(0, ep0, word(1), REGS, Timeout::Never));
    let old = done(w.recv(2, ep, REGS, Timeout::Never)).reply;
    w.ipc.cancel(0, Error::Timeout);
    assert_eq!(w.wakes(), [(0, oops(Error::Timeout))]);
    assert_eq!(w.ipc.replies_held(1), 1, "the orphan is held");
    // 2^32 calls later the counter names the same number again.
    w.ipc.replies.calls = 5;
    blocked(w.call(0, ep0, word(2), REGS, Timeout::Never));
    let new = done(w.recv(2, ep, REGS, Timeout::Never)).reply;
    assert_eq!(new, old);
    assert_eq!(w.ipc.replies_held(1), 2);
    w.check();
    // The live call wins the number; once it is orphaned too, the older
    // orphan is gone and counted out.
    w.ipc.cancel(0, Error::Timeout);
    assert_eq!(w.wakes(), [(0, oops(Error::Timeout))]);
    assert_eq!(w.ipc.replies_held(1), 1);
    w.check();
    fails_with(w.reply(2, new, word(3)), Error::PeerGone);
    assert_eq!(w.ipc.replies_held(1), 0);
    fails_with(w.reply(2, old, word(3)), Error::NotFound);
    w.check();
}

#[test]
fn a_caller_that_goes_away_leaves_a_reply_that_reports_peer_gone() {
    let (mut w, ep, ep0) = pair();
    blocked(w.call(0, ep0, word(1), REGS, Timeout::Never));
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    w.ipc.remove_thread(0);
    assert_eq!(w.wakes(), [], "a removed thread takes no wake");
    w.check();
    fails_with(w.reply(2, got.reply, word(2)), Error::PeerGone);
    // The right is used up.
    assert_eq!(w.ipc.reply_token_info(1, got.reply), Err(Error::NotFound.into()));
    fails_with(w.reply(2, got.reply, word(2)), Error::NotFound);
    w.kernel_after();
    w.check();
    // A cancelled caller (killed by the kernel) likewise.
    blocked(w.call(1, ep0, word(1), REGS, Timeout::Never));
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    w.ipc.cancel(1, Error::InvalidState);
    assert_eq!(w.wakes(), [(1, oops(Error::InvalidState))]);
    w.check();
    fails_with(w.reply_recv(2, got.reply, word(2), ep, REGS, Timeout::Never), Error::PeerGone);
    assert_eq!(w.wait(2), Wait::None, "a failed reply does not receive");
    w.kernel_after();
    w.check();
}

#[test]
fn removed_threads_leave_their_queues() {
    let (mut w, ep, ep0) = pair();
    blocked(w.recv(2, ep, REGS, Timeout::Never));
    blocked(w.recv(3, ep, REGS, Timeout::Until(4)));
    w.ipc.remove_thread(2);
    assert_eq!(w.wakes(), []);
    assert_eq!(w.ipc.thread(2), None);
    done(w.send(0, ep0, word(1), Timeout::Zero));
    assert_eq!(w.wakes()[0].0, 3);
    blocked(w.send(0, ep0, word(2), Timeout::Never));
    blocked(w.call(1, ep0, word(3), REGS, Timeout::Never));
    w.ipc.remove_thread(0);
    w.ipc.remove_thread(0);
    assert_eq!(done(w.recv(3, ep, REGS, Timeout::Zero)).regs[0], 3);
    fails_with(w.recv(3, ep, REGS, Timeout::Zero), Error::WouldBlock);
    assert_eq!(w.wakes(), []);
    w.check();
}

#[test]
fn cancelling_a_thread_that_does_not_wait_does_nothing() {
    let (mut w, _, _) = pair();
    w.ipc.cancel(0, Error::Timeout);
    w.ipc.cancel(99, Error::Timeout);
    w.ipc.drop_replies_of(1);
    w.ipc.drop_replies_of(99);
    w.ipc.remove_thread(99);
    assert_eq!(w.wakes(), []);
    assert!(!w.ipc.has_wakes());
    w.check();
}

// ===================== capability transfer =====================

#[test]
fn capabilities_travel_with_grant() {
    let (mut w, ep, ep0) = pair();
    // Task 0 owns an endpoint `x` and a thread capability to pass on.
    let (x, _) = w.endpoint(0, EndpointKind::Sync, 0);
    let th = w.caps.insert_root(0, ObjectRef { kind: kind::THREAD, id: 1 }, rights::READ | rights::GRANT).unwrap();
    let mut m = word(7);
    m.caps[0] = x;
    m.caps[1] = th;
    m.ncaps = 2;
    blocked(w.recv(2, ep, REGS, Timeout::Never));
    done(w.send(0, ep0, m, Timeout::Never));
    let got = w.wakes()[0].1.unwrap();
    assert_eq!(got.ncaps, 2);
    let c0 = *w.caps.lookup(1, got.caps[0]).unwrap();
    let c1 = *w.caps.lookup(1, got.caps[1]).unwrap();
    assert_eq!((c0.object.kind, c0.rights), (kind::ENDPOINT, ENDPOINT_RIGHTS));
    assert_eq!(
        c1,
        Capability { object: ObjectRef { kind: kind::THREAD, id: 1 }, rights: rights::READ | rights::GRANT, badge: 0 }
    );
    assert!(w.caps.lookup(0, x).is_ok(), "the sender keeps its own");
    // The received endpoint token works: task 0 waits on it, task 1 sends.
    blocked(w.recv(1, x, REGS, Timeout::Never));
    done(w.send(3, got.caps[0], word(8), Timeout::Zero));
    assert_eq!(w.wakes()[0].1.unwrap().regs[0], 8);
    // Revoking the original takes the passed ones back.
    w.caps.revoke(0, x).unwrap();
    assert!(w.caps.lookup(1, got.caps[0]).is_err());
    w.check();
}

#[test]
fn capabilities_need_grant_on_the_endpoint_and_on_each() {
    let (mut w, ep, _) = pair();
    let no_grant_ep = w.give(1, ep, 0, rights::WRITE, 0);
    let (x, _) = w.endpoint(0, EndpointKind::Sync, 0);
    let x_no_grant = w.caps.mint(0, x, rights::READ | rights::WRITE, 0).unwrap();
    let grant_ep = w.give(1, ep, 0, rights::WRITE | rights::GRANT, 0);
    let mut m = word(1);
    m.caps[0] = x;
    m.ncaps = 1;
    blocked(w.recv(2, ep, REGS, Timeout::Never));
    fails_with(w.send(0, no_grant_ep, m, Timeout::Never), Error::PermissionDenied);
    m.caps[0] = x_no_grant;
    fails_with(w.send(0, grant_ep, m, Timeout::Never), Error::PermissionDenied);
    m.caps[0] = token::make(33, 0, kind::ENDPOINT);
    fails_with(w.send(0, grant_ep, m, Timeout::Never), Error::NotFound);
    // Without capabilities no GRANT is needed.
    done(w.send(0, no_grant_ep, word(2), Timeout::Never));
    assert_eq!(w.wakes()[0].1.unwrap().ncaps, 0);
    // Replies too need GRANT on each capability.
    blocked(w.call(0, grant_ep, word(3), REGS, Timeout::Never));
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    let y = w.caps.insert_root(1, ObjectRef { kind: kind::TASK, id: 4 }, rights::READ).unwrap();
    let mut r = word(4);
    r.caps[0] = y;
    r.ncaps = 1;
    fails_with(w.reply(2, got.reply, r), Error::PermissionDenied);
    let z = w.caps.insert_root(1, ObjectRef { kind: kind::TASK, id: 4 }, rights::READ | rights::GRANT).unwrap();
    r.caps[0] = z;
    done(w.reply(2, got.reply, r));
    let back = w.wakes()[0].1.unwrap();
    assert_eq!(back.ncaps, 1);
    assert_eq!(w.caps.lookup(0, back.caps[0]).unwrap().object, ObjectRef { kind: kind::TASK, id: 4 });
    w.check();
}

#[test]
fn capabilities_in_a_queue_are_held_and_revocable() {
    let mut w = W::new();
    w.thread(0, 0, 1);
    w.thread(2, 1, 1);
    let (q, qid) = w.endpoint(1, EndpointKind::Async(3), 0);
    let q0 = w.give(1, q, 0, rights::WRITE | rights::GRANT, 0);
    let (x, _) = w.endpoint(0, EndpointKind::Sync, 0);
    let child = w.caps.copy(0, x).unwrap();
    let mut m = word(1);
    m.caps[0] = x;
    m.caps[1] = child;
    m.ncaps = 2;
    done(w.send(0, q0, m, Timeout::Zero));
    m.regs[0] = 2;
    m.ncaps = 1;
    done(w.send(0, q0, m, Timeout::Zero));
    m.regs[0] = 3;
    m.caps[0] = child;
    done(w.send(0, q0, m, Timeout::Zero));
    assert_eq!(w.caps.slots_in_use_of(HOLDER), Ok(4));
    w.check();
    // Deleting the sender's copies does not touch those in flight.
    w.caps.delete(0, child).unwrap();
    let got = done(w.recv(2, q, REGS, Timeout::Zero));
    assert_eq!((got.regs[0], got.ncaps), (1, 2));
    assert_eq!(w.caps.slots_in_use_of(HOLDER), Ok(2));
    for c in &got.caps[..2] {
        assert_eq!(w.caps.lookup(1, *c).unwrap().object.kind, kind::ENDPOINT);
    }
    w.check();
    // Revoking the root reaches the ones still queued: they arrive empty.
    w.caps.revoke(0, x).unwrap();
    assert_eq!(w.caps.slots_in_use_of(HOLDER), Ok(0));
    w.check();
    let got = done(w.recv(2, q, REGS, Timeout::Zero));
    assert_eq!((got.regs[0], got.ncaps), (2, 0));
    let got = done(w.recv(2, q, REGS, Timeout::Zero));
    assert_eq!((got.regs[0], got.ncaps), (3, 0));
    assert!(w.ipc.endpoint(qid).unwrap().queue.is_empty());
    w.check();
}

#[test]
fn a_full_table_refuses_capabilities_but_not_calls() {
    let (mut w, ep, ep0) = pair();
    let (x, _) = w.endpoint(0, EndpointKind::Sync, 0);
    while w.caps.slots_in_use_of(1).unwrap() < SLOTS {
        w.caps.insert_root(1, ObjectRef { kind: kind::THREAD, id: 0 }, 0).unwrap();
    }
    let mut m = word(1);
    m.caps[0] = x;
    m.ncaps = 1;
    blocked(w.recv(2, ep, REGS, Timeout::Never));
    blocked(w.send(0, ep0, m, Timeout::Never));
    assert_eq!(w.wakes(), [(2, oops(Error::OutOfMemory))]);
    fails_with(w.recv(2, ep, REGS, Timeout::Never), Error::OutOfMemory);
    assert!(matches!(w.wait(0), Wait::Send { .. }));
    w.ipc.cancel(0, Error::Timeout);
    w.wakes();
    // A reply right takes no slot: calls go, on both paths.
    blocked(w.call(0, ep0, word(1), REGS, Timeout::Never));
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    done(w.reply(2, got.reply, word(2)));
    assert_eq!(w.wakes(), [(0, Ok(word_received(2)))]);
    blocked(w.recv(2, ep, REGS, Timeout::Never));
    let (server, got) = fast_call(&mut w.ipc, &w.caps, 1, ep0, 8, [6; MSG_REGS], REGS).unwrap();
    assert_eq!(server, 2);
    assert_eq!(w.caps.slots_in_use_of(1), Ok(SLOTS));
    done(w.reply(2, got.reply, word(2)));
    w.wakes();
    w.check();
}

fn word_received(w: u64) -> Received {
    Received { len: 8, regs: regs8(&[w]), ..Received::default() }
}

/// Fills task 1's reply rights: `MAX_REPLIES_PER_TASK` calls delivered to
/// thread 2 and not answered, from threads 10.. of task 0.
fn full_of_replies() -> (W, u64, u64, Vec<u64>) {
    let (mut w, ep, ep0) = pair();
    let mut replies = Vec::new();
    for i in 0..MAX_REPLIES_PER_TASK {
        w.thread(10 + i, 0, 1);
        blocked(w.call(10 + i, ep0, word(i as u64), REGS, Timeout::Never));
        let got = done(w.recv(2, ep, REGS, Timeout::Zero));
        assert_eq!(got.regs[0], i as u64);
        replies.push(got.reply);
    }
    assert_eq!(w.ipc.replies_held(1), MAX_REPLIES_PER_TASK);
    w.check();
    (w, ep, ep0, replies)
}

#[test]
fn a_task_holds_at_most_256_reply_rights() {
    // Caller first: the server's receive fails the caller, and takes the
    // next message.
    let (mut w, ep, ep0, replies) = full_of_replies();
    let caller = 10 + MAX_REPLIES_PER_TASK;
    w.thread(caller, 0, 1);
    blocked(w.call(caller, ep0, word(1000), REGS, Timeout::Never));
    blocked(w.send(1, ep0, word(1001), Timeout::Never));
    assert_eq!(done(w.recv(2, ep, REGS, Timeout::Zero)).regs[0], 1001);
    assert_eq!(w.wakes(), [(caller, oops(Error::OutOfMemory)), (1, sent())]);
    fails_with(w.recv(2, ep, REGS, Timeout::Zero), Error::WouldBlock);
    w.check();
    // Server first: the call fails at once, nothing changes, the receiver
    // keeps waiting; the fast path leaves it to the general one.
    blocked(w.recv(2, ep, REGS, Timeout::Never));
    let before = std::format!("{:?}", w.ipc);
    assert!(fast_call(&mut w.ipc, &w.caps, caller, ep0, 8, [0; MSG_REGS], REGS).is_none());
    assert_eq!(std::format!("{:?}", w.ipc), before);
    fails_with(w.call(caller, ep0, word(1002), REGS, Timeout::Never), Error::OutOfMemory);
    assert_eq!(std::format!("{:?}", w.ipc), before);
    assert!(matches!(w.wait(2), Wait::Recv { .. }));
    // Another task's server is not affected by task 1's count.
    assert_eq!(w.ipc.replies_held(0), 0);
    // One answered: room for one more call.
    done(w.reply(3, replies[7], word(7)));
    assert_eq!(w.wakes(), [(17, Ok(word_received(7)))]);
    let (server, got) = fast_call(&mut w.ipc, &w.caps, caller, ep0, 8, [0; MSG_REGS], REGS).unwrap();
    assert_eq!(server, 2);
    assert_eq!(w.ipc.replies_held(1), MAX_REPLIES_PER_TASK);
    // The new token names its caller and a new call; the old one is stale.
    assert_ne!(got.reply, replies[7]);
    assert_eq!(token::index(got.reply) & 0xFFFF, caller as u64);
    fails_with(w.reply(3, replies[7], word(0)), Error::NotFound);
    w.check();
    // Ending the task drops every right: each caller gets PeerGone.
    w.end_task(1);
    let wakes = w.wakes();
    assert_eq!(wakes.len(), MAX_REPLIES_PER_TASK);
    assert!(wakes.iter().all(|(t, r)| *t >= 10 && *r == oops(Error::PeerGone)));
    assert_eq!(w.ipc.replies_held(1), 0);
    for &r in &replies {
        assert_eq!(w.ipc.reply_token_info(1, r), Err(Error::NotFound.into()));
    }
    w.check();
}

#[test]
fn reply_tokens_cannot_be_forged_or_passed_on() {
    let (mut w, ep, ep0) = pair();
    blocked(w.call(0, ep0, word(1), REGS, Timeout::Never));
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    let r = got.reply;
    let forged = [
        r ^ 1,                                                // another caller
        r.wrapping_add(1 << 16),                              // another call
        r | 1 << 47,                                          // a high generation bit
        r | 1 << 48,                                          // the 8-bit generation field
        r | 1 << 60,                                          // a flag bit
        (r & !(0xF << 56)) | u64::from(kind::ENDPOINT) << 56, // another kind
        token::make(5, 0, kind::REPLY),                       // never issued
        0,
    ];
    assert_eq!(r, token::make(0, 0, kind::REPLY), "caller 0, call 0");
    for f in forged {
        assert_eq!(w.ipc.reply_token_info(1, f), Err(Error::NotFound.into()), "{f:#x}");
        assert_eq!(w.ipc.drop_reply(1, f), Err(Error::NotFound.into()), "{f:#x}");
        fails_with(w.reply(2, f, word(2)), Error::NotFound);
        assert_eq!(fast_reply_receive(&mut w.ipc, &w.caps, 2, f, 8, [0; MSG_REGS], ep, REGS), None);
    }
    assert_eq!(w.wakes(), []);
    // A live one is no endpoint; a forged one is not found.
    fails_with(w.send(2, r, word(1), Timeout::Zero), Error::PermissionDenied);
    fails_with(w.recv(2, r, REGS, Timeout::Zero), Error::PermissionDenied);
    fails_with(w.send(0, r, word(1), Timeout::Zero), Error::NotFound);
    fails_with(w.send(2, r | 1 << 48, word(1), Timeout::Zero), Error::NotFound);
    // Passing a live one in a message (or a reply) is refused; a forged
    // one is not found.
    let (x, _) = w.endpoint(1, EndpointKind::Sync, 0);
    let mut m = word(5);
    m.caps[0] = r;
    m.ncaps = 1;
    fails_with(w.send(2, x, m, Timeout::Zero), Error::PermissionDenied);
    fails_with(w.reply(3, r, m), Error::PermissionDenied);
    m.caps[0] = r | 1 << 48;
    fails_with(w.send(2, x, m, Timeout::Zero), Error::NotFound);
    // Another task cannot use or pass it.
    m.caps[0] = r;
    fails_with(w.send(0, ep0, m, Timeout::Zero), Error::NotFound);
    assert_eq!(w.ipc.reply_token_info(0, r), Err(Error::NotFound.into()));
    w.check();
    // The right is intact: the reply goes through.
    done(w.reply(3, r, word(9)));
    assert_eq!(w.wakes(), [(0, Ok(word_received(9)))]);
    w.check();
}

#[test]
fn a_task_that_calls_itself_and_ends_takes_no_wake() {
    // Task 1's thread 3 calls task 1's own endpoint; thread 2 takes it.
    let (mut w, ep, _) = pair();
    blocked(w.call(3, ep, word(1), REGS, Timeout::Never));
    done(w.recv(2, ep, REGS, Timeout::Never));
    // Task 0 calls too, and is taken.
    let ep0 = w.give(1, ep, 0, rights::WRITE, 0);
    blocked(w.call(0, ep0, word(2), REGS, Timeout::Never));
    done(w.recv(2, ep, REGS, Timeout::Never));
    assert_eq!(w.ipc.replies_held(1), 2);
    w.end_task(1);
    assert_eq!(w.wakes(), [(0, oops(Error::PeerGone))]);
    assert_eq!(w.ipc.replies_held(1), 0);
    w.check();
}

#[test]
fn a_full_holder_table_refuses_to_queue_capabilities() {
    let mut w = W::new();
    w.thread(0, 0, 1);
    let (q, _) = w.endpoint(0, EndpointKind::Async(4), 0);
    while w.caps.slots_in_use_of(HOLDER).unwrap() < SLOTS - 1 {
        w.caps.insert_root(HOLDER, ObjectRef { kind: kind::THREAD, id: 0 }, 0).unwrap();
    }
    let mut m = word(1);
    m.caps[0] = q;
    m.caps[1] = q;
    m.ncaps = 2;
    fails_with(w.send(0, q, m, Timeout::Zero), Error::OutOfMemory);
    m.ncaps = 1;
    done(w.send(0, q, m, Timeout::Zero));
}

// ===================== order, badges, server loops =====================

#[test]
fn waiting_senders_are_served_by_priority_then_in_order() {
    let mut w = W::new();
    let prios = [1, 3, 3, 2, 0, 3];
    for (t, &p) in prios.iter().enumerate() {
        w.thread(t, 0, p);
    }
    w.thread(9, 1, 0);
    let (ep, _) = w.endpoint(0, EndpointKind::Sync, 0);
    let ep1 = w.give(0, ep, 1, rights::READ, 0);
    for t in 0..prios.len() {
        blocked(w.send(t, ep, word(t as u64), Timeout::Never));
    }
    w.check();
    let order: Vec<u64> = (0..prios.len()).map(|_| done(w.recv(9, ep1, REGS, Timeout::Zero)).regs[0]).collect();
    assert_eq!(order, [1, 2, 5, 3, 0, 4]);
}

#[test]
fn waiting_receivers_are_served_by_priority_then_in_order() {
    let mut w = W::new();
    let prios = [2, 0, 2, 5, 1];
    for (t, &p) in prios.iter().enumerate() {
        w.thread(t, 0, p);
    }
    w.thread(9, 1, 0);
    let (ep, _) = w.endpoint(0, EndpointKind::Async(1), 0);
    let ep1 = w.give(0, ep, 1, rights::WRITE, 0);
    for t in 0..prios.len() {
        blocked(w.recv(t, ep, REGS, Timeout::Never));
    }
    w.check();
    let mut order = Vec::new();
    for i in 0..prios.len() {
        done(w.send(9, ep1, word(i as u64), Timeout::Zero));
        let wakes = w.wakes();
        assert_eq!(wakes[0].1.unwrap().regs[0], i as u64);
        order.push(wakes[0].0);
    }
    assert_eq!(order, [3, 0, 2, 4, 1]);
}

#[test]
fn badges_name_the_sender() {
    let (mut w, ep, _) = pair();
    let a = w.give(1, ep, 0, rights::WRITE, 11);
    let b = w.give(1, ep, 0, rights::WRITE, 22);
    blocked(w.send(0, a, word(1), Timeout::Never));
    blocked(w.call(1, b, word(2), REGS, Timeout::Never));
    let g1 = done(w.recv(2, ep, REGS, Timeout::Never));
    let g2 = done(w.recv(2, ep, REGS, Timeout::Never));
    assert_eq!((g1.regs[0], g1.badge, g1.reply), (1, 11, 0));
    assert_eq!((g2.regs[0], g2.badge), (2, 22));
    done(w.reply(2, g2.reply, word(3)));
    let wakes = w.wakes();
    assert_eq!(wakes[1].1.unwrap().badge, 0, "replies carry no badge");
    // Through a queue as well.
    let (q, _) = w.endpoint(1, EndpointKind::Async(2), 0);
    let qa = w.give(1, q, 0, rights::WRITE, 33);
    done(w.send(0, qa, word(4), Timeout::Zero));
    done(w.send(2, q, word(5), Timeout::Zero));
    assert_eq!(done(w.recv(3, q, REGS, Timeout::Zero)).badge, 33);
    assert_eq!(done(w.recv(3, q, REGS, Timeout::Zero)).badge, 0);
}

#[test]
fn reply_receive_runs_a_server_loop() {
    let (mut w, ep, ep0) = pair();
    let client_ep = w.give(1, ep, 0, rights::WRITE, 5);
    let _ = ep0;
    // The server starts with no reply to send.
    blocked(w.reply_recv(2, 0, Msg::default(), ep, REGS, Timeout::Never));
    blocked(w.call(0, client_ep, word(10), REGS, Timeout::Never));
    let wakes = w.wakes();
    assert_eq!(wakes.len(), 1);
    let mut req = wakes[0].1.unwrap();
    assert_eq!((req.regs[0], req.badge), (10, 5));
    // A second client queues up while the server works.
    blocked(w.call(1, client_ep, word(20), REGS, Timeout::Never));
    for round in 0..2 {
        let o = w.reply_recv(2, req.reply, word(req.regs[0] + 1), ep, REGS, Timeout::Never);
        let wakes = w.wakes();
        assert_eq!(wakes.len(), 1);
        let answer = wakes[0].1.unwrap().regs[0];
        if round == 0 {
            assert_eq!((wakes[0].0, answer), (0, 11));
            req = done(o);
            assert_eq!(req.regs[0], 20);
        } else {
            assert_eq!((wakes[0].0, answer), (1, 21));
            blocked(o);
        }
        w.kernel_after();
        w.check();
    }
    let s = w.ipc.stats(0).unwrap();
    assert_eq!((s.delivered, s.calls, s.recv_blocks, s.send_blocks), (2, 2, 2, 1));
}

// ===================== exhaustive exploration of small systems =====================
//
// Threads 0 and 1 (task 0, priorities 1 and 2) and 2 (task 1, priority 1)
// use a synchronous endpoint and an asynchronous one with two places (long
// messages, so queue storage is used). Every message carries a unique id
// (first register, or first eight bytes of a long message). Every sequence
// of operations up to a depth is run, checking invariants after each step;
// at each state the queues are then drained (thread 3, task 1) to check
// that every accepted message is delivered exactly once, and the endpoints
// are destroyed.

const SIM_THREADS: usize = 3;
const DRAINER: ThreadId = 3;
const TASK_OF: [TaskId; 4] = [0, 0, 1, 1];
const PRIO: [u8; 4] = [1, 2, 1, 0];
const SYNC: usize = 0;
const ASYNC: usize = 1;
/// Marks a reply: the request's id with this bit.
const ANSWER: u64 = 1 << 62;
/// Thread 0's asynchronous messages are this long and carry a capability.
const LONG: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// One-way send on the synchronous endpoint, no timeout.
    Send(ThreadId),
    /// Call on the synchronous endpoint, timeout now + 2.
    Call(ThreadId),
    /// Receive on the synchronous endpoint, timeout now + 1.
    Recv(ThreadId),
    /// Send on the asynchronous endpoint, timeout now + 1.
    ASend(ThreadId),
    /// Receive on the asynchronous endpoint, no timeout.
    ARecv(ThreadId),
    /// Reply to the oldest call the thread holds.
    Reply(ThreadId),
    /// Reply to it and receive on the synchronous endpoint.
    ReplyRecv(ThreadId),
    /// Delete the reply right instead (the kernel then reports it).
    DropReply(ThreadId),
    /// The kernel ends the thread's wait.
    Cancel(ThreadId),
    /// Time advances to the next deadline.
    Expire,
    /// The drainer receives without blocking (not enumerated).
    Drain(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Pending,
    Delivered,
    Failed,
}

#[derive(Clone, Copy, Debug)]
struct SimMsg {
    from: ThreadId,
    ep: usize,
    len: usize,
    call: bool,
    cap: bool,
    fate: Fate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Doing {
    Idle,
    Send(u64, usize),
    Call(u64),
    Recv(usize),
}

#[derive(Clone, Copy, Debug)]
struct HeldReply {
    server: ThreadId,
    token: u64,
    id: u64,
    caller: ThreadId,
}

struct Sim {
    w: W,
    ep_id: [usize; 2],
    /// Endpoint tokens by task and endpoint.
    tok: [[u64; 2]; 2],
    badge: [[u64; 2]; 2],
    /// A read-only and a write-only token of the synchronous endpoint, by task.
    ro: [u64; 2],
    wo: [u64; 2],
    now: u64,
    msgs: Vec<SimMsg>,
    doing: [Doing; 4],
    held: Vec<HeldReply>,
}

fn sbuf(t: ThreadId) -> u64 {
    BUF + 0x100 * t as u64
}

/// Where `t` receives on endpoint `ep` (or takes replies, for the
/// synchronous one). Messages on the synchronous endpoint are 8 bytes, so
/// the small capacities fit them but not every fast-path message.
fn rbuf_of(t: ThreadId, ep: usize) -> RecvBuf {
    let cap = if ep == SYNC { [256, 16, 8, 16][t] } else { 256 };
    rb(BUF + 0x800 + 0x100 * t as u64, cap)
}

impl Sim {
    fn new() -> Sim {
        let mut w = W::with_buffers(PAGE as usize);
        for t in 0..4 {
            w.thread(t, TASK_OF[t], PRIO[t]);
        }
        let (s0, sid) = w.endpoint(0, EndpointKind::Sync, 0);
        let (a1, aid) = w.endpoint(1, EndpointKind::Async(2), 128);
        let s1 = w.give(0, s0, 1, rights::ALL, 0x21);
        let a0 = w.give(1, a1, 0, rights::ALL, 0x10);
        let ro = [w.give(0, s0, 0, rights::READ, 0), w.give(0, s0, 1, rights::READ, 0)];
        let wo = [w.give(0, s0, 0, rights::WRITE, 0), w.give(0, s0, 1, rights::WRITE, 0)];
        let dummy = SimMsg { from: 0, ep: 0, len: 0, call: false, cap: false, fate: Fate::Failed };
        Sim {
            w,
            ep_id: [sid, aid],
            tok: [[s0, a0], [s1, a1]],
            badge: [[0, 0x10], [0x21, 0]],
            ro,
            wo,
            now: 0,
            msgs: vec![dummy],
            doing: [Doing::Idle; 4],
            held: Vec::new(),
        }
    }

    /// The operations the simulated threads can issue now.
    fn ops(&self) -> Vec<Op> {
        let mut v = Vec::new();
        for t in 0..SIM_THREADS {
            if self.doing[t] == Doing::Idle {
                v.extend([Op::Send(t), Op::Call(t), Op::Recv(t), Op::ASend(t), Op::ARecv(t)]);
                if self.held.iter().any(|h| h.server == t) {
                    v.extend([Op::Reply(t), Op::ReplyRecv(t), Op::DropReply(t)]);
                }
            } else {
                v.push(Op::Cancel(t));
            }
        }
        if self.w.ipc.next_deadline().is_some() {
            v.push(Op::Expire);
        }
        v
    }

    fn new_msg(&mut self, from: ThreadId, ep: usize, call: bool) -> (u64, Msg) {
        let id = self.msgs.len() as u64;
        let cap = ep == ASYNC && from == 0;
        let len = if cap { LONG } else { 8 };
        self.msgs.push(SimMsg { from, ep, len, call, cap, fate: Fate::Pending });
        if !cap {
            return (id, word(id));
        }
        let mut data = pattern(LONG, id as u8);
        data[..8].copy_from_slice(&id.to_le_bytes());
        self.w.mem.poke(space_of(TASK_OF[from]), sbuf(from), &data);
        let mut m = long(sbuf(from), LONG);
        m.caps[0] = self.tok[0][SYNC];
        m.ncaps = 1;
        (id, m)
    }

    fn tok_of(&self, t: ThreadId, ep: usize) -> u64 {
        self.tok[TASK_OF[t]][ep]
    }

    /// The oldest reply `t` holds, taken from the list.
    fn take_held(&mut self, t: ThreadId) -> HeldReply {
        let i = self.held.iter().position(|h| h.server == t).expect("a held reply");
        self.held.remove(i)
    }

    fn caller_waits(&self, h: &HeldReply) -> bool {
        self.doing[h.caller] == Doing::Call(h.id) && self.msgs[h.id as usize].fate == Fate::Delivered
    }

    /// Runs one operation and checks everything; false if a drain found
    /// nothing to do.
    fn step(&mut self, op: Op) -> bool {
        let mut actor = None;
        let mut answered: Option<(HeldReply, bool)> = None;
        let mut dropped: Option<(HeldReply, bool)> = None;
        let mut due = Vec::new();
        match op {
            Op::Send(t) => {
                let (id, m) = self.new_msg(t, SYNC, false);
                let o = self.w.send(t, self.tok_of(t, SYNC), m, Timeout::Never);
                actor = Some((t, Doing::Send(id, SYNC), o));
            }
            Op::Call(t) => {
                let (id, m) = self.new_msg(t, SYNC, true);
                let o = self.w.call(t, self.tok_of(t, SYNC), m, rbuf_of(t, SYNC), Timeout::Until(self.now + 2));
                actor = Some((t, Doing::Call(id), o));
            }
            Op::Recv(t) => {
                let o = self.w.recv(t, self.tok_of(t, SYNC), rbuf_of(t, SYNC), Timeout::Until(self.now + 1));
                actor = Some((t, Doing::Recv(SYNC), o));
            }
            Op::ASend(t) => {
                let (id, m) = self.new_msg(t, ASYNC, false);
                let o = self.w.send(t, self.tok_of(t, ASYNC), m, Timeout::Until(self.now + 1));
                actor = Some((t, Doing::Send(id, ASYNC), o));
            }
            Op::ARecv(t) => {
                let o = self.w.recv(t, self.tok_of(t, ASYNC), rbuf_of(t, ASYNC), Timeout::Never);
                actor = Some((t, Doing::Recv(ASYNC), o));
            }
            Op::Reply(t) | Op::ReplyRecv(t) => {
                let h = self.take_held(t);
                let live = self.caller_waits(&h);
                let answer = word(h.id | ANSWER);
                let o = if matches!(op, Op::Reply(_)) {
                    self.w.reply(t, h.token, answer)
                } else {
                    let rbuf = rbuf_of(t, SYNC);
                    self.w.reply_recv(t, h.token, answer, self.tok_of(t, SYNC), rbuf, Timeout::Never)
                };
                assert!(self.w.caps.lookup(TASK_OF[t], h.token).is_err(), "a used reply right is gone");
                if !live {
                    assert_eq!(o, Outcome::Done(oops(Error::PeerGone)));
                } else if matches!(op, Op::Reply(_)) {
                    assert_eq!(o, Outcome::Done(sent()));
                } else {
                    actor = Some((t, Doing::Recv(SYNC), o));
                }
                answered = Some((h, live));
            }
            Op::DropReply(t) => {
                let h = self.take_held(t);
                self.w.ipc.drop_reply(TASK_OF[t], h.token).unwrap();
                dropped = Some((h, self.caller_waits(&h)));
            }
            Op::Cancel(t) => self.w.ipc.cancel(t, Error::InvalidState),
            Op::Expire => {
                self.now = self.w.ipc.next_deadline().expect("a deadline");
                due =
                    (0..4).filter(|&t| self.w.ipc.thread(t).unwrap().deadline.is_some_and(|d| d <= self.now)).collect();
                assert!(!due.is_empty());
                self.w.ipc.expire(self.now);
            }
            Op::Drain(k) => {
                let o = self.w.recv(DRAINER, self.tok_of(DRAINER, k), rbuf_of(DRAINER, k), Timeout::Zero);
                if o == Outcome::Done(oops(Error::WouldBlock)) {
                    assert_eq!(self.w.wakes(), []);
                    return false;
                }
                actor = Some((DRAINER, Doing::Recv(k), o));
            }
        }
        self.w.kernel_after();
        let wakes = self.w.wakes();
        let woken = |t: ThreadId| wakes.iter().find(|w| w.0 == t).map(|w| w.1);
        match op {
            Op::Cancel(t) => assert_eq!(wakes, [(t, oops(Error::InvalidState))]),
            Op::Expire => {
                assert_eq!(wakes.len(), due.len(), "{wakes:?} {due:?}");
                for (t, r) in &wakes {
                    assert!(due.contains(t));
                    assert_eq!(*r, oops(Error::Timeout));
                }
            }
            _ => {}
        }
        if let Some((h, live)) = answered {
            let expect = Ok(Received { len: 8, regs: word(h.id | ANSWER).regs, ..Received::default() });
            assert_eq!(woken(h.caller), live.then_some(expect));
        }
        if let Some((h, live)) = dropped {
            assert_eq!(woken(h.caller), live.then_some(oops(Error::PeerGone)));
        }
        let mut sync_sent = Vec::new();
        if let Some((t, what, o)) = actor {
            assert!(woken(t).is_none(), "the acting thread is not woken");
            match (what, o) {
                (_, Outcome::Blocked) => self.doing[t] = what,
                (Doing::Recv(k), Outcome::Done(Ok(got))) => self.deliver(t, k, got),
                (Doing::Send(id, k), Outcome::Done(Ok(got))) => {
                    assert_eq!(got, Received::default());
                    if k == SYNC {
                        sync_sent.push(id);
                    }
                }
                (what, o) => panic!("{what:?} ended with {o:?}"),
            }
        }
        for (t, r) in wakes {
            let doing = core::mem::replace(&mut self.doing[t], Doing::Idle);
            match (doing, r) {
                (Doing::Idle, r) => panic!("thread {t} woken with {r:?} but was not waiting"),
                (Doing::Recv(k), Ok(got)) => self.deliver(t, k, got),
                (Doing::Recv(_), Err(e)) => {
                    assert!(matches!(e.error, Error::Timeout | Error::InvalidState | Error::NotFound), "{e:?}")
                }
                (Doing::Send(id, k), Ok(got)) => {
                    assert_eq!(got, Received::default());
                    if k == SYNC {
                        sync_sent.push(id);
                    }
                }
                (Doing::Send(id, _), Err(e)) => {
                    assert!(matches!(e.error, Error::Timeout | Error::InvalidState | Error::NotFound), "{e:?}");
                    let m = &mut self.msgs[id as usize];
                    assert_eq!(m.fate, Fate::Pending, "message {id} failed after delivery");
                    m.fate = Fate::Failed;
                }
                (Doing::Call(id), Ok(got)) => {
                    assert_eq!(self.msgs[id as usize].fate, Fate::Delivered);
                    assert!(answered.is_some_and(|(h, _)| h.id == id), "reply to call {id} from nowhere");
                    assert_eq!(got.regs[0], id | ANSWER);
                }
                (Doing::Call(id), Err(e)) => {
                    let m = &mut self.msgs[id as usize];
                    match m.fate {
                        Fate::Pending => {
                            assert!(matches!(e.error, Error::Timeout | Error::InvalidState | Error::NotFound), "{e:?}");
                            m.fate = Fate::Failed;
                        }
                        Fate::Delivered => {
                            assert!(matches!(e.error, Error::PeerGone | Error::InvalidState), "{e:?}");
                        }
                        Fate::Failed => panic!("call {id} failed twice"),
                    }
                }
            }
        }
        for id in sync_sent {
            assert_eq!(self.msgs[id as usize].fate, Fate::Delivered, "a synchronous send is done only when delivered");
        }
        self.check();
        true
    }

    fn deliver(&mut self, r: ThreadId, k: usize, got: Received) {
        let sp = space_of(TASK_OF[r]);
        let id = if got.len > SHORT_MAX {
            let at = rbuf_of(r, k).addr;
            let id = self.w.mem.peek_u64(sp, at);
            let mut data = pattern(LONG, id as u8);
            data[..8].copy_from_slice(&id.to_le_bytes());
            assert_eq!(self.w.mem.peek(sp, at, LONG), data);
            self.w.mem.poke(sp, at, &[0; LONG]);
            id
        } else {
            got.regs[0]
        };
        let m = self.msgs.get_mut(id as usize).unwrap_or_else(|| panic!("unknown message {id} delivered"));
        assert_eq!(m.fate, Fate::Pending, "message {id} delivered twice or after failing");
        m.fate = Fate::Delivered;
        let m = *m;
        assert_eq!((m.ep, m.len), (k, got.len));
        assert_eq!(got.badge, self.badge[TASK_OF[m.from]][k]);
        if m.call {
            assert_ne!(got.reply, 0);
            self.held.push(HeldReply { server: r, token: got.reply, id, caller: m.from });
        } else {
            assert_eq!(got.reply, 0);
        }
        if m.cap {
            assert_eq!(got.ncaps, 1);
            let c = *self.w.caps.lookup(TASK_OF[r], got.caps[0]).unwrap();
            assert_eq!(c.object, ObjectRef { kind: kind::ENDPOINT, id: self.ep_id[SYNC] as u64 });
            assert_eq!(c.rights, ENDPOINT_RIGHTS);
            self.w.caps.delete(TASK_OF[r], got.caps[0]).unwrap();
        } else {
            assert_eq!(got.ncaps, 0);
        }
    }

    fn msg_id(&self, t: ThreadId, msg: &Msg) -> u64 {
        if msg.len > SHORT_MAX {
            self.w.mem.peek_u64(space_of(TASK_OF[t]), msg.buf)
        } else {
            msg.regs[0]
        }
    }

    fn check(&self) {
        self.w.check();
        let ipc = &self.w.ipc;
        let mut in_engine = Vec::new();
        for t in 0..4 {
            let wait = self.w.wait(t);
            if let Wait::Send { msg, .. } = wait {
                in_engine.push(self.msg_id(t, &msg));
            }
            let ok = match self.doing[t] {
                Doing::Idle => wait == Wait::None,
                Doing::Send(id, k) => matches!(wait, Wait::Send { ep, call: None, msg, .. }
                    if ep == self.ep_id[k] && self.msg_id(t, &msg) == id),
                Doing::Call(id) => match self.msgs[id as usize].fate {
                    Fate::Pending => matches!(wait, Wait::Send { ep, call: Some(_), msg, .. }
                        if ep == self.ep_id[SYNC] && self.msg_id(t, &msg) == id),
                    Fate::Delivered => matches!(wait, Wait::Reply { .. }),
                    Fate::Failed => false,
                },
                Doing::Recv(k) => matches!(wait, Wait::Recv { ep, .. } if ep == self.ep_id[k]),
            };
            assert!(ok, "thread {t} does {:?} but waits {wait:?}", self.doing[t]);
        }
        let aid = self.ep_id[ASYNC];
        for q in &ipc.endpoint(aid).unwrap().queue {
            in_engine.push(if q.msg.len > SHORT_MAX {
                u64::from_le_bytes(self.w.mem.queues[&aid][q.slot][..8].try_into().unwrap())
            } else {
                q.msg.regs[0]
            });
        }
        in_engine.sort_unstable();
        let pending: Vec<u64> =
            (0..self.msgs.len() as u64).filter(|&i| self.msgs[i as usize].fate == Fate::Pending).collect();
        assert_eq!(in_engine, pending, "messages lost or duplicated");
        assert_eq!(ipc.rights().len(), self.held.len());
        for h in &self.held {
            let r = ipc.right(TASK_OF[h.server], h.token).expect("a held reply right is live");
            assert_eq!(ipc.reply_token_info(TASK_OF[h.server], h.token), Ok(()));
            assert_eq!(r.caller.map(|to| to.thread), self.caller_waits(h).then_some(h.caller), "{h:?}");
        }
        assert_eq!(self.w.mem.queue_bytes, 2 * 128);
    }

    /// Drains both endpoints with the drainer (answering calls at once),
    /// checks nothing accepted was lost, then destroys the endpoints.
    fn drain_and_destroy(mut self) {
        loop {
            while self.held.iter().any(|h| h.server == DRAINER) {
                self.step(Op::Reply(DRAINER));
            }
            let a = self.step(Op::Drain(SYNC));
            let b = self.step(Op::Drain(ASYNC));
            if !a && !b {
                break;
            }
        }
        for (id, m) in self.msgs.iter().enumerate() {
            assert_ne!(m.fate, Fate::Pending, "message {id} accepted but never delivered");
        }
        for t in 0..4 {
            assert!(!matches!(self.w.wait(t), Wait::Send { .. }));
        }
        assert_eq!(self.w.caps.slots_in_use_of(HOLDER), Ok(0));
        let receivers: Vec<ThreadId> = (0..4).filter(|&t| matches!(self.doing[t], Doing::Recv(_))).collect();
        for id in self.ep_id {
            self.w.ipc.destroy_endpoint(&mut self.w.caps, &mut self.w.mem, id);
        }
        let wakes = self.w.wakes();
        let mut woken: Vec<ThreadId> = wakes.iter().map(|w| w.0).collect();
        woken.sort_unstable();
        assert_eq!(woken, receivers);
        assert!(wakes.iter().all(|w| w.1 == oops(Error::NotFound)));
        assert_eq!(self.w.mem.queue_bytes, 0);
        assert_eq!(self.w.ipc.endpoint_count(), 0);
        self.w.check();
    }
}

fn replay(ops: &[Op]) -> Sim {
    let mut sim = Sim::new();
    for &op in ops {
        assert!(sim.ops().contains(&op), "{op:?} cannot be issued");
        sim.step(op);
    }
    sim
}

/// Visits every sequence of at most `depth` operations after `prefix`;
/// returns how many states were checked.
fn explore(prefix: &mut Vec<Op>, depth: usize) -> usize {
    let run = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        let sim = replay(prefix);
        let ops = if depth > 0 { sim.ops() } else { Vec::new() };
        sim.drain_and_destroy();
        ops
    }));
    let ops = run.unwrap_or_else(|_| panic!("failing sequence: {prefix:?}"));
    let mut states = 1;
    for op in ops {
        prefix.push(op);
        states += explore(prefix, depth - 1);
        prefix.pop();
    }
    states
}

#[test]
fn the_simulation_sees_what_it_expects() {
    // A few hand-picked paths through the simulation, so that it is known
    // to reach the interesting states.
    let sim = replay(&[Op::Call(0), Op::Recv(2), Op::Call(1), Op::ReplyRecv(2)]);
    assert_eq!(sim.held.len(), 1);
    assert_eq!(sim.msgs.iter().filter(|m| m.fate == Fate::Delivered).count(), 2);
    sim.drain_and_destroy();
    let sim = replay(&[Op::ASend(0), Op::ASend(1), Op::ASend(2), Op::ARecv(1)]);
    assert_eq!(sim.doing[2], Doing::Idle);
    assert_eq!(sim.w.ipc.endpoint(sim.ep_id[ASYNC]).unwrap().queue.len(), 2);
    sim.drain_and_destroy();
    let sim = replay(&[Op::Call(0), Op::Recv(2), Op::Cancel(0), Op::Reply(2)]);
    assert!(sim.held.is_empty());
    let sim = replay(&[
        Op::Recv(0),
        Op::Expire,
        Op::Call(1),
        Op::ASend(2),
        Op::ASend(2),
        Op::ASend(2),
        Op::Expire,
        Op::Expire,
    ]);
    assert_eq!(sim.doing, [Doing::Idle; 4]);
    sim.drain_and_destroy();
    let after_send = replay(&[Op::Send(0)]).ops().len();
    assert_eq!(after_send, 1 + 2 * 5);
    assert_eq!(explore(&mut vec![Op::Send(0)], 1), 1 + after_send);
}

#[test]
fn every_sequence_of_five_operations_keeps_the_invariants() {
    let states = explore(&mut Vec::new(), 5);
    assert_eq!(states, 273_166, "the explored space changed");
}

/// The same six deep: about 3 million states, some 25 s.
#[test]
#[ignore]
fn every_sequence_of_six_operations_keeps_the_invariants() {
    explore(&mut Vec::new(), 6);
}

// ===================== fast paths =====================
//
// From states reached by random operation sequences, a fast call or fast
// reply-and-receive must either change nothing (and return `None`) or end
// in exactly the state the general path reaches, with the partner's result
// returned instead of listed as a wake.

fn op_of(kind: u8, t: ThreadId) -> Op {
    match kind {
        0 => Op::Send(t),
        1 => Op::Call(t),
        2 => Op::Recv(t),
        3 => Op::ASend(t),
        4 => Op::ARecv(t),
        5 => Op::Reply(t),
        6 => Op::ReplyRecv(t),
        7 => Op::DropReply(t),
        8 => Op::Cancel(t),
        _ => Op::Expire,
    }
}

/// Runs those of `ops` that can be issued when their turn comes.
fn build(ops: &[(u8, ThreadId)]) -> Sim {
    let mut sim = Sim::new();
    for &(k, t) in ops {
        let op = op_of(k, t);
        if sim.ops().contains(&op) {
            sim.step(op);
        }
    }
    sim
}

#[derive(Clone, Debug)]
struct FastCase {
    ops: Vec<(u8, ThreadId)>,
    thread: ThreadId,
    /// Which token names the endpoint (or the reply).
    token: u8,
    /// Which token names the endpoint to receive on (reply-and-receive).
    ep_token: u8,
    len: usize,
    regs: [u64; MSG_REGS],
    rbuf: RecvBuf,
}

fn fast_case() -> impl Strategy<Value = FastCase> {
    let op = (prop_oneof![3 => Just(1u8), 3 => Just(2u8), 2 => Just(6u8), 1 => 0u8..10], 0..SIM_THREADS);
    (
        prop::collection::vec(op, 0..12),
        0..SIM_THREADS,
        prop_oneof![6 => Just(0u8), 1 => 0u8..8],
        prop_oneof![6 => Just(0u8), 1 => 0u8..8],
        prop_oneof![3 => 0..=8usize, 3 => 0..=SHORT_MAX, 1 => 0..=SHORT_MAX + 8],
        any::<[u64; MSG_REGS]>(),
        (any::<u64>(), prop_oneof![0..=SHORT_MAX + 8, any::<usize>()]),
    )
        .prop_map(|(ops, thread, token, ep_token, len, regs, (addr, cap))| FastCase {
            ops,
            thread,
            token,
            ep_token,
            len,
            regs,
            rbuf: RecvBuf { addr, cap },
        })
}

impl Sim {
    /// The first thread from `t` on that can issue a call.
    fn running_thread(&self, t: ThreadId) -> Option<ThreadId> {
        (0..SIM_THREADS).map(|i| (t + i) % SIM_THREADS).find(|&x| self.doing[x] == Doing::Idle)
    }

    /// Endpoint-ish tokens of `t`'s task, by choice.
    fn pick_endpoint(&self, t: ThreadId, choice: u8) -> u64 {
        let task = TASK_OF[t];
        match choice {
            0 => self.tok[task][SYNC],
            1 => self.tok[task][ASYNC],
            2 => self.ro[task],
            3 => self.wo[task],
            4 => self.held.iter().find(|h| h.server == t).map_or(0, |h| h.token),
            5 => self.tok[1 - task][SYNC],
            6 => token::make(50, 0, kind::ENDPOINT),
            _ => 0,
        }
    }

    /// Reply tokens of `t`, by choice.
    fn pick_reply(&self, t: ThreadId, choice: u8) -> u64 {
        let mine: Vec<&HeldReply> = self.held.iter().filter(|h| h.server == t).collect();
        match choice {
            0 | 1 if !mine.is_empty() => mine[choice as usize % mine.len()].token,
            2 => self.held.iter().find(|h| h.server != t).map_or(0, |h| h.token),
            3 => self.tok[TASK_OF[t]][SYNC],
            4 => token::make(50, 0, kind::REPLY),
            // Forged from a live one: another generation, the 8-bit
            // generation field set, a flag bit set.
            5 => mine.first().map_or(0, |h| h.token.wrapping_add(1 << 16)),
            6 => mine.first().map_or(0, |h| h.token | 1 << 48),
            7 => mine.first().map_or(0, |h| h.token | 1 << 60),
            _ => 0,
        }
    }

    fn snapshot(&self) -> (std::string::String, std::string::String) {
        (std::format!("{:?}", self.w.ipc), std::format!("{:?}", self.w.caps))
    }
}

/// Runs one case; `Some(true)` if the fast path was taken, `None` if no
/// thread could issue the call.
fn check_fast(c: &FastCase, reply_receive: bool) -> Result<Option<bool>, TestCaseError> {
    let mut fast = build(&c.ops);
    // Mostly a server that holds a reply, for reply-and-receive.
    let server = (reply_receive && c.token < 2)
        .then(|| fast.held.iter().map(|h| h.server).find(|&s| s < SIM_THREADS && fast.doing[s] == Doing::Idle))
        .flatten();
    let Some(t) = server.or_else(|| fast.running_thread(c.thread)) else { return Ok(None) };
    let before = fast.snapshot();
    let mem_before = fast.w.mem.clone();
    let regs = c.regs;
    let (r, ep_token, reply_token) = if reply_receive {
        let reply_token = fast.pick_reply(t, c.token);
        let ep_token = fast.pick_endpoint(t, c.ep_token);
        (
            fast_reply_receive(&mut fast.w.ipc, &fast.w.caps, t, reply_token, c.len, regs, ep_token, c.rbuf),
            ep_token,
            reply_token,
        )
    } else {
        let ep_token = fast.pick_endpoint(t, c.token);
        (fast_call(&mut fast.w.ipc, &fast.w.caps, t, ep_token, c.len, regs, c.rbuf), ep_token, 0)
    };
    prop_assert!(!fast.w.ipc.has_wakes());
    let Some((partner, got)) = r else {
        prop_assert_eq!(fast.snapshot(), before, "a refused fast path changed the state");
        prop_assert!(fast.w.mem == mem_before);
        return Ok(Some(false));
    };
    prop_assert!(c.len <= SHORT_MAX);
    let mut general = build(&c.ops);
    let msg = short(c.len, regs);
    let o = if reply_receive {
        general.w.reply_recv(t, reply_token, msg, ep_token, c.rbuf, Timeout::Never)
    } else {
        general.w.call(t, ep_token, msg, c.rbuf, Timeout::Never)
    };
    prop_assert_eq!(o, Outcome::Blocked);
    prop_assert_eq!(general.w.wakes(), vec![(partner, Ok(got))]);
    prop_assert_eq!(fast.snapshot(), general.snapshot());
    prop_assert!(fast.w.mem == general.w.mem);
    fast.w.check();
    Ok(Some(true))
}

fn run_fast(reply_receive: bool) -> [usize; 3] {
    let config = ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let counts = core::cell::Cell::new([0usize; 3]);
    runner
        .run(&fast_case(), |c| {
            let r = check_fast(&c, reply_receive)?;
            let mut n = counts.get();
            n[match r {
                Some(true) => 0,
                Some(false) => 1,
                None => 2,
            }] += 1;
            counts.set(n);
            Ok(())
        })
        .unwrap();
    counts.get()
}

#[test]
fn fast_call_matches_the_general_path() {
    let [taken, refused, skipped] = run_fast(false);
    std::println!("fast call: taken {taken}, refused {refused}, skipped {skipped}");
    assert!(taken >= 200 && refused >= 200, "taken {taken}, refused {refused}");
}

#[test]
fn fast_reply_receive_matches_the_general_path() {
    let [taken, refused, skipped] = run_fast(true);
    std::println!("fast reply-receive: taken {taken}, refused {refused}, skipped {skipped}");
    assert!(taken >= 200 && refused >= 200, "taken {taken}, refused {refused}");
}

/// Messages that travel in registers are still held to the receiver's
/// stated capacity: a receiver that cannot take them is told the size.
#[test]
fn short_messages_respect_the_stated_capacity_too() {
    let (mut w, ep, ep0) = pair();
    let m = short(20, regs8(&[1, 2, 3]));
    // Sender first: the receiver is refused, the message stays.
    blocked(w.send(0, ep0, m, Timeout::Never));
    let e = failed(w.recv(2, ep, rb(0, 19), Timeout::Never));
    assert_eq!(e, IpcError { error: Error::BufferTooSmall, detail: 20 });
    assert_eq!(done(w.recv(2, ep, rb(0, 20), Timeout::Never)).regs, m.regs);
    assert_eq!(w.wakes(), [(0, sent())]);
    // Receiver first: the fast path declines, the general one tells the
    // receiver and the caller waits.
    blocked(w.recv(2, ep, rb(0, 8), Timeout::Never));
    let before = std::format!("{:?}", w.ipc);
    assert_eq!(fast_call(&mut w.ipc, &w.caps, 0, ep0, 9, [0; MSG_REGS], REGS), None);
    assert_eq!(std::format!("{:?}", w.ipc), before);
    blocked(w.call(0, ep0, short(9, [0; MSG_REGS]), rb(0, 8), Timeout::Never));
    assert_eq!(w.wakes(), [(2, Err(IpcError { error: Error::BufferTooSmall, detail: 9 }))]);
    let got = done(w.recv(2, ep, REGS, Timeout::Never));
    // The caller has room for 8 bytes: a longer reply is refused (fast and
    // general path alike) and the right stays.
    let before = std::format!("{:?}", w.ipc);
    assert_eq!(fast_reply_receive(&mut w.ipc, &w.caps, 2, got.reply, 9, [0; MSG_REGS], ep, REGS), None);
    assert_eq!(std::format!("{:?}", w.ipc), before);
    let e = failed(w.reply_recv(2, got.reply, short(9, [0; MSG_REGS]), ep, REGS, Timeout::Never));
    assert_eq!(e, IpcError { error: Error::BufferTooSmall, detail: 9 });
    assert_eq!(w.ipc.reply_token_info(1, got.reply), Ok(()));
    assert_eq!(w.wait(2), Wait::None);
    // Exactly the capacity is fine, on the fast path too.
    let (caller, back) = fast_reply_receive(&mut w.ipc, &w.caps, 2, got.reply, 8, [7; MSG_REGS], ep, REGS).unwrap();
    assert_eq!((caller, back.len, back.regs), (0, 8, [7; MSG_REGS]));
    assert!(matches!(w.wait(2), Wait::Recv { .. }));
    // An empty call or reply fits a zero-sized buffer.
    let (server, req) = fast_call(&mut w.ipc, &w.caps, 1, ep0, 0, [0; MSG_REGS], rb(0, 0)).unwrap();
    assert_eq!((server, req.len), (2, 0));
    done(w.reply(2, req.reply, short(0, [0; MSG_REGS])));
    assert_eq!(w.wakes(), [(1, Ok(Received::default()))]);
    w.kernel_after();
    w.check();
}

/// The fast paths hand the CPU to the partner only if no ready thread has a
/// higher priority than the partner; otherwise they decline and change
/// nothing (the kernel then takes the general path).
#[test]
fn fast_paths_decline_when_a_higher_priority_thread_is_ready() {
    let (mut w, ep, ep0) = pair();
    blocked(w.recv(2, ep, REGS, Timeout::Never));
    let before = std::format!("{:?}", w.ipc);
    assert_eq!(w.ipc.fast_call(&w.caps, 0, ep0, 8, || REGS, Some(2)), None);
    assert_eq!(std::format!("{:?}", w.ipc), before);
    let p = w.ipc.fast_call(&w.caps, 0, ep0, 8, || REGS, Some(1)).unwrap();
    assert_eq!((p.thread, p.task), (2, 1));
    assert_ne!(p.reply, 0);
    let before = std::format!("{:?}", w.ipc);
    assert_eq!(w.ipc.fast_reply_receive(&w.caps, 2, p.reply, 0, ep, || REGS, Some(2)), None);
    assert_eq!(std::format!("{:?}", w.ipc), before);
    let back = w.ipc.fast_reply_receive(&w.caps, 2, p.reply, 0, ep, || REGS, None).unwrap();
    assert_eq!((back.thread, back.task, back.badge, back.reply), (0, 0, 0, 0));
    assert!(matches!(w.wait(2), Wait::Recv { .. }));
    assert_eq!(w.wait(0), Wait::None);
    w.check();
}

/// The fast paths and the general path remember each thread's last
/// endpoint check; any capability removed anywhere makes them check again,
/// so a deleted or revoked token stops working at once, and a token without
/// the right is refused however often it was used for something else.
#[test]
fn a_remembered_endpoint_check_dies_with_the_capability() {
    let (mut w, ep, ep0) = pair();
    // Thread 0 calls on the fast path; its check of `ep0` is remembered.
    blocked(w.recv(2, ep, REGS, Timeout::Never));
    let p = w.ipc.fast_call(&w.caps, 0, ep0, 0, || REGS, None).unwrap();
    assert_eq!(p.thread, 2);
    w.ipc.fast_reply_receive(&w.caps, 2, p.reply, 0, ep, || REGS, None).unwrap();
    // A token of the same task that can only read: refused for a call on
    // both paths, though it names the same endpoint.
    let read_only = w.caps.mint(0, ep0, rights::READ, 0).unwrap();
    assert_eq!(w.ipc.fast_call(&w.caps, 0, read_only, 0, || REGS, None), None);
    assert_eq!(
        failed(w.call(0, read_only, short(0, [0; MSG_REGS]), REGS, Timeout::Never)).error,
        Error::PermissionDenied
    );
    // `ep0` still works, then is deleted: refused at once on both paths.
    let p = w.ipc.fast_call(&w.caps, 0, ep0, 0, || REGS, None).unwrap();
    w.ipc.fast_reply_receive(&w.caps, 2, p.reply, 0, ep, || REGS, None).unwrap();
    w.caps.delete(0, ep0).unwrap();
    assert_eq!(w.ipc.fast_call(&w.caps, 0, ep0, 0, || REGS, None), None);
    assert_eq!(failed(w.call(0, ep0, short(0, [0; MSG_REGS]), REGS, Timeout::Never)).error, Error::NotFound);
    // The server's remembered receive token dies with a revoke of it.
    let ep_copy = w.caps.copy(1, ep).unwrap();
    let ep1 = w.give(1, ep, 0, rights::WRITE, 0);
    let p = w.ipc.fast_call(&w.caps, 0, ep1, 0, || REGS, None).unwrap();
    w.ipc.fast_reply_receive(&w.caps, 2, p.reply, 0, ep_copy, || REGS, None).unwrap();
    let p = w.ipc.fast_call(&w.caps, 0, ep1, 0, || REGS, None).unwrap();
    w.caps.revoke(1, ep).unwrap();
    assert_eq!(w.ipc.fast_reply_receive(&w.caps, 2, p.reply, 0, ep_copy, || REGS, None), None);
    let e = failed(w.reply_recv(2, p.reply, short(0, [0; MSG_REGS]), ep_copy, REGS, Timeout::Never));
    assert_eq!(e.error, Error::NotFound);
    w.kernel_after();
    w.check();
}

/// `short_plain` against its definition, for every capability count, the
/// lengths around the limit and beyond, and other fields set or not.
#[test]
fn short_plain_takes_exactly_short_messages_without_capabilities() {
    use abi::ipc::{LEN_MASK, NCAPS_SHIFT, RECV_CAP_SHIFT, SEND_LEN_SHIFT};
    let lens = (0..=200u64).chain([LEN_MASK - 1, LEN_MASK, 1 << 20]);
    for ncaps in 0..8u64 {
        for len in lens.clone() {
            for other in [0, 0x1d, 0xff, LEN_MASK << RECV_CAP_SHIFT, 1 << 63, u64::MAX << RECV_CAP_SHIFT] {
                let rax = (other & !((LEN_MASK << SEND_LEN_SHIFT) | (7 << NCAPS_SHIFT)))
                    | (ncaps << NCAPS_SHIFT)
                    | (len << SEND_LEN_SHIFT);
                let want = (ncaps == 0 && len <= SHORT_MAX as u64).then_some(len as usize);
                assert_eq!(short_plain(rax), want, "rax {rax:#x}");
            }
        }
    }
}
