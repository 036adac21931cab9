//! The VeridianOS-style IPC front door: decodes the IPC register convention
//! (`abi::ipc`), hands the operation to the engine (`kernel_core::ipc`), and
//! writes results back. Also the engine's view of user memory ([`KernelEnv`]):
//! copies go page by page through the direct map, after checking each page
//! in the owning task's page tables.

use crate::kernel::{KResult, Kernel};
use crate::memory::Frames;
use abi::{ipc as abi_ipc, kind, rights, Error, Sys};
use alloc::vec::Vec;
use arch_x86_64::paging::{self, FrameSource, Pte, UserPtes};
use arch_x86_64::trap::{self, FrameOp, TrapFrame};
use core::cell::Cell;
use kernel_core::ipc::{
    short_plain, EndpointKind, Env, FastPartner, IpcError, IpcResult, Msg, Outcome, Received, RecvBuf, Side, SpaceId,
    ThreadId, Timeout, Wake, MSG_REGS, SHORT_MAX,
};

const PAGE: u64 = 4096;

/// Storage of one asynchronous queue: frames forming `slots × slot_bytes`.
pub struct QueueStore {
    frames: Vec<u64>,
    slot_bytes: usize,
}

/// User memory and queue storage for the engine.
pub struct KernelEnv<'a> {
    /// Frames, for queue storage and copy-on-write.
    pub frames: &'a mut Frames,
    /// Queue storage by endpoint.
    pub queues: &'a mut Vec<Option<QueueStore>>,
    /// Messages at least this long whose source and destination share their
    /// offset within a page have their whole middle pages remapped instead
    /// of copied (`usize::MAX`: never).
    pub remap_min: usize,
}

/// Default remap threshold (see `docs/ipc.md`).
pub const REMAP_MIN: usize = 16 * 1024;

fn page_ok(ptes: &mut UserPtes, va: u64, write: bool) -> Option<u64> {
    let (phys, bits) = ptes.translate(va)?;
    // A copy-on-write page counts as writable: it is made private before
    // anything is written to it.
    if write && bits & (paging::flags::WRITE | paging::flags::COW) == 0 {
        return None;
    }
    Some(phys)
}

/// The bits every entry of `run` has (branch-free). For a write check a
/// copy-on-write page counts as writable (see `page_ok`): COW (bit 9) is
/// folded onto WRITE (bit 1).
#[inline(always)]
fn run_bits<const FOR_WRITE: bool>(run: &[Pte]) -> u64 {
    use paging::flags::{COW, WRITE};
    const _: () = assert!(COW == WRITE << 8);
    if FOR_WRITE {
        run.iter().fold(!0, |a, e| a & (e.get() | (e.get() & COW) >> 8))
    } else {
        run.iter().fold(!0, |a, e| a & e.get())
    }
}

/// The bits [`run_bits`] must find: present and user, and for a write
/// check also WRITE.
const fn must_bits(for_write: bool) -> u64 {
    use paging::flags::{PRESENT, USER, WRITE};
    if for_write {
        PRESENT | USER | WRITE
    } else {
        PRESENT | USER
    }
}

/// Whether `[addr, addr + len)` is mapped for user access (and, for
/// `FOR_WRITE`, writable) in the space `ptes` walks.
#[inline]
fn range_ok<const FOR_WRITE: bool>(ptes: &mut UserPtes, addr: u64, len: usize) -> bool {
    let Some(end) = addr.checked_add(len as u64) else { return false };
    if end > abi::USER_END {
        return false;
    }
    let va = addr & !(PAGE - 1);
    let pages = (end - va).div_ceil(PAGE) as usize;
    let must = const { must_bits(FOR_WRITE) };
    // Usually all in one page table.
    match ptes.run(va, pages) {
        Some(run) if run.len() == pages => run_bits::<FOR_WRITE>(run) & must == must,
        _ => pages == 0 || pages_ok::<FOR_WRITE>(ptes, va, pages),
    }
}

/// [`range_ok`] for `pages` pages from `va` (page-aligned, below the end
/// of user space) across page tables.
#[inline(never)]
fn pages_ok<const FOR_WRITE: bool>(ptes: &mut UserPtes, mut va: u64, pages: usize) -> bool {
    let must = const { must_bits(FOR_WRITE) };
    let mut left = pages;
    while left > 0 {
        let Some(run) = ptes.run(va, left) else { return false };
        if run_bits::<FOR_WRITE>(run) & must != must {
            return false;
        }
        va += run.len() as u64 * PAGE;
        left -= run.len();
    }
    true
}

