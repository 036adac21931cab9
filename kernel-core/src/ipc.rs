//! The IPC engine: one mechanism that moves a message from one sender
//! thread to one receiver thread (or into an asynchronous endpoint's queue),
//! independent of how the partner is named. The VeridianOS-style front door
//! names partners by endpoint capability; later front doors (Sentry task
//! handles, L4 thread ids) reuse the same rendezvous, transfer, timeout and
//! cancellation logic.
//!
//! The engine owns every thread's IPC wait state, every endpoint and every
//! pending reply. It never touches user memory itself: copies go through
//! the [`Env`] trait (the kernel implements it with its direct map; host
//! tests with a model of memory). It never schedules: an operation either
//! finishes for the calling thread ([`Outcome::Done`]) or parks it
//! ([`Outcome::Blocked`]), and threads it completes on the way are listed in
//! [`Ipc::take_wakes`] ([`Wake`]; what a woken receiver gets it hands
//! straight to the kernel, through [`Env::deliver_plain`] and
//! [`Env::deliver`], which write it where the thread's registers are saved).
//!
//! Messages of at most [`SHORT_MAX`] bytes travel in eight message registers
//! and never touch memory; longer ones are copied once, straight from the
//! sender's buffer into the receiver's, at rendezvous.

use crate::cap::{CapError, CapSpace, Capability, ObjectRef, TaskId};
use crate::tqueue::{Linked, Links, Queue};
use abi::{kind, rights, Error};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

/// A thread id (the kernel's index).
pub type ThreadId = usize;
/// An address space id (opaque to the engine; the kernel uses the PML4).
pub type SpaceId = u64;
/// Message registers.
pub const MSG_REGS: usize = 8;
/// The largest message that travels in registers.
pub const SHORT_MAX: usize = MSG_REGS * 8;
/// Capabilities one message can carry.
pub const MAX_CAPS: usize = 4;
/// Default maximum message size of an endpoint.
pub const DEFAULT_MAX_MSG: usize = 64 * 1024;
/// Largest maximum message size an endpoint may have.
pub const MAX_MSG_LIMIT: usize = 1 << 20;
/// Longest asynchronous queue.
pub const MAX_QUEUE: usize = 256;
/// Most bytes of queue storage one endpoint may reserve.
pub const MAX_QUEUE_BYTES: usize = 4 << 20;

/// Rights a new endpoint token carries.
pub const ENDPOINT_RIGHTS: u64 = rights::READ | rights::WRITE | rights::GRANT | rights::REVOKE | rights::DELETE;

/// Which side of a copy faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The source buffer.
    Source,
    /// The destination buffer.
    Destination,
}

/// User memory as the engine sees it, and where what a woken receiver
/// gets goes.
pub trait Env {
    /// Copies `len` bytes from `from` to `to` (one copy).
    fn copy(&mut self, from: (SpaceId, u64), to: (SpaceId, u64), len: usize) -> Result<(), Side>;
    /// Whether `len` bytes at `addr` can be read.
    fn readable(&self, space: SpaceId, addr: u64, len: usize) -> bool;
    /// Whether `len` bytes at `addr` can be written.
    fn writable(&self, space: SpaceId, addr: u64, len: usize) -> bool;
    /// Reserves storage for an asynchronous queue: `slots` slots of `bytes`.
    fn queue_alloc(&mut self, ep: usize, slots: usize, bytes: usize) -> bool;
    /// Returns a queue's storage.
    fn queue_free(&mut self, ep: usize);
    /// Copies a message into queue slot `slot`.
    fn queue_store(&mut self, ep: usize, slot: usize, from: (SpaceId, u64), len: usize) -> Result<(), Side>;
    /// Copies queue slot `slot` out to a user buffer.
    fn queue_load(&mut self, ep: usize, slot: usize, to: (SpaceId, u64), len: usize) -> Result<(), Side>;
    /// Hands what it received to the thread `to.0`, which the engine has
    /// just woken and listed as [`Wake::Delivered`]: it returns to user
    /// space with `got`. `to.1` is where the kernel keeps its saved
    /// registers ([`IpcThread::frame`]), where the result is written.
    fn deliver(&mut self, to: (ThreadId, u64), got: &Received);
    /// [`Env::deliver`] of a plain message (short, no capabilities; the
    /// usual one) without building its [`Received`]: the thread returns
    /// with `msg`'s length and all eight of its registers, badge `badge`
    /// and reply token `reply`.
    fn deliver_plain(&mut self, to: (ThreadId, u64), msg: &Msg, badge: u64, reply: u64);
}

/// What a sender offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Msg {
    /// Payload length in bytes.
    pub len: usize,
    /// The payload when `len <= SHORT_MAX` (little-endian bytes).
    pub regs: [u64; MSG_REGS],
    /// The payload's user address when `len > SHORT_MAX`.
    pub buf: u64,
    /// Tokens (in the sender's table) of capabilities to pass.
    pub caps: [u64; MAX_CAPS],
    /// How many of `caps` are used.
    pub ncaps: usize,
}

/// Where a receiver takes messages longer than [`SHORT_MAX`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvBuf {
    /// User address.
    pub addr: u64,
    /// Capacity in bytes.
    pub cap: usize,
}

/// What a receiver (or a caller getting its reply) gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Payload length.
    pub len: usize,
    /// The payload when short.
    pub regs: [u64; MSG_REGS],
    /// Badge of the sender's token (0 for replies).
    pub badge: u64,
    /// Reply token for a call (0 otherwise).
    pub reply: u64,
    /// New tokens (in the receiver's table) of capabilities passed.
    pub caps: [u64; MAX_CAPS],
    /// How many of `caps` are used.
    pub ncaps: usize,
}

/// An IPC failure: the error and a detail word (the size needed for
/// `BufferTooSmall`, else 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcError {
    /// The error.
    pub error: Error,
    /// Detail word.
    pub detail: u64,
}

impl From<Error> for IpcError {
    fn from(error: Error) -> Self {
        IpcError { error, detail: 0 }
    }
}

impl From<CapError> for IpcError {
    fn from(e: CapError) -> Self {
        IpcError { error: e.into(), detail: 0 }
    }
}

/// The result a thread returns to user space with.
pub type IpcResult = Result<Received, IpcError>;

/// How a thread the engine completed returns to user space (see
/// [`Ipc::take_wakes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// With a message (or a reply), already handed over through
    /// [`Env::deliver_plain`] or [`Env::deliver`]: the usual wake of an
    /// IPC partner, which keeps nothing of the message here.
    Delivered,
    /// With success and nothing received: its send completed (the result
    /// `Ok(Received::default())`).
    Sent,
    /// With this error.
    Failed(IpcError),
}

impl Wake {
    /// A failed wait's wake.
    fn failed(e: impl Into<IpcError>) -> Wake {
        Wake::Failed(e.into())
    }
}

/// What became of the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Finished now with this result.
    Done(IpcResult),
    /// Parked; a wake will finish it.
    Blocked,
}

/// Blocking behaviour of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Block as long as needed.
    Never,
    /// Do not block: `WouldBlock` instead.
    Zero,
    /// Block until this absolute tick.
    Until(u64),
}

/// Kind of endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// Rendezvous: a send completes when a receiver takes the message.
    Sync,
    /// A bounded queue of this many messages.
    Async(usize),
}

/// Per-endpoint counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Messages delivered to receivers.
    pub delivered: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Calls delivered (subset of `delivered`).
    pub calls: u64,
    /// Times a sender had to block.
    pub send_blocks: u64,
    /// Times a receiver had to block.
    pub recv_blocks: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Queued {
    msg: Msg,
    badge: u64,
    /// Slot in the queue storage (long messages).
    slot: usize,
    /// Capabilities in flight, held in the holder task's table.
    held: [u64; MAX_CAPS],
}

/// An endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Sync or async.
    pub kind: EndpointKind,
    /// Largest message accepted.
    pub max_msg: usize,
    /// The task that created it (its queue storage is charged there).
    pub owner: TaskId,
    senders: Queue,
    receivers: Queue,
    queue: VecDeque<Queued>,
    free_slots: Vec<usize>,
    /// Counters.
    pub stats: EndpointStats,
}

impl EndpointStats {
    /// Counts a delivered message of `len` bytes (`call`: of a call).
    #[inline(always)]
    fn count(&mut self, len: usize, call: bool) {
        self.delivered += 1;
        self.bytes += len as u64;
        self.calls += u64::from(call);
    }
}

/// A thread's IPC wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Not in IPC.
    None,
    /// Blocked sending (or calling) on an endpoint.
    Send {
        /// Endpoint.
        ep: usize,
        /// The token used (checked again if capabilities are revoked).
        token: u64,
        /// The message.
        msg: Msg,
        /// Badge of the token.
        badge: u64,
        /// A call: after delivery, wait for the reply.
        call: Option<RecvBuf>,
    },
    /// Blocked receiving on an endpoint.
    Recv {
        /// Endpoint.
        ep: usize,
        /// The token used.
        token: u64,
        /// Where long messages go.
        rbuf: RecvBuf,
    },
    /// A caller waiting for its reply.
    Reply {
        /// The pending reply's number (see [`Replies`]).
        reply: usize,
        /// The task holding the right to reply.
        holder: TaskId,
        /// Where a long reply goes.
        rbuf: RecvBuf,
    },
}

/// A thread as the engine knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcThread {
    /// Its task (for capabilities).
    pub task: TaskId,
    /// Its address space (for copies).
    pub space: SpaceId,
    /// Scheduling priority (queues serve higher first).
    pub priority: u8,
    /// Current wait.
    pub wait: Wait,
    /// When the wait times out.
    pub deadline: Option<u64>,
    /// Where the kernel keeps its saved registers while it does not run
    /// (opaque to the engine, which hands it over with a fast path's
    /// partner and with what it delivers to the thread, see
    /// [`Env::deliver`]; 0 until the kernel sets it, see [`Ipc::set_frame`]).
    pub frame: u64,
    /// The last endpoint capability the fast paths checked for it.
    ep_cache: EpCache,
    /// Its place in the endpoint queue it waits on.
    links: Links,
}

impl Linked for IpcThread {
    #[inline(always)]
    fn links(&self) -> &Links {
        &self.links
    }
    #[inline(always)]
    fn links_mut(&mut self) -> &mut Links {
        &mut self.links
    }
}

/// A remembered capability check of an endpoint token, exact while the
/// capability space's epoch has not moved (see [`CapSpace::epoch`]). The
/// default (token 0, which never names a capability, and no rights) grants
/// nothing. It is a cache, not state: every result it gives equals a fresh
/// check's, so it takes no part in comparing or printing a thread (an
/// operation that fills it changes nothing else).
#[derive(Clone, Copy, Default)]
struct EpCache {
    token: u64,
    epoch: u64,
    ep: usize,
    badge: u64,
    rights: u64,
}

impl PartialEq for EpCache {
    fn eq(&self, _: &EpCache) -> bool {
        true
    }
}

impl Eq for EpCache {}

impl core::fmt::Debug for EpCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("EpCache")
    }
}

impl IpcThread {
    /// The remembered check of `token`, if the capability space did not
    /// change since it was made.
    #[inline(always)]
    fn cached_endpoint(&self, caps: &CapSpace, token: u64) -> Option<EpCache> {
        let c = self.ep_cache;
        (c.token == token && c.epoch == caps.epoch()).then_some(c)
    }

    /// Remembers that `token` names the endpoint capability `cap`.
    fn remember(&mut self, caps: &CapSpace, token: u64, cap: &Capability) -> EpCache {
        self.ep_cache =
            EpCache { token, epoch: caps.epoch(), ep: cap.object.id as usize, badge: cap.badge, rights: cap.rights };
        self.ep_cache
    }

    #[cold]
    #[inline(never)]
    fn check_endpoint(&mut self, caps: &CapSpace, token: u64) -> Option<EpCache> {
        let cap = caps.check(self.task, token, kind::ENDPOINT, 0).ok()?;
        Some(self.remember(caps, token, &cap))
    }

    /// The endpoint and badge `token` names, if this thread's task holds
    /// `right` on it (the fast paths' check).
    #[inline(always)]
    fn endpoint_right(&mut self, caps: &CapSpace, token: u64, right: u64) -> Option<(usize, u64)> {
        let c = match self.cached_endpoint(caps, token) {
            Some(c) => c,
            None => self.check_endpoint(caps, token)?,
        };
        (c.rights & right == right).then_some((c.ep, c.badge))
    }
}

/// Most reply rights one task may hold at once (calls delivered to it and
/// not yet answered). The next call it would receive fails with
/// `OutOfMemory`.
pub const MAX_REPLIES_PER_TASK: usize = 256;

/// Thread ids the engine takes: a reply number carries its caller's id in
/// its low 16 bits.
pub const MAX_THREADS: usize = 1 << 16;

/// The reply token of reply number `id`.
#[inline(always)]
fn reply_token(id: usize) -> u64 {
    abi::token::make(id as u64, 0, kind::REPLY)
}

/// The reply number a reply-kind token carries (any other token: `None`).
#[inline(always)]
fn reply_number(token: u64) -> Option<usize> {
    let id = (token & abi::token::INDEX_MASK) as usize;
    (token == reply_token(id)).then_some(id)
}

/// Reply rights. A right is a reply number: the caller's thread id (low 16
/// bits) and the call's number (the 32 bits above), counted across the
/// whole engine, so numbers are not reused for 2^32 calls and a right
/// that outlived its call can never reach a later one. The token is the
/// number in a token's index field, with kind `REPLY` ([`reply_token`]).
///
/// While its caller waits, a right lives in the caller's own record
/// ([`Wait::Reply`] names the number and the holder task): using it is one
/// look-up of the caller, which the reply needs anyway. A caller that stops
/// waiting (timeout, cancellation, death) leaves its right behind as an
/// orphan, which its holder can still use — it reports `PeerGone` — or
/// drop.
#[derive(Clone, Debug, Default)]
struct Replies {
    /// Calls numbered so far (the high part of the next reply number).
    calls: u32,
    /// Rights whose caller stopped waiting: number → holder.
    orphans: BTreeMap<usize, TaskId>,
    /// Reply rights held (live and orphaned), by task.
    held: Vec<u16>,
}

/// What a reply token names: its number, and the caller if it still waits
/// (`None`: an orphan).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Right {
    id: usize,
    caller: Option<Dest>,
}

/// The receiving side of a transfer: the thread, its task, where a long
/// message goes, and where the kernel keeps its saved registers (for
/// [`Env::deliver`]; 0 for a thread that gets its result returned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dest {
    thread: ThreadId,
    task: TaskId,
    rbuf: RecvBuf,
    frame: u64,
}