/// Copies `len` bytes between two byte streams, each given as "physical
/// address of byte `off` and how many bytes follow it contiguously"; a
/// stream is asked again only once its last run is used up.
fn copy_stream(
    len: usize,
    mut src: impl FnMut(usize) -> Option<(u64, usize)>,
    mut dst: impl FnMut(usize) -> Option<(u64, usize)>,
) -> Result<(), Side> {
    let (mut s, mut sn, mut d, mut dn) = (0, 0, 0, 0);
    let mut off = 0;
    while off < len {
        if sn == 0 {
            (s, sn) = src(off).ok_or(Side::Source)?;
        }
        if dn == 0 {
            (d, dn) = dst(off).ok_or(Side::Destination)?;
        }
        let n = sn.min(dn).min(len - off);
        paging::copy_phys(s, d, n);
        (s, sn, d, dn) = (s + n as u64, sn - n, d + n as u64, dn - n);
        off += n;
    }
    Ok(())
}

fn user_stream(ptes: &mut UserPtes, addr: u64, write: bool) -> impl FnMut(usize) -> Option<(u64, usize)> + '_ {
    move |off| {
        let va = addr.checked_add(off as u64)?;
        let phys = page_ok(ptes, va, write)?;
        Some((phys + va % PAGE, (PAGE - va % PAGE) as usize))
    }
}

fn queue_stream(q: &QueueStore, slot: usize) -> impl FnMut(usize) -> Option<(u64, usize)> + '_ {
    move |off| {
        let at = slot * q.slot_bytes + off;
        let frame = *q.frames.get(at / PAGE as usize)?;
        Some((frame + (at as u64 % PAGE), PAGE as usize - at % PAGE as usize))
    }
}

impl KernelEnv<'_> {
    /// Makes every copy-on-write page of `[addr, addr + len)` private.
    fn make_private(&mut self, ptes: &mut UserPtes, addr: u64, len: usize) -> Result<(), Side> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len as u64).ok_or(Side::Destination)?;
        let mut va = addr & !(PAGE - 1);
        while va < end {
            let pte = ptes.get(va).ok_or(Side::Destination)?;
            if pte & paging::flags::COW != 0 && !crate::memory::break_cow_at(self.frames, ptes, va, pte) {
                return Err(Side::Destination);
            }
            va += PAGE;
        }
        Ok(())
    }

    fn plain_copy(&mut self, from: (&mut UserPtes, u64), to: (&mut UserPtes, u64), len: usize) -> Result<(), Side> {
        if len == 0 {
            return Ok(());
        }
        self.make_private(to.0, to.1, len)?;
        copy_stream(len, user_stream(from.0, from.1, false), user_stream(to.0, to.1, true))
    }

    /// Shares the source page `src` (entry `se`) into the destination at
    /// `dst` (entry `de`) as a copy-on-write mapping in both spaces; the
    /// destination's old frame is released. Falls back to a copy if the
    /// frame cannot be shared. True if an entry changed (the TLB needs a
    /// flush); a destination that already maps the source's frame the way
    /// a remap would leave it changes nothing (see [`run_settled`]).
    fn remap_page(&mut self, from: (&mut UserPtes, u64, &Pte), to: (&mut UserPtes, u64, &Pte)) -> Result<bool, Side> {
        let (spte, dpte) = (from.2.get(), to.2.get());
        if spte & paging::flags::PRESENT == 0 {
            return Err(Side::Source);
        }
        if dpte & paging::flags::PRESENT == 0 {
            return Err(Side::Destination);
        }
        if run_settled(core::slice::from_ref(from.2), core::slice::from_ref(to.2)) {
            self.frames.remapped += 1;
            return Ok(false);
        }
        let frame = paging::pte_frame(spte);
        if !self.frames.share(frame) {
            self.plain_copy((from.0, from.1), (to.0, to.1), PAGE as usize)?;
            return Ok(true);
        }
        if spte & paging::flags::WRITE != 0 {
            from.2.set(frame, (paging::pte_bits(spte) & !paging::flags::WRITE) | paging::flags::COW);
        }
        let bits = (paging::pte_bits(dpte) & !paging::flags::WRITE) | paging::flags::COW | paging::flags::NO_EXECUTE;
        to.2.set(frame, bits);
        self.frames.free_frame(paging::pte_frame(dpte));
        self.frames.remapped += 1;
        Ok(true)
    }
}