impl Replies {
    /// Reply rights `task` holds.
    fn held_by(&self, task: TaskId) -> usize {
        self.held.get(task).map_or(0, |&n| usize::from(n))
    }

    /// Whether `task` may take one more reply right.
    #[inline(always)]
    fn has_room(&self, task: TaskId) -> bool {
        self.held_by(task) < MAX_REPLIES_PER_TASK
    }

    /// The number the next right issued for a call by `caller` gets.
    #[inline(always)]
    fn upcoming(&self, caller: ThreadId) -> usize {
        ((self.calls as usize) << 16) | caller
    }

    /// A new right for a call by `caller`, held by `holder` (the caller
    /// checked [`Replies::has_room`]): its number.
    #[inline(always)]
    fn issue_for(&mut self, caller: ThreadId, holder: TaskId) -> usize {
        let id = self.upcoming(caller);
        self.issue(holder);
        id
    }

    /// Issues the right numbered [`Replies::upcoming`], held by `holder`
    /// (the caller checked [`Replies::has_room`]).
    #[inline(always)]
    fn issue(&mut self, holder: TaskId) {
        // (`Ipc::add_thread` sized `held` for every task with a thread.)
        self.held[holder] += 1;
        self.calls = self.calls.wrapping_add(1);
    }

    /// A right of `holder` is used up or dropped.
    #[inline(always)]
    fn retire(&mut self, holder: TaskId) {
        self.held[holder] -= 1;
    }
}

/// The engine.
#[derive(Clone, Debug)]
pub struct Ipc {
    threads: Vec<Option<IpcThread>>,
    endpoints: Vec<Option<Endpoint>>,
    /// Reply rights.
    replies: Replies,
    wakes: Vec<(ThreadId, Wake)>,
    /// No wait has a deadline before this tick (`u64::MAX`: none has one).
    deadline_floor: u64,
    /// The task whose capability table holds capabilities in flight in
    /// asynchronous queues.
    holder: TaskId,
}

fn slot_of<T>(v: &mut Vec<Option<T>>) -> usize {
    match v.iter().position(Option::is_none) {
        Some(i) => i,
        None => {
            v.push(None);
            v.len() - 1
        }
    }
}

fn err<T>(e: Error) -> Result<T, IpcError> {
    Err(IpcError::from(e))
}

impl Ipc {
    /// An engine whose in-flight capabilities live in `holder`'s table (the
    /// caller must have added that table to the capability space).
    pub fn new(holder: TaskId) -> Ipc {
        Ipc {
            threads: Vec::new(),
            endpoints: Vec::new(),
            replies: Replies::default(),
            wakes: Vec::new(),
            deadline_floor: u64::MAX,
            holder,
        }
    }

    /// Registers a thread.
    ///
    /// # Panics
    /// If `id` is not below [`MAX_THREADS`].
    pub fn add_thread(&mut self, id: ThreadId, task: TaskId, space: SpaceId, priority: u8) {
        assert!(id < MAX_THREADS, "thread id {id} out of the engine's range");
        if id >= self.threads.len() {
            self.threads.resize(id + 1, None);
        }
        self.threads[id] = Some(IpcThread {
            task,
            space,
            priority,
            wait: Wait::None,
            deadline: None,
            frame: 0,
            ep_cache: EpCache::default(),
            links: Links::default(),
        });
        if task >= self.replies.held.len() {
            self.replies.held.resize(task + 1, 0);
        }
    }

    /// Records where the kernel keeps thread `id`'s saved registers
    /// ([`IpcThread::frame`]).
    pub fn set_frame(&mut self, id: ThreadId, frame: u64) {
        if let Some(t) = self.threads.get_mut(id).and_then(Option::as_mut) {
            t.frame = frame;
        }
    }

    /// A thread's IPC view.
    pub fn thread(&self, id: ThreadId) -> Option<&IpcThread> {
        self.threads.get(id).and_then(Option::as_ref)
    }

    /// A thread's task and address space (without copying its wait).
    #[inline]
    fn party(&self, id: ThreadId) -> Party {
        let th = self.thread(id).expect("IPC thread registered");
        Party { task: th.task, space: th.space }
    }

    fn th(&mut self, id: ThreadId) -> &mut IpcThread {
        self.threads.get_mut(id).and_then(Option::as_mut).expect("IPC thread registered")
    }

    /// An endpoint.
    pub fn endpoint(&self, id: usize) -> Option<&Endpoint> {
        self.endpoints.get(id).and_then(Option::as_ref)
    }

    fn ep(&mut self, id: usize) -> &mut Endpoint {
        self.endpoints.get_mut(id).and_then(Option::as_mut).expect("endpoint exists")
    }