/// Bits of a settled destination entry (see [`run_settled`]): present,
/// user, copy-on-write, not executable, and not writable.
const SETTLED: u64 = paging::flags::PRESENT | paging::flags::USER | paging::flags::COW | paging::flags::NO_EXECUTE;
/// Bits a settled destination entry shares with its source entry: frame,
/// present and user; and WRITE, clear in both.
const SETTLED_SAME: u64 = paging::ADDR_MASK | paging::flags::PRESENT | paging::flags::USER | paging::flags::WRITE;

/// The whole pages `[first, last)` (source addresses) a copy of `len`
/// bytes from `from` to `to` remaps, if it remaps any: a message at least
/// `remap_min` long whose source and destination share their offset within
/// a page.
#[inline]
fn remap_span(remap_min: usize, from: u64, to: u64, len: usize) -> Option<(u64, u64)> {
    let first = from.next_multiple_of(PAGE);
    let last = (from + len as u64) & !(PAGE - 1);
    (len >= remap_min && from % PAGE == to % PAGE && first < last).then_some((first, last))
}

/// Whether remapping the `pages` source pages from `va` onto the
/// destination pages `delta` further would change nothing (see
/// [`run_settled`]); false too if a page table is missing.
#[inline]
fn remap_settled(src: &mut UserPtes, dst: &mut UserPtes, va: u64, delta: u64, pages: usize) -> bool {
    // Usually each side in one page table.
    match (src.run(va, pages), dst.run(va.wrapping_add(delta), pages)) {
        (Some(s), Some(d)) if s.len() == pages && d.len() == pages => run_settled(s, d),
        _ => remap_settled_runs(src, dst, va, delta, pages),
    }
}

/// Whether every destination entry of `d` is settled: it already maps
/// its source entry's frame as a remap would leave it — present, for user
/// access, read-only, copy-on-write and not executable — and the source
/// entry maps that frame present, for user access and read-only. A remap
/// would leave both entries as they are, and add and drop one share of
/// the frame: nothing to do. Branch-free over the runs.
#[inline(always)]
fn run_settled(s: &[Pte], d: &[Pte]) -> bool {
    // Bits any pair differs in; bits every destination entry has; bits
    // some destination entry has.
    let (mut differ, mut all, mut any) = (0, !0, 0);
    for (se, de) in s.iter().zip(d) {
        let (s, d) = (se.get(), de.get());
        differ |= s ^ d;
        all &= d;
        any |= d;
    }
    // (WRITE clear in every destination entry and the same in each pair:
    // clear in every source entry too.)
    differ & SETTLED_SAME == 0 && all & SETTLED == SETTLED && any & paging::flags::WRITE == 0
}

/// [`remap_settled`] across page tables.
#[inline(never)]
fn remap_settled_runs(src: &mut UserPtes, dst: &mut UserPtes, mut va: u64, delta: u64, pages: usize) -> bool {
    let mut left = pages;
    while left > 0 {
        let Some(s) = src.run(va, left) else { return false };
        let Some(d) = dst.run(va.wrapping_add(delta), s.len()) else { return false };
        if !run_settled(&s[..d.len()], d) {
            return false;
        }
        va += d.len() as u64 * PAGE;
        left -= d.len();
    }
    true
}

impl KernelEnv<'_> {
    /// [`Env::copy`] through the cursors `src` (over `from`'s space) and
    /// `dst` (over `to`'s). `settled`: the caller found that remapping the
    /// whole pages would change nothing (see [`remap_settled`]), and no
    /// entry changed since.
    #[inline]
    fn copy_via(
        &mut self,
        (src, from): (&mut UserPtes, u64),
        (dst, to): (&mut UserPtes, u64),
        len: usize,
        settled: bool,
    ) -> Result<(), Side> {
        let Some((first, last)) = remap_span(self.remap_min, from, to, len) else {
            return self.plain_copy((src, from), (dst, to), len);
        };
        // Partial first and last pages are copied; whole pages in between
        // are shared copy-on-write.
        let delta = to.wrapping_sub(from);
        let end = from + len as u64;
        if first > from {
            self.plain_copy((src, from), (dst, to), (first - from) as usize)?;
        }
        let pages = ((last - first) / PAGE) as usize;
        if settled {
            self.frames.remapped += pages as u64;
        } else {
            self.remap_pages(src, dst, first, delta, pages)?;
        }
        if end > last {
            self.plain_copy((src, last), (dst, last.wrapping_add(delta)), (end - last) as usize)?;
        }
        Ok(())
    }

    /// Remaps the `pages` whole source pages from `va` onto the
    /// destination pages `delta` further (see [`Self::remap_page`]), and
    /// flushes the TLB if an entry of the current space changed.
    #[inline(never)]
    fn remap_pages(
        &mut self,
        src: &mut UserPtes,
        dst: &mut UserPtes,
        mut va: u64,
        delta: u64,
        pages: usize,
    ) -> Result<(), Side> {
        let mut changed = false;
        let mut left = pages;
        while left > 0 {
            // The entries up to the end of the current source and
            // destination page tables.
            let s = src.run(va, left).ok_or(Side::Source)?;
            let d = dst.run(va.wrapping_add(delta), s.len()).ok_or(Side::Destination)?;
            let s = &s[..d.len()];
            // The steady state of a buffer sent again and again: the
            // destination already maps every source frame as a remap would
            // leave it.
            if run_settled(s, d) {
                self.frames.remapped += d.len() as u64;
                va += d.len() as u64 * PAGE;
            } else {
                for (se, de) in s.iter().zip(d) {
                    changed |= self.remap_page((src, va, se), (dst, va.wrapping_add(delta), de))?;
                    va += PAGE;
                }
            }
            left -= d.len();
        }
        if changed {
            let current = paging::current_space();
            if current == src.space() || current == dst.space() {
                paging::flush_tlb();
            }
        }
        Ok(())
    }
}

impl Env for KernelEnv<'_> {
    fn copy(&mut self, from: (SpaceId, u64), to: (SpaceId, u64), len: usize) -> Result<(), Side> {
        let (mut src, mut dst) = (UserPtes::new(from.0), UserPtes::new(to.0));
        self.copy_via((&mut src, from.1), (&mut dst, to.1), len, false)
    }
    fn readable(&self, space: SpaceId, addr: u64, len: usize) -> bool {
        range_ok::<false>(&mut UserPtes::new(space), addr, len)
    }
    fn writable(&self, space: SpaceId, addr: u64, len: usize) -> bool {
        range_ok::<true>(&mut UserPtes::new(space), addr, len)
    }
    fn queue_alloc(&mut self, ep: usize, slots: usize, bytes: usize) -> bool {
        let pages = (slots * bytes).div_ceil(PAGE as usize);
        let mut frames = Vec::with_capacity(pages);
        for _ in 0..pages {
            match self.frames.alloc_frame() {
                Some(f) => frames.push(f),
                None => {
                    for f in frames {
                        self.frames.free_frame(f);
                    }
                    return false;
                }
            }
        }
        if ep >= self.queues.len() {
            self.queues.resize_with(ep + 1, || None);
        }
        self.queues[ep] = Some(QueueStore { frames, slot_bytes: bytes });
        true
    }
    fn queue_free(&mut self, ep: usize) {
        if let Some(q) = self.queues.get_mut(ep).and_then(Option::take) {
            for f in q.frames {
                self.frames.free_frame(f);
            }
        }
    }
    fn queue_store(&mut self, ep: usize, slot: usize, from: (SpaceId, u64), len: usize) -> Result<(), Side> {
        let q = self.queues.get(ep).and_then(Option::as_ref).ok_or(Side::Destination)?;
        copy_stream(len, user_stream(&mut UserPtes::new(from.0), from.1, false), queue_stream(q, slot))
    }
    fn queue_load(&mut self, ep: usize, slot: usize, to: (SpaceId, u64), len: usize) -> Result<(), Side> {
        let mut ptes = UserPtes::new(to.0);
        self.make_private(&mut ptes, to.1, len)?;
        let q = self.queues.get(ep).and_then(Option::as_ref).ok_or(Side::Source)?;
        copy_stream(len, queue_stream(q, slot), user_stream(&mut ptes, to.1, true))
    }
    fn deliver(&mut self, to: (ThreadId, u64), got: &Received) {
        deliver(to, got);
    }
    #[inline(always)]
    fn deliver_plain(&mut self, to: (ThreadId, u64), msg: &Msg, badge: u64, reply: u64) {
        deliver_plain(to, msg, badge, reply);
    }
}

/// A readable check [`CallEnv`] remembers: the cursor it walked with and
/// the range.
#[derive(Clone, Copy)]
struct Checked {
    ptes: UserPtes,
    addr: u64,
    len: usize,
}

/// A copy's source, destination and length, as [`Env::copy`] takes them.
type Transfer = ((SpaceId, u64), (SpaceId, u64), usize);