    /// Live endpoints.
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.iter().flatten().count()
    }

    /// Threads completed by the last operations, in order, with how each
    /// returns to user space.
    pub fn take_wakes(&mut self) -> Vec<(ThreadId, Wake)> {
        core::mem::take(&mut self.wakes)
    }

    /// Hands each thread completed by the last operations, with how it
    /// returns, to `f` in order (what [`Ipc::take_wakes`] returns), keeping
    /// the list's storage for the next ones.
    #[inline]
    pub fn drain_wakes(&mut self, mut f: impl FnMut(ThreadId, &Wake)) {
        for (t, r) in &self.wakes {
            f(*t, r);
        }
        self.wakes.clear();
    }

    /// The only thread completed by the last operations, with how it
    /// returns, if exactly one was (the usual case: an IPC partner); clear
    /// it with [`Ipc::clear_wakes`] once it is handled.
    #[inline(always)]
    pub fn single_wake(&self) -> Option<&(ThreadId, Wake)> {
        match self.wakes.as_slice() {
            [w] => Some(w),
            _ => None,
        }
    }

    /// Forgets the threads completed by the last operations (the kernel
    /// handled them, see [`Ipc::single_wake`]).
    #[inline(always)]
    pub fn clear_wakes(&mut self) {
        self.wakes.clear();
    }

    /// How many threads are waiting to be woken.
    pub fn wake_count(&self) -> usize {
        self.wakes.len()
    }

    /// Whether any thread is waiting to be woken.
    #[inline]
    pub fn has_wakes(&self) -> bool {
        !self.wakes.is_empty()
    }

    #[inline]
    fn wake(&mut self, t: ThreadId, w: Wake) {
        let th = self.th(t);
        th.wait = Wait::None;
        th.deadline = None;
        self.wakes.push((t, w));
    }

    // ----- endpoints -----

    /// Creates an endpoint for `task` and returns a token in its table.
    pub fn create_endpoint(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        task: TaskId,
        kind: EndpointKind,
        max_msg: usize,
    ) -> Result<u64, IpcError> {
        let max_msg = if max_msg == 0 { DEFAULT_MAX_MSG } else { max_msg };
        if max_msg > MAX_MSG_LIMIT {
            return err(Error::InvalidArgument);
        }
        let id = slot_of(&mut self.endpoints);
        let mut free_slots = Vec::new();
        if let EndpointKind::Async(n) = kind {
            let long = if max_msg > SHORT_MAX { max_msg } else { 0 };
            if n == 0 || n > MAX_QUEUE || n.saturating_mul(long) > MAX_QUEUE_BYTES {
                return err(Error::InvalidArgument);
            }
            if long > 0 && !env.queue_alloc(id, n, long) {
                return err(Error::OutOfMemory);
            }
            free_slots = (0..n).rev().collect();
        }
        let token = match caps.insert_root(task, ObjectRef { kind: kind::ENDPOINT, id: id as u64 }, ENDPOINT_RIGHTS) {
            Ok(t) => t,
            Err(e) => {
                if matches!(kind, EndpointKind::Async(_)) && max_msg > SHORT_MAX {
                    env.queue_free(id);
                }
                return Err(e.into());
            }
        };
        self.endpoints[id] = Some(Endpoint {
            kind,
            max_msg,
            owner: task,
            senders: Queue::default(),
            receivers: Queue::default(),
            queue: VecDeque::new(),
            free_slots,
            stats: EndpointStats::default(),
        });
        Ok(token)
    }

    /// Destroys an endpoint: waiters are woken with `NotFound`, queued
    /// messages and their capabilities dropped, storage returned. The
    /// caller removes the capabilities that name it.
    pub fn destroy_endpoint(&mut self, caps: &mut CapSpace, env: &mut impl Env, id: usize) {
        let Some(mut ep) = self.endpoints.get_mut(id).and_then(Option::take) else { return };
        while let Some(t) = ep.senders.pop_front(&mut self.threads) {
            self.wake(t, Wake::failed(Error::NotFound));
        }
        while let Some(t) = ep.receivers.pop_front(&mut self.threads) {
            self.wake(t, Wake::failed(Error::NotFound));
        }
        for q in &ep.queue {
            self.drop_held(caps, q);
        }
        if matches!(ep.kind, EndpointKind::Async(_)) && ep.max_msg > SHORT_MAX {
            env.queue_free(id);
        }
    }

    fn drop_held(&mut self, caps: &mut CapSpace, q: &Queued) {
        for &t in q.held.iter().take(q.msg.ncaps) {
            let _ = caps.delete(self.holder, t);
        }
    }

    // ----- queues by priority -----

    /// Queues `t` on endpoint `ep`'s senders (or receivers), behind every
    /// thread of the same or higher priority.
    fn enqueue(&mut self, ep: usize, t: ThreadId, senders: bool) {
        let prio = self.th(t).priority;
        let e = self.endpoints.get_mut(ep).and_then(Option::as_mut).expect("endpoint exists");
        let q = if senders { &mut e.senders } else { &mut e.receivers };
        // Behind every thread of the same or higher priority.
        q.insert_behind(&mut self.threads, t, |x| x.priority >= prio);
    }

    /// Takes the first waiting sender (or receiver) out of an endpoint's
    /// queue.
    #[inline(always)]
    fn dequeue(&mut self, ep: usize, senders: bool) -> Option<ThreadId> {
        let e = self.endpoints.get_mut(ep).and_then(Option::as_mut).expect("endpoint exists");
        let q = if senders { &mut e.senders } else { &mut e.receivers };
        q.pop_front(&mut self.threads)
    }

    /// Blocks `t` with `wait` in the senders' (or receivers') queue of
    /// endpoint `ep_id`, by priority, and counts the block: what
    /// [`Ipc::enqueue`] and [`Ipc::block`] do, with one look-up of each
    /// record.
    #[inline(always)]
    fn park(&mut self, ep_id: usize, t: ThreadId, senders: bool, wait: Wait, timeout: Timeout) -> Outcome {
        let e = self.endpoints.get_mut(ep_id).and_then(Option::as_mut).expect("endpoint exists");
        let th = self.threads.get_mut(t).and_then(Option::as_mut).expect("IPC thread registered");
        let q = if senders {
            e.stats.send_blocks += 1;
            &mut e.senders
        } else {
            e.stats.recv_blocks += 1;
            &mut e.receivers
        };
        th.wait = wait;
        th.deadline = match timeout {
            Timeout::Until(d) => Some(d),
            _ => None,
        };
        let prio = th.priority;
        if !q.push_alone(&mut th.links, t) {
            q.insert_behind(&mut self.threads, t, |x| x.priority >= prio);
        }
        if let Timeout::Until(d) = timeout {
            self.deadline_floor = self.deadline_floor.min(d);
        }
        Outcome::Blocked
    }

    #[inline]
    fn block(&mut self, t: ThreadId, wait: Wait, timeout: Timeout) -> Outcome {
        let th = self.th(t);
        th.wait = wait;
        th.deadline = match timeout {
            Timeout::Until(d) => Some(d),
            _ => None,
        };
        if let Timeout::Until(d) = timeout {
            self.deadline_floor = self.deadline_floor.min(d);
        }
        Outcome::Blocked
    }

    // ----- checks shared by all operations -----

    /// The endpoint and badge `token` names for thread `t`, which needs
    /// `right` on it (the check is remembered per thread, see [`EpCache`]).
    #[inline(always)]
    fn resolve_endpoint(
        &mut self,
        caps: &CapSpace,
        t: ThreadId,
        token: u64,
        right: u64,
    ) -> Result<(usize, u64), IpcError> {
        let th = self.th(t);
        let c = match th.cached_endpoint(caps, token) {
            Some(c) => c,
            None => {
                let task = th.task;
                match caps.check(task, token, kind::ENDPOINT, right) {
                    Ok(cap) => th.remember(caps, token, &cap),
                    // A live reply token is a token for the wrong kind of object.
                    Err(_) if self.right(task, token).is_some() => return err(Error::PermissionDenied),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if c.rights & right != right {
            return err(Error::PermissionDenied);
        }
        if self.endpoint(c.ep).is_none() {
            return err(Error::NotFound);
        }
        Ok((c.ep, c.badge))
    }

    /// Checks a message against an endpoint and the sender's rights:
    /// length, buffer, and GRANT on the endpoint and on each capability.
    fn check_msg(
        &self,
        caps: &CapSpace,
        env: &impl Env,
        t: &Party,
        ep: &Endpoint,
        ep_token: u64,
        msg: &Msg,
    ) -> Result<(), IpcError> {
        if msg.len > ep.max_msg || msg.ncaps > MAX_CAPS {
            return err(Error::InvalidArgument);
        }
        if msg.len > SHORT_MAX && !env.readable(t.space, msg.buf, msg.len) {
            return err(Error::InvalidArgument);
        }
        if msg.ncaps > 0 {
            caps.check(t.task, ep_token, kind::ENDPOINT, rights::GRANT)?;
            for &c in msg.caps.iter().take(msg.ncaps) {
                self.grantable(caps, t.task, c)?;
            }
        }
        Ok(())
    }

    // ----- transfer -----

    /// Moves a message from `sender` (thread or queue) to a receiver.
    /// Checks everything first; on error nothing has changed.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn transfer(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        src: Source,
        msg: &Msg,
        badge: u64,
        to: Dest,
        call: bool,
    ) -> Result<Received, (Side, IpcError)> {
        if is_plain(msg) {
            self.plain_checks(msg, to, call)?;
            return Ok(plain_received(msg, badge, 0));
        }
        self.transfer_long(caps, env, src, msg, badge, to, call)
    }

    /// [`Ipc::transfer`] to a thread that is then woken
    /// ([`Wake::Delivered`]): what it received, with `reply` as its reply
    /// token, goes to `env` right away — a plain message (see [`is_plain`])
    /// straight from `msg` ([`Env::deliver_plain`]). Nothing of the engine
    /// changes; the caller commits (nothing may fail after this).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn deliver(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        src: Source,
        msg: &Msg,
        badge: u64,
        to: Dest,
        call: bool,
        reply: u64,
    ) -> Result<(), (Side, IpcError)> {
        if is_plain(msg) {
            self.plain_checks(msg, to, call)?;
            env.deliver_plain((to.thread, to.frame), msg, badge, reply);
            return Ok(());
        }
        let mut got = self.transfer_long(caps, env, src, msg, badge, to, call)?;
        got.reply = reply;
        env.deliver((to.thread, to.frame), &got);
        Ok(())
    }

    /// The checks of a plain message's transfer (the same checks in the
    /// same order as for any message, with nothing to copy or grant).
    #[inline(always)]
    fn plain_checks(&self, msg: &Msg, to: Dest, call: bool) -> Result<(), (Side, IpcError)> {
        if to.rbuf.cap < msg.len {
            return Err((Side::Destination, IpcError { error: Error::BufferTooSmall, detail: msg.len as u64 }));
        }
        if call && !self.replies.has_room(to.task) {
            return Err((Side::Source, IpcError::from(Error::OutOfMemory)));
        }
        Ok(())
    }

    /// [`Ipc::transfer`] of a long message or one with capabilities.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn transfer_long(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        src: Source,
        msg: &Msg,
        badge: u64,
        to: Dest,
        call: bool,
    ) -> Result<Received, (Side, IpcError)> {
        let (to_task, rbuf) = (to.task, to.rbuf);
        let to_space = self.thread(to.thread).expect("receiver registered").space;
        if rbuf.cap < msg.len {
            return Err((Side::Destination, IpcError { error: Error::BufferTooSmall, detail: msg.len as u64 }));
        }
        if msg.len > SHORT_MAX && !env.writable(to_space, rbuf.addr, msg.len) {
            return Err((Side::Destination, IpcError::from(Error::InvalidArgument)));
        }
        if msg.ncaps > 0 {
            let used = caps.slots_in_use_of(to_task).map_err(|e| (Side::Destination, e.into()))?;
            if caps.slots_per_task() - used < msg.ncaps {
                return Err((Side::Destination, IpcError::from(Error::OutOfMemory)));
            }
        }
        // A call the receiver's task could not hold one more reply right
        // for fails the caller.
        if call && !self.replies.has_room(to_task) {
            return Err((Side::Source, IpcError::from(Error::OutOfMemory)));
        }
        // Data (the one copy).
        if msg.len > SHORT_MAX {
            let r = match src {
                Source::Thread(space, _) => env.copy((space, msg.buf), (to_space, rbuf.addr), msg.len),
                Source::Queue(ep, slot) => env.queue_load(ep, slot, (to_space, rbuf.addr), msg.len),
            };
            r.map_err(|side| (side, IpcError::from(Error::InvalidArgument)))?;
        }
        // Capabilities: granted from the sender's table (or the holder's).
        let mut out = Received { len: msg.len, badge, ..Received::default() };
        if msg.len <= SHORT_MAX {
            out.regs = msg.regs;
        }
        let (from_task, queued) = match src {
            Source::Thread(_, task) => (task, false),
            Source::Queue(..) => (self.holder, true),
        };
        for &tok in msg.caps.iter().take(msg.ncaps) {
            if let Ok(rights) = caps.lookup(from_task, tok).map(|c| c.rights) {
                if let Ok(new) = caps.grant_to(from_task, tok, to_task, rights) {
                    out.caps[out.ncaps] = new;
                    out.ncaps += 1;
                }
            }
            if queued {
                let _ = caps.delete(from_task, tok);
            }
        }
        Ok(out)
    }
}