/// [`KernelEnv`] for the engine's calls within one IPC system call. The
/// engine checks a message's source (readable) and destination (writable)
/// before it copies; this remembers both checks:
///
/// - their page-table cursors, so that the copy need not walk from the top
///   again. Sound because nothing the engine can reach during a system
///   call changes which page tables a space has: only leaf entries change
///   (copies, remaps, copy-on-write breaks), and cursors stay valid across
///   that (see [`UserPtes`]).
/// - whether the copy from the last readable range to the writable one
///   would remap only whole pages that the destination already maps as the
///   remap would leave them (the steady state of buffers sent again and
///   again between two tasks): the writable check then checks exactly
///   that, in one pass over both spaces' entries, and the copy only counts
///   those pages. Every other call forgets it, so that no entry can have
///   changed in between.
pub struct CallEnv<'a> {
    env: KernelEnv<'a>,
    /// The last readable check.
    read: Cell<Option<Checked>>,
    /// The cursor of the last writable check.
    write: Cell<Option<UserPtes>>,
    /// The copy the last call, a writable check, found settled (see
    /// [`run_settled`]).
    settled: Cell<Option<Transfer>>,
}

impl<'a> CallEnv<'a> {
    /// Wraps `env` for one system call.
    pub fn new(env: KernelEnv<'a>) -> CallEnv<'a> {
        CallEnv { env, read: Cell::new(None), write: Cell::new(None), settled: Cell::new(None) }
    }

    /// `ptes` if it walks `space`, else a new cursor over `space`.
    #[inline]
    fn cursor(ptes: Option<UserPtes>, space: SpaceId) -> UserPtes {
        match ptes {
            Some(p) if p.space() == space => p,
            _ => UserPtes::new(space),
        }
    }

    /// Whether the copy from the last readable range to `[addr, addr +
    /// len)` (inside user space) of the space `dst` walks would remap
    /// only settled whole pages (then also writable: present, user and
    /// copy-on-write), with writable partial pages around them. The copy
    /// if so.
    #[inline]
    fn settled_into(&self, dst: &mut UserPtes, addr: u64, len: usize) -> Option<Transfer> {
        // (A copy within one space takes the plain path: the partial pages
        // it copies first could change whole ones.)
        let read = self.read.get().filter(|r| r.len == len && r.ptes.space() != dst.space())?;
        let (first, last) = remap_span(self.env.remap_min, read.addr, addr, len)?;
        let delta = addr.wrapping_sub(read.addr);
        let (head, tail) = ((first - read.addr) as usize, (read.addr + len as u64 - last) as usize);
        let mut src = read.ptes;
        let settled = remap_settled(&mut src, dst, first, delta, ((last - first) / PAGE) as usize)
            && (head == 0 || range_ok::<true>(dst, addr, head))
            && (tail == 0 || range_ok::<true>(dst, last.wrapping_add(delta), tail));
        settled.then_some(((src.space(), read.addr), (dst.space(), addr), len))
    }
}

impl Env for CallEnv<'_> {
    fn copy(&mut self, from: (SpaceId, u64), to: (SpaceId, u64), len: usize) -> Result<(), Side> {
        let settled = self.settled.take() == Some((from, to, len));
        let mut src = Self::cursor(self.read.get().map(|r| r.ptes), from.0);
        let mut dst = Self::cursor(self.write.get(), to.0);
        self.env.copy_via((&mut src, from.1), (&mut dst, to.1), len, settled)
    }
    fn readable(&self, space: SpaceId, addr: u64, len: usize) -> bool {
        self.settled.set(None);
        let mut ptes = UserPtes::new(space);
        let ok = range_ok::<false>(&mut ptes, addr, len);
        self.read.set(Some(Checked { ptes, addr, len }));
        ok
    }
    fn writable(&self, space: SpaceId, addr: u64, len: usize) -> bool {
        self.settled.set(None);
        let Some(end) = addr.checked_add(len as u64) else { return false };
        if end > abi::USER_END {
            return false;
        }
        let mut ptes = UserPtes::new(space);
        let settled = self.settled_into(&mut ptes, addr, len);
        let ok = settled.is_some() || range_ok::<true>(&mut ptes, addr, len);
        self.write.set(Some(ptes));
        self.settled.set(settled);
        ok
    }
    fn queue_alloc(&mut self, ep: usize, slots: usize, bytes: usize) -> bool {
        self.settled.set(None);
        self.env.queue_alloc(ep, slots, bytes)
    }
    fn queue_free(&mut self, ep: usize) {
        self.settled.set(None);
        self.env.queue_free(ep);
    }
    fn queue_store(&mut self, ep: usize, slot: usize, from: (SpaceId, u64), len: usize) -> Result<(), Side> {
        self.settled.set(None);
        self.env.queue_store(ep, slot, from, len)
    }
    fn queue_load(&mut self, ep: usize, slot: usize, to: (SpaceId, u64), len: usize) -> Result<(), Side> {
        self.settled.set(None);
        self.env.queue_load(ep, slot, to, len)
    }
    fn deliver(&mut self, to: (ThreadId, u64), got: &Received) {
        deliver(to, got);
    }
    #[inline(always)]
    fn deliver_plain(&mut self, to: (ThreadId, u64), msg: &Msg, badge: u64, reply: u64) {
        deliver_plain(to, msg, badge, reply);
    }
}

/// Whether `t` may have results written into its saved frame: any thread
/// but the running one, whose frame its trap holds. (The engine wakes only
/// threads that wait, so this is only a guard; it leaves the running
/// thread as the wake lists would: untouched, see `Kernel::wake_threads`.)
#[inline(always)]
fn not_running(t: ThreadId) -> bool {
    t != crate::kernel::CURRENT_THREAD.load(core::sync::atomic::Ordering::Relaxed)
}

/// `Env::deliver`: writes what the woken thread `to.0` received into its
/// saved frame at `to.1`.
#[inline(never)]
fn deliver(to: (ThreadId, u64), got: &Received) {
    if not_running(to.0) {
        trap::with_frame(to.1, |f| write_received(f, got));
    }
}

/// `Env::deliver_plain`: writes what the thread `to.0`, woken with a plain
/// message, returns to user space with into its saved frame at `to.1` —
/// what [`write_received`] writes for such a message.
#[inline(always)]
fn deliver_plain(to: (ThreadId, u64), msg: &Msg, badge: u64, reply: u64) {
    /// The write, compiled in place wherever the engine delivers (a closure
    /// would not be).
    struct Plain<'a>(&'a Msg, u64, u64);
    impl FrameOp for Plain<'_> {
        type Output = ();
        #[inline(always)]
        fn apply(self, f: &mut TrapFrame) {
            let Plain(msg, badge, reply) = self;
            f.rax = 0;
            f.rdi = badge;
            f.rsi = reply;
            f.rdx = msg.len as u64;
            set_mrs(f, msg.regs);
        }
    }
    if not_running(to.0) {
        trap::apply_to_frame(to.1, Plain(msg, badge, reply));
    }
}

/// The message registers MR0–MR7 of a frame.
pub fn mrs(f: &TrapFrame) -> [u64; MSG_REGS] {
    [f.r8, f.r9, f.r12, f.r13, f.r14, f.r15, f.rbx, f.rbp]
}

fn set_mrs(f: &mut TrapFrame, r: [u64; MSG_REGS]) {
    [f.r8, f.r9, f.r12, f.r13, f.r14, f.r15, f.rbx, f.rbp] = r;
}

/// Writes how a woken thread returns into its frame, unless the engine
/// handed it over already ([`Wake::Delivered`]).
#[inline(always)]
pub fn write_wake(f: &mut TrapFrame, w: &Wake) {
    match w {
        Wake::Delivered => {}
        Wake::Sent => write_received(f, &Received::default()),
        Wake::Failed(e) => write_error(f, e),
    }
}

/// Writes an IPC result into a frame (see `abi::ipc`).
pub fn write_result(f: &mut TrapFrame, r: &IpcResult) {
    match r {
        Ok(got) => write_received(f, got),
        Err(e) => write_error(f, e),
    }
}

fn write_error(f: &mut TrapFrame, e: &IpcError) {
    f.rax = e.error as u64;
    f.rdx = e.detail;
}

/// Writes what a thread received into its frame.
#[inline(always)]
fn write_received(f: &mut TrapFrame, got: &Received) {
    f.rax = 0;
    f.rdi = got.badge;
    f.rsi = got.reply;
    f.rdx = got.len as u64 | ((got.ncaps as u64) << abi_ipc::RESULT_NCAPS_SHIFT);
    // A short message's registers arrive as the sender had them (all
    // eight: the length says which bytes count).
    if got.ncaps == 0 && got.len <= SHORT_MAX {
        set_mrs(f, got.regs);
        return;
    }
    let mut regs = if got.len <= SHORT_MAX { got.regs } else { [0; MSG_REGS] };
    for i in 0..got.ncaps {
        regs[MSG_REGS - 1 - i] = got.caps[i];
    }
    set_mrs(f, regs);
}