/// A short message without capabilities (the usual one).
#[inline(always)]
fn is_plain(msg: &Msg) -> bool {
    msg.ncaps == 0 && msg.len <= SHORT_MAX
}

/// What the receiver of a plain message gets.
#[inline(always)]
fn plain_received(msg: &Msg, badge: u64, reply: u64) -> Received {
    Received { len: msg.len, regs: msg.regs, badge, reply, ..Received::default() }
}

/// The side of an operation that is a thread: its task and space.
#[derive(Clone, Copy, Debug)]
struct Party {
    task: TaskId,
    space: SpaceId,
}

/// Where a message's bytes come from.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// A thread's buffer in this space; capabilities from this task.
    Thread(SpaceId, TaskId),
    /// An endpoint's queue slot.
    Queue(usize, usize),
}

impl Ipc {
    // ----- operations -----

    /// Sends `msg` on the endpoint named by `token` (needs WRITE); with
    /// `call`, then waits for the reply (into `call`'s buffer).
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        t: ThreadId,
        token: u64,
        msg: &Msg,
        call: Option<RecvBuf>,
        timeout: Timeout,
    ) -> Outcome {
        match self.try_send(caps, env, t, token, msg, call, timeout) {
            Ok(o) => o,
            Err(e) => Outcome::Done(Err(e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn try_send(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        t: ThreadId,
        token: u64,
        msg: &Msg,
        call: Option<RecvBuf>,
        timeout: Timeout,
    ) -> Result<Outcome, IpcError> {
        let me = self.party(t);
        let (ep_id, badge) = self.resolve_endpoint(caps, t, token, rights::WRITE)?;
        let ep = self.endpoint(ep_id).expect("resolved");
        self.check_msg(caps, env, &me, ep, token, msg)?;
        let is_async = matches!(ep.kind, EndpointKind::Async(_));
        if call.is_some() && is_async {
            return err(Error::InvalidArgument);
        }
        if call.is_none() && msg.len == 0 {
            return err(Error::InvalidArgument);
        }
        // A receiver is waiting: deliver now, one copy.
        while let Some(r) = self.ep(ep_id).receivers.front() {
            let to = match self.thread(r) {
                Some(&IpcThread { wait: Wait::Recv { rbuf, .. }, task, frame, .. }) => {
                    Dest { thread: r, task, rbuf, frame }
                }
                _ => unreachable!("receiver queue holds receiving threads"),
            };
            let server = to.task;
            // (The number the call's reply right gets if it is delivered.)
            let reply = self.replies.upcoming(t);
            let token = if call.is_some() { reply_token(reply) } else { 0 };
            match self.deliver(caps, env, Source::Thread(me.space, me.task), msg, badge, to, call.is_some(), token) {
                Ok(()) => {
                    self.take_first(ep_id, false, msg.len, call.is_some());
                    self.wake(r, Wake::Delivered);
                    if let Some(rbuf) = call {
                        self.replies.issue(server);
                        return Ok(self.block(t, Wait::Reply { reply, holder: server, rbuf }, Timeout::Never));
                    }
                    return Ok(Outcome::Done(Ok(Received::default())));
                }
                // The receiver's buffer cannot take it: tell the receiver,
                // keep the message with the sender, try the next receiver.
                Err((Side::Destination, e)) => {
                    self.dequeue(ep_id, false);
                    self.wake(r, Wake::Failed(e));
                }
                Err((Side::Source, e)) => return Err(e),
            }
        }
        // Asynchronous: queue it if there is room.
        if let EndpointKind::Async(n) = self.ep(ep_id).kind {
            if self.ep(ep_id).queue.len() < n {
                self.enqueue_message(caps, env, ep_id, &me, msg, badge)?;
                return Ok(Outcome::Done(Ok(Received::default())));
            }
        }
        if timeout == Timeout::Zero {
            return err(Error::WouldBlock);
        }
        Ok(self.park(ep_id, t, true, Wait::Send { ep: ep_id, token, msg: *msg, badge, call }, timeout))
    }

    #[inline]
    fn count(&mut self, ep: usize, len: usize, call: bool) {
        self.ep(ep).stats.count(len, call);
    }

    /// Takes the first waiting sender (or receiver) out of an endpoint's
    /// queue after it got (or gave) a message of `len` bytes, and counts
    /// the delivery.
    #[inline(always)]
    fn take_first(&mut self, ep: usize, senders: bool, len: usize, call: bool) {
        let e = self.endpoints.get_mut(ep).and_then(Option::as_mut).expect("endpoint exists");
        let q = if senders { &mut e.senders } else { &mut e.receivers };
        q.pop_front(&mut self.threads);
        e.stats.count(len, call);
    }

    fn enqueue_message(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        ep_id: usize,
        from: &Party,
        msg: &Msg,
        badge: u64,
    ) -> Result<(), IpcError> {
        let slot = if msg.len > SHORT_MAX { self.ep(ep_id).free_slots.last().copied().unwrap_or(0) } else { 0 };
        // Capabilities move into the holder's table first, so revoking the
        // sender's originals also reaches those in flight.
        let free = caps.slots_per_task() - caps.slots_in_use_of(self.holder)?;
        if free < msg.ncaps {
            return err(Error::OutOfMemory);
        }
        // A blocked sender's capabilities may have gone since it was
        // checked: check them all before anything commits.
        let mut rights_of = [0; MAX_CAPS];
        for (r, &c) in rights_of.iter_mut().zip(msg.caps.iter().take(msg.ncaps)) {
            *r = self.grantable(caps, from.task, c)?.rights;
        }
        if msg.len > SHORT_MAX {
            env.queue_store(ep_id, slot, (from.space, msg.buf), msg.len)
                .map_err(|_| IpcError::from(Error::InvalidArgument))?;
            self.ep(ep_id).free_slots.pop();
        }
        let mut held = [0; MAX_CAPS];
        for (i, &c) in msg.caps.iter().take(msg.ncaps).enumerate() {
            held[i] = caps.grant_to(from.task, c, self.holder, rights_of[i])?;
        }
        let mut m = *msg;
        m.caps = held;
        self.ep(ep_id).queue.push_back(Queued { msg: m, badge, slot, held });
        Ok(())
    }

    /// Receives on the endpoint named by `token` (needs READ).
    pub fn receive(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        t: ThreadId,
        token: u64,
        rbuf: RecvBuf,
        timeout: Timeout,
    ) -> Outcome {
        match self.try_receive(caps, env, t, token, rbuf, timeout) {
            Ok(o) => o,
            Err(e) => Outcome::Done(Err(e)),
        }
    }

    fn try_receive(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        t: ThreadId,
        token: u64,
        rbuf: RecvBuf,
        timeout: Timeout,
    ) -> Result<Outcome, IpcError> {
        let me = self.party(t);
        let (ep_id, _) = self.resolve_endpoint(caps, t, token, rights::READ)?;
        // A queued message first (asynchronous endpoints).
        if let Some(q) = self.ep(ep_id).queue.front().copied() {
            let got = self
                .transfer(
                    caps,
                    env,
                    Source::Queue(ep_id, q.slot),
                    &q.msg,
                    q.badge,
                    Dest { thread: t, task: me.task, rbuf, frame: 0 },
                    false,
                )
                .map_err(|(_, e)| e)?;
            self.ep(ep_id).queue.pop_front();
            if q.msg.len > SHORT_MAX {
                self.ep(ep_id).free_slots.push(q.slot);
            }
            self.count(ep_id, got.len, false);
            // A blocked sender's message takes the freed place (the next
            // one if that fails).
            while let Some(s) = self.dequeue(ep_id, true) {
                let sender = *self.thread(s).expect("queued thread");
                if let Wait::Send { msg, badge, .. } = sender.wait {
                    match self.enqueue_message(
                        caps,
                        env,
                        ep_id,
                        &Party { task: sender.task, space: sender.space },
                        &msg,
                        badge,
                    ) {
                        Ok(()) => {
                            self.wake(s, Wake::Sent);
                            break;
                        }
                        Err(e) => self.wake(s, Wake::Failed(e)),
                    }
                }
            }
            return Ok(Outcome::Done(Ok(got)));
        }
        // A blocked sender (synchronous endpoints).
        while let Some(s) = self.ep(ep_id).senders.front() {
            let sender = *self.thread(s).expect("queued thread");
            let Wait::Send { msg, badge, call, .. } = sender.wait else {
                unreachable!("sender queue holds sending threads")
            };
            match self.transfer(
                caps,
                env,
                Source::Thread(sender.space, sender.task),
                &msg,
                badge,
                Dest { thread: t, task: me.task, rbuf, frame: 0 },
                call.is_some(),
            ) {
                Ok(mut got) => {
                    self.take_first(ep_id, true, got.len, call.is_some());
                    match call {
                        Some(crbuf) => {
                            let reply = self.replies.issue_for(s, me.task);
                            got.reply = reply_token(reply);
                            let th = self.th(s);
                            th.wait = Wait::Reply { reply, holder: me.task, rbuf: crbuf };
                            th.deadline = None;
                        }
                        None => self.wake(s, Wake::Sent),
                    }
                    return Ok(Outcome::Done(Ok(got)));
                }
                Err((Side::Destination, e)) => return Err(e),
                // The sender's buffer went bad while it waited: fail it.
                Err((Side::Source, e)) => {
                    self.dequeue(ep_id, true);
                    self.wake(s, Wake::Failed(e));
                }
            }
        }
        if timeout == Timeout::Zero {
            return err(Error::WouldBlock);
        }
        Ok(self.park(ep_id, t, false, Wait::Recv { ep: ep_id, token, rbuf }, timeout))
    }

    /// The reply right `token` names if it is a reply token `task` holds.
    #[inline]
    fn right(&self, task: TaskId, token: u64) -> Option<Right> {
        let id = reply_number(token)?;
        let caller = id & (MAX_THREADS - 1);
        if let Some(&IpcThread { wait: Wait::Reply { reply, holder, rbuf }, task: to, frame, .. }) = self.thread(caller)
        {
            if reply == id && holder == task {
                return Some(Right { id, caller: Some(Dest { thread: caller, task: to, rbuf, frame }) });
            }
        }
        self.orphan(task, id)
    }

    /// The orphaned right `id` if `task` holds it.
    #[cold]
    #[inline(never)]
    fn orphan(&self, task: TaskId, id: usize) -> Option<Right> {
        (self.replies.orphans.get(&id) == Some(&task)).then_some(Right { id, caller: None })
    }

    /// Uses up or drops the right `r` of `holder`: an orphan is forgotten,
    /// a waiting caller is left to the caller of this (who wakes it).
    #[inline(always)]
    fn retire(&mut self, holder: TaskId, r: Right) {
        if r.caller.is_none() {
            self.forget_orphan(r.id);
        }
        self.replies.retire(holder);
    }

    #[cold]
    #[inline(never)]
    fn forget_orphan(&mut self, id: usize) {
        self.replies.orphans.remove(&id);
    }

    /// Checks a token passed as a capability (in a message): it must name a
    /// capability with GRANT. A live reply token cannot be passed
    /// (`PermissionDenied`); any other reply-kind token is `NotFound`.
    fn grantable(&self, caps: &CapSpace, task: TaskId, token: u64) -> Result<Capability, IpcError> {
        if abi::token::kind(token) == kind::REPLY {
            self.reply_token_info(task, token)?;
            return err(Error::PermissionDenied);
        }
        let cap = *caps.lookup(task, token)?;
        if cap.rights & rights::GRANT == 0 {
            return err(Error::PermissionDenied);
        }
        Ok(cap)
    }

    /// Replies through the reply token (works once; a reply whose caller
    /// is gone fails with `PeerGone` and uses the token up as well).
    pub fn reply(&mut self, caps: &mut CapSpace, env: &mut impl Env, t: ThreadId, token: u64, msg: &Msg) -> Outcome {
        Outcome::Done(self.try_reply(caps, env, t, token, msg).map(|()| Received::default()))
    }

    fn try_reply(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        t: ThreadId,
        token: u64,
        msg: &Msg,
    ) -> Result<(), IpcError> {
        let me = self.party(t);
        let Some(right) = self.right(me.task, token) else { return err(Error::NotFound) };
        if msg.ncaps > MAX_CAPS || msg.len > MAX_MSG_LIMIT {
            return err(Error::InvalidArgument);
        }
        if msg.len > SHORT_MAX && !env.readable(me.space, msg.buf, msg.len) {
            return err(Error::InvalidArgument);
        }
        for &c in msg.caps.iter().take(msg.ncaps) {
            self.grantable(caps, me.task, c)?;
        }
        let Some(to) = right.caller else {
            // The caller is gone: the right is used up all the same.
            self.retire(me.task, right);
            return err(Error::PeerGone);
        };
        self.deliver(caps, env, Source::Thread(me.space, me.task), msg, 0, to, false, 0).map_err(|(_, e)| e)?;
        self.retire(me.task, right);
        self.wake(to.thread, Wake::Delivered);
        Ok(())
    }

    /// Replies, then receives: a server loop in one operation. A failed
    /// reply returns its error without receiving.
    #[allow(clippy::too_many_arguments)]
    pub fn reply_receive(
        &mut self,
        caps: &mut CapSpace,
        env: &mut impl Env,
        t: ThreadId,
        reply_token: u64,
        msg: &Msg,
        ep_token: u64,
        rbuf: RecvBuf,
        timeout: Timeout,
    ) -> Outcome {
        if reply_token != 0 {
            if let Err(e) = self.try_reply(caps, env, t, reply_token, msg) {
                return Outcome::Done(Err(e));
            }
        }
        self.receive(caps, env, t, ep_token, rbuf, timeout)
    }

    // ----- ends of waits -----

    /// Ends a thread's wait with an error (timeout, cancellation).
    pub fn cancel(&mut self, t: ThreadId, error: Error) {
        let Some(th) = self.thread(t).copied() else { return };
        match th.wait {
            Wait::None => return,
            Wait::Send { ep, .. } | Wait::Recv { ep, .. } => {
                if let Some(e) = self.endpoints.get_mut(ep).and_then(Option::as_mut) {
                    let q = if matches!(th.wait, Wait::Send { .. }) { &mut e.senders } else { &mut e.receivers };
                    q.remove(&mut self.threads, t);
                }
            }
            Wait::Reply { reply, holder, .. } => {
                // The reply right stays with the server but leads nowhere.
                // (An orphan of the same number, 2^32 calls older, is
                // dropped: its number now names this one.)
                if let Some(old) = self.replies.orphans.insert(reply, holder) {
                    self.replies.retire(old);
                }
            }
        }
        self.wake(t, Wake::failed(error));
    }

    /// Times out every wait whose deadline is at or before `now`.
    #[inline]
    pub fn expire(&mut self, now: u64) {
        if self.deadline_floor <= now {
            self.expire_due(now);
        }
    }

    fn expire_due(&mut self, now: u64) {
        let due: Vec<ThreadId> = self
            .threads
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.and_then(|t| t.deadline).filter(|&d| d <= now).map(|_| i))
            .collect();
        for t in due {
            self.cancel(t, Error::Timeout);
        }
        self.deadline_floor = self.next_deadline().unwrap_or(u64::MAX);
    }

    /// The earliest deadline of any wait.
    pub fn next_deadline(&self) -> Option<u64> {
        self.threads.iter().flatten().filter_map(|t| t.deadline).min()
    }

    /// Forgets a thread that is ending: it leaves every queue, and a reply it
    /// waits for leads nowhere. (Reply rights belong to its task: see
    /// [`Ipc::drop_replies_of`].)
    pub fn remove_thread(&mut self, t: ThreadId) {
        if let Some(th) = self.thread(t).copied() {
            if th.wait != Wait::None {
                self.cancel(t, Error::PeerGone);
                // Nobody is left to take the wake.
                self.wakes.retain(|&(w, _)| w != t);
            }
        }
        if let Some(slot) = self.threads.get_mut(t) {
            *slot = None;
        }
    }

    /// The right `r` of `holder` was deleted (or its holder died): its
    /// caller, if still waiting, ends with `PeerGone`.
    fn reply_dropped(&mut self, holder: TaskId, r: Right) {
        self.retire(holder, r);
        if let Some(to) = r.caller {
            self.wake(to.thread, Wake::failed(Error::PeerGone));
        }
    }

    /// Checks that `token` is a live reply token held by `task` (what
    /// `CapInspect` reports as kind `REPLY` with `WRITE` only); otherwise
    /// `NotFound`.
    pub fn reply_token_info(&self, task: TaskId, token: u64) -> Result<(), IpcError> {
        self.right(task, token).map(|_| ()).ok_or(IpcError::from(Error::NotFound))
    }

    /// Drops the reply right `token` of `task` (`CapDelete` on a reply
    /// token): its caller, if still waiting, ends with `PeerGone`.
    pub fn drop_reply(&mut self, task: TaskId, token: u64) -> Result<(), IpcError> {
        let r = self.right(task, token).ok_or(IpcError::from(Error::NotFound))?;
        self.reply_dropped(task, r);
        Ok(())
    }

    /// Drops every reply right `task` holds (the task is ending): their
    /// callers end with `PeerGone`.
    pub fn drop_replies_of(&mut self, task: TaskId) {
        if self.replies.held_by(task) == 0 {
            return;
        }
        let callers: Vec<ThreadId> = self
            .threads
            .iter()
            .enumerate()
            .filter(|(_, t)| matches!(t, Some(IpcThread { wait: Wait::Reply { holder, .. }, .. }) if *holder == task))
            .map(|(i, _)| i)
            .collect();
        for caller in callers {
            self.wake(caller, Wake::failed(Error::PeerGone));
        }
        self.replies.orphans.retain(|_, holder| *holder != task);
        self.replies.held[task] = 0;
    }

    /// Reply rights `task` holds now.
    pub fn replies_held(&self, task: TaskId) -> usize {
        self.replies.held_by(task)
    }

    /// After capabilities were removed: threads blocked through a token that
    /// no longer resolves end with `NotFound`.
    pub fn recheck_tokens(&mut self, caps: &CapSpace) {
        let stale: Vec<ThreadId> = self
            .threads
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let t = (*t)?;
                let (ep, token) = match t.wait {
                    Wait::Send { ep, token, .. } | Wait::Recv { ep, token, .. } => (ep, token),
                    _ => return None,
                };
                let ok = caps
                    .lookup(t.task, token)
                    .is_ok_and(|c| c.object == ObjectRef { kind: kind::ENDPOINT, id: ep as u64 });
                (!ok).then_some(i)
            })
            .collect();
        for t in stale {
            self.cancel(t, Error::NotFound);
        }
    }

    /// Every reply right: number, holder, and the caller if it still
    /// waits.
    #[cfg(test)]
    fn rights(&self) -> Vec<(usize, TaskId, Option<ThreadId>)> {
        let live = self.threads.iter().enumerate().filter_map(|(i, t)| match t.as_ref()?.wait {
            Wait::Reply { reply, holder, .. } => Some((reply, holder, Some(i))),
            _ => None,
        });
        live.chain(self.replies.orphans.iter().map(|(&id, &holder)| (id, holder, None))).collect()
    }

    /// Per-endpoint counters.
    pub fn stats(&self, ep: usize) -> Option<EndpointStats> {
        self.endpoint(ep).map(|e| e.stats)
    }
}