/// Decodes the message a frame sends.
fn message(f: &TrapFrame) -> KResult<Msg> {
    // The usual message: short, no capabilities (always valid).
    if let Some(len) = short_plain(f.rax) {
        return Ok(Msg { len, regs: mrs(f), ..Msg::default() });
    }
    let ncaps = ((f.rax >> abi_ipc::NCAPS_SHIFT) & 7) as usize;
    let len = ((f.rax >> abi_ipc::SEND_LEN_SHIFT) & abi_ipc::LEN_MASK) as usize;
    if ncaps > abi_ipc::MAX_CAPS || (len <= SHORT_MAX && len > SHORT_MAX - 8 * ncaps) {
        return Err(Error::InvalidArgument);
    }
    let regs = mrs(f);
    let mut msg = Msg { len, ncaps, ..Msg::default() };
    for i in 0..ncaps {
        msg.caps[i] = regs[MSG_REGS - 1 - i];
    }
    if len <= SHORT_MAX {
        msg.regs = regs;
    } else {
        msg.buf = regs[0];
    }
    Ok(msg)
}

fn recv_buf(f: &TrapFrame) -> RecvBuf {
    RecvBuf { addr: f.r10, cap: ((f.rax >> abi_ipc::RECV_CAP_SHIFT) & abi_ipc::LEN_MASK) as usize }
}

fn timeout(k: &Kernel, us: u64) -> Timeout {
    match us {
        abi_ipc::TIMEOUT_ZERO => Timeout::Zero,
        abi_ipc::TIMEOUT_NEVER => Timeout::Never,
        us => {
            let per_tick = 1_000_000 / u64::from(arch_x86_64::cpu::TIMER_HZ);
            // Round up, and add one tick: the current one is partly over.
            Timeout::Until(k.ticks.saturating_add(us.div_ceil(per_tick)).saturating_add(1))
        }
    }
}

/// The IPC fast paths (see `Ipc::fast_call`, `Ipc::fast_reply_receive`):
/// a call (`call`) or reply-and-receive of a short message without
/// capabilities whose partner waits and may run now (no ready thread has
/// a higher priority). If one was taken, the caller is in the
/// engine's wait and the partner, out of it, is returned with the message
/// length; the kernel has yet to block the caller and run the partner.
/// `None` leaves everything as it was, for the general path. `len` is the
/// message's length, which the caller found short and plain
/// ([`kernel_core::ipc::short_plain`]).
#[inline(always)]
pub fn try_fast(k: &mut Kernel, f: &TrapFrame, call: bool, len: usize) -> Option<(FastPartner, usize)> {
    // A server's receive must block without a deadline.
    if !call && (f.rsi == 0 || f.rdx != abi_ipc::TIMEOUT_NEVER) {
        return None;
    }
    let t = k.current();
    let ready = k.ready_highest();
    let rbuf = || recv_buf(f);
    let p = if call {
        k.ipc.fast_call(&k.caps, t, f.rdi, len, rbuf, ready)
    } else {
        k.ipc.fast_reply_receive(&k.caps, t, f.rsi, len, f.rdi, rbuf, ready)
    }?;
    Some((p, len))
}

/// Handles one of the IPC syscalls of thread `t` (the current one): the
/// caller returns with its result written, or blocks (and a fast-path
/// partner may be set to run next).
pub fn handle(k: &mut Kernel, t: usize, sys: Sys, f: &mut TrapFrame) {
    let task = k.task_of(t);
    match sys {
        Sys::EndpointCreate => {
            let r = endpoint_create(k, task, f.rdi, f.rsi, f.rdx);
            simple(f, r.map(|tok| [tok, 0, 0]))
        }
        Sys::EndpointDelete => {
            let r = endpoint_delete(k, task, f.rdi);
            simple(f, r.map(|()| [0; 3]))
        }
        Sys::EndpointStats => {
            let r = k.caps.check(task, f.rdi, kind::ENDPOINT, rights::READ).map_err(Error::from).and_then(|c| {
                k.ipc.stats(c.object.id as usize).map(|s| [s.delivered, s.bytes, s.calls]).ok_or(Error::NotFound)
            });
            simple(f, r)
        }
        Sys::IpcSend | Sys::IpcCall => {
            let call = (sys == Sys::IpcCall).then(|| recv_buf(f));
            let decoded = message(f);
            let msg = match &decoded {
                Ok(m) => m,
                Err(e) => return simple(f, Err(*e)),
            };
            let to = timeout(k, f.rdx);
            let (ipc, caps, env) = k.ipc_parts();
            let mut env = CallEnv::new(env);
            let o = ipc.send(caps, &mut env, t, f.rdi, msg, call, to);
            finish(k, f, o)
        }
        Sys::IpcReceive => {
            let to = timeout(k, f.rdx);
            let (ipc, caps, env) = k.ipc_parts();
            let mut env = CallEnv::new(env);
            let o = ipc.receive(caps, &mut env, t, f.rdi, recv_buf(f), to);
            finish(k, f, o)
        }
        Sys::IpcReply => {
            let decoded = message(f);
            let msg = match &decoded {
                Ok(m) => m,
                Err(e) => return simple(f, Err(*e)),
            };
            let (ipc, caps, env) = k.ipc_parts();
            let mut env = CallEnv::new(env);
            let o = ipc.reply(caps, &mut env, t, f.rdi, msg);
            finish(k, f, o)
        }
        Sys::IpcReplyReceive => {
            let rbuf = recv_buf(f);
            let decoded = message(f);
            let msg = match &decoded {
                Ok(m) => m,
                Err(e) => return simple(f, Err(*e)),
            };
            let to = timeout(k, f.rdx);
            let (ipc, caps, env) = k.ipc_parts();
            let mut env = CallEnv::new(env);
            let o = ipc.reply_receive(caps, &mut env, t, f.rsi, msg, f.rdi, rbuf, to);
            finish(k, f, o)
        }
        _ => simple(f, Err(Error::InvalidSyscall)),
    }
}