/// The length of the message an IPC syscall's `rax` describes if it is
/// short and carries no capabilities — what the fast paths carry — or
/// `None` for anything else. (One rotation puts the capability count above
/// the length, so one compare checks both.)
#[inline(always)]
pub fn short_plain(rax: u64) -> Option<usize> {
    let v = plain_len(rax);
    (v <= SHORT_MAX as u64).then_some(v as usize)
}

/// The message length an IPC syscall's `rax` describes if it carries no
/// capabilities; with capabilities, a value above every length (the count
/// lands in the top bits). [`short_plain`] is this compared with
/// [`SHORT_MAX`]; the kernel's lean path compares it with a limit that is 0
/// while the fast paths are off.
#[inline(always)]
pub fn plain_len(rax: u64) -> u64 {
    use abi::ipc::{LEN_MASK, NCAPS_SHIFT, SEND_LEN_SHIFT};
    const CAPS_AT: u32 = 64 - (SEND_LEN_SHIFT - NCAPS_SHIFT);
    rax.rotate_right(SEND_LEN_SHIFT) & (LEN_MASK | (7 << CAPS_AT))
}

/// The thread a fast path hands the CPU to, and what it receives besides
/// the message registers (which the kernel passes through untouched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastPartner {
    /// The thread.
    pub thread: ThreadId,
    /// Its task.
    pub task: TaskId,
    /// Its address space.
    pub space: SpaceId,
    /// Where the kernel keeps its saved registers ([`IpcThread::frame`]).
    pub frame: u64,
    /// Badge of the caller's token (0 for a reply).
    pub badge: u64,
    /// Reply token (0 for a reply).
    pub reply: u64,
}

/// The fast paths: a call or reply-and-receive of a short message with no
/// capabilities, whose partner is already waiting and may run now. Each runs
/// its checks in order, gives up (`None`) at the first that fails — the
/// caller then takes the general path — and after the last check commits
/// with no way back. The end state equals the general path's; the partner's
/// result is returned directly instead of through [`Ipc::take_wakes`], so
/// the kernel can switch straight to it. The message itself never passes
/// through the engine: its length is checked, its registers travel in the
/// CPU.
///
/// `ready` is the highest priority of a thread ready to run: a partner of
/// lower priority must not run first, so the fast path declines. `rbuf`
/// gives the caller's receive buffer, asked for only when the path commits
/// (the kernel reads it from the saved frame then, instead of keeping it in
/// registers across the checks).
impl Ipc {
    /// Fast call by the thread `t` through `token`: the server that now runs.
    #[inline(always)]
    pub fn fast_call(
        &mut self,
        caps: &CapSpace,
        t: ThreadId,
        token: u64,
        len: usize,
        rbuf: impl FnOnce() -> RecvBuf,
        ready: Option<u8>,
    ) -> Option<FastPartner> {
        if len > SHORT_MAX {
            return None;
        }
        let (ep_id, badge) = self.threads.get_mut(t)?.as_mut()?.endpoint_right(caps, token, rights::WRITE)?;
        let ep = self.endpoints.get_mut(ep_id)?.as_mut()?;
        if ep.kind != EndpointKind::Sync || len > ep.max_msg {
            return None;
        }
        let server = ep.receivers.front()?;
        let s = self.threads.get_mut(server)?.as_mut()?;
        if !matches!(s.wait, Wait::Recv { rbuf, .. } if rbuf.cap >= len) || ready.is_some_and(|p| p > s.priority) {
            return None;
        }
        let (server_task, space, frame) = (s.task, s.space, s.frame);
        if !self.replies.has_room(server_task) {
            return None;
        }
        // Commit.
        let reply = self.replies.issue_for(t, server_task);
        s.wait = Wait::None;
        s.deadline = None;
        if let Some(next) = ep.receivers.unlink_front(&mut s.links) {
            Queue::clear_prev(&mut self.threads, next);
        }
        ep.stats.count(len, true);
        let c = self.th(t);
        c.wait = Wait::Reply { reply, holder: server_task, rbuf: rbuf() };
        c.deadline = None;
        Some(FastPartner { thread: server, task: server_task, space, frame, badge, reply: reply_token(reply) })
    }