/// Ends an IPC syscall with the engine's outcome (in each arm of
/// [`handle`], so that no arm's outcome is merged with another's).
#[inline(always)]
fn finish(k: &mut Kernel, f: &mut TrapFrame, o: Outcome) {
    match o {
        Outcome::Done(r) => write_result(f, &r),
        // The engine holds the caller's wait; its kernel state stays
        // active (see `ThreadState::Active`), and dispatching runs another.
        Outcome::Blocked => k.blocked_in_ipc(),
    }
}

fn simple(f: &mut TrapFrame, r: KResult<[u64; 3]>) {
    crate::kernel::write_result(f, r);
}

fn endpoint_create(k: &mut Kernel, task: usize, kind_arg: u64, queue: u64, max_msg: u64) -> KResult<u64> {
    let kind = match kind_arg {
        abi_ipc::KIND_SYNC if queue == 0 => EndpointKind::Sync,
        abi_ipc::KIND_ASYNC => EndpointKind::Async(usize::try_from(queue).map_err(|_| Error::InvalidArgument)?),
        _ => return Err(Error::InvalidArgument),
    };
    let max_msg = usize::try_from(max_msg).map_err(|_| Error::InvalidArgument)?;
    // Queue storage is charged to the creator, within its quota.
    let charged = k.task(task).map_or(0, |t| t.queue_frames);
    if let EndpointKind::Async(n) = kind {
        // Queued messages' records live on the kernel heap: bounded in all.
        if k.queue_slots.saturating_add(n) > crate::kernel::MAX_QUEUE_SLOTS {
            return Err(Error::OutOfMemory);
        }
        let slot = if max_msg == 0 { kernel_core::ipc::DEFAULT_MAX_MSG } else { max_msg };
        let pages = if slot > SHORT_MAX { n.saturating_mul(slot).div_ceil(PAGE as usize) } else { 0 };
        // (Sizes the engine refuses anyway get its InvalidArgument.)
        let valid = (1..=kernel_core::ipc::MAX_QUEUE).contains(&n)
            && n.saturating_mul(slot) <= kernel_core::ipc::MAX_QUEUE_BYTES;
        if valid && charged.saturating_add(pages) > crate::kernel::QUEUE_QUOTA {
            return Err(Error::OutOfMemory);
        }
    }
    let (ipc, caps, mut env) = k.ipc_parts();
    let token = ipc.create_endpoint(caps, &mut env, task, kind, max_msg).map_err(|e| e.error)?;
    let id = k.caps.lookup(task, token).map(|c| c.object.id as usize).unwrap_or(usize::MAX);
    let frames = queue_frames(&k.queues, id);
    if let Some(t) = k.task_mut(task) {
        t.queue_frames += frames;
    }
    if let EndpointKind::Async(n) = kind {
        k.queue_slots += n;
    }
    Ok(token)
}

/// Frames of queue storage endpoint `id` holds.
pub fn queue_frames(queues: &[Option<QueueStore>], id: usize) -> usize {
    queues.get(id).and_then(Option::as_ref).map_or(0, |q| q.frames.len())
}

fn endpoint_delete(k: &mut Kernel, task: usize, token: u64) -> KResult<()> {
    let cap = k.caps.check(task, token, kind::ENDPOINT, rights::DELETE)?;
    k.destroy_endpoint(cap.object.id as usize);
    k.caps.remove_object(cap.object);
    Ok(())
}

/// Whether the IPC fast paths are compiled in.
pub const FASTPATH_BUILT: bool = cfg!(feature = "fastpath");