    /// Fast reply-and-receive by the server thread `t`: the caller that now
    /// runs with its reply.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn fast_reply_receive(
        &mut self,
        caps: &CapSpace,
        t: ThreadId,
        reply_token: u64,
        len: usize,
        ep_token: u64,
        rbuf: impl FnOnce() -> RecvBuf,
        ready: Option<u8>,
    ) -> Option<FastPartner> {
        if len > SHORT_MAX {
            return None;
        }
        // The right lives in the caller's record (see [`Replies`]).
        let reply = reply_number(reply_token)?;
        let caller = reply & (MAX_THREADS - 1);
        let [Some(s), Some(c)] = self.threads.get_disjoint_mut([t, caller]).ok()? else { return None };
        let task = s.task;
        if !matches!(c.wait, Wait::Reply { reply: r, holder, rbuf } if r == reply && holder == task && rbuf.cap >= len)
            || ready.is_some_and(|p| p > c.priority)
        {
            return None;
        }
        let partner = FastPartner { thread: caller, task: c.task, space: c.space, frame: c.frame, badge: 0, reply: 0 };
        let (ep_id, _) = s.endpoint_right(caps, ep_token, rights::READ)?;
        let ep = self.endpoints.get_mut(ep_id)?.as_mut()?;
        if !ep.senders.is_empty() || !ep.queue.is_empty() {
            return None;
        }
        // Commit.
        ep.stats.recv_blocks += 1;
        c.wait = Wait::None;
        c.deadline = None;
        s.wait = Wait::Recv { ep: ep_id, token: ep_token, rbuf: rbuf() };
        s.deadline = None;
        self.replies.retire(task);
        // An empty receiver queue takes the server as is; otherwise by
        // priority.
        if !ep.receivers.push_alone(&mut s.links, t) {
            self.enqueue(ep_id, t, false);
        }
        Some(partner)
    }
}

#[cfg(test)]
#[path = "ipc_tests.rs"]
mod tests;
