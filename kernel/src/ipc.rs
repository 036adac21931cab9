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
use arch_x86_64::trap::TrapFrame;
use kernel_core::ipc::{
    EndpointKind, Env, FastPartner, IpcResult, Msg, Outcome, RecvBuf, Side, SpaceId, Timeout, MSG_REGS, SHORT_MAX,
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

/// Whether `[addr, addr + len)` is mapped for user access (and, for
/// `FOR_WRITE`, writable) in the space `ptes` walks.
fn range_ok<const FOR_WRITE: bool>(ptes: &mut UserPtes, addr: u64, len: usize) -> bool {
    let Some(end) = addr.checked_add(len as u64) else { return false };
    if end > abi::USER_END {
        return false;
    }
    use paging::flags::{COW, PRESENT, USER, WRITE};
    // Bits every entry must have: present and user, and for a write also
    // WRITE, where a copy-on-write page counts as writable (see `page_ok`):
    // COW (bit 9) is folded onto WRITE (bit 1).
    const _: () = assert!(COW == WRITE << 8);
    let must = if FOR_WRITE { PRESENT | USER | WRITE } else { PRESENT | USER };
    let mut va = addr & !(PAGE - 1);
    let mut left = (end - va).div_ceil(PAGE) as usize;
    while left > 0 {
        let Some(run) = ptes.run(va, left) else { return false };
        // Branch-free over the run: the bits every entry has.
        let all = if FOR_WRITE {
            run.iter().fold(!0, |a, e| a & (e.get() | (e.get() & COW) >> 8))
        } else {
            run.iter().fold(!0, |a, e| a & e.get())
        };
        if all & must != must {
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
    /// a remap would leave it changes nothing (see [`already_remapped`]).
    fn remap_page(&mut self, from: (&mut UserPtes, u64, &Pte), to: (&mut UserPtes, u64, &Pte)) -> Result<bool, Side> {
        let (spte, dpte) = (from.2.get(), to.2.get());
        if spte & paging::flags::PRESENT == 0 {
            return Err(Side::Source);
        }
        if dpte & paging::flags::PRESENT == 0 {
            return Err(Side::Destination);
        }
        if already_remapped(0, spte, dpte) == 0 {
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

/// Folds into `m` whatever keeps the remap of source entry `s` onto
/// destination entry `d` from being a no-op: zero if `d` already maps
/// `s`'s frame for user access, present, read-only, copy-on-write and
/// not executable, and `s` maps it present, for user access and
/// read-only. Then a remap would leave both entries as they are and add
/// and drop one share of the frame: nothing to do.
#[inline(always)]
fn already_remapped(m: u64, s: u64, d: u64) -> u64 {
    use paging::flags::{COW, NO_EXECUTE, PRESENT, USER, WRITE};
    const SAME: u64 = paging::ADDR_MASK | PRESENT | USER;
    const KEEP: u64 = PRESENT | USER | WRITE | COW | NO_EXECUTE;
    const WANT: u64 = PRESENT | USER | COW | NO_EXECUTE;
    m | ((s ^ d) & SAME) | (s & WRITE) | ((d & KEEP) ^ WANT)
}

impl KernelEnv<'_> {
    /// [`Env::copy`] through the cursors `src` (over `from`'s space) and
    /// `dst` (over `to`'s).
    fn copy_via(
        &mut self,
        (src, from): (&mut UserPtes, u64),
        (dst, to): (&mut UserPtes, u64),
        len: usize,
    ) -> Result<(), Side> {
        let (start, end) = (from, from + len as u64);
        let first_full = start.next_multiple_of(PAGE);
        let last_full = end & !(PAGE - 1);
        if len < self.remap_min || start % PAGE != to % PAGE || first_full >= last_full {
            return self.plain_copy((src, from), (dst, to), len);
        }
        // Partial first and last pages are copied; whole pages in between
        // are shared copy-on-write.
        let delta = to.wrapping_sub(from);
        if first_full > start {
            self.plain_copy((src, from), (dst, to), (first_full - start) as usize)?;
        }
        let mut changed = false;
        let mut va = first_full;
        let mut left = ((last_full - first_full) / PAGE) as usize;
        while left > 0 {
            // The entries up to the end of the current source and
            // destination page tables.
            let s = src.run(va, left).ok_or(Side::Source)?;
            let d = dst.run(va.wrapping_add(delta), s.len()).ok_or(Side::Destination)?;
            let s = &s[..d.len()];
            // The steady state of a buffer sent again and again: the
            // destination already maps every source frame as a remap would
            // leave it. Branch-free over the run.
            if s.iter().zip(d).fold(0, |m, (se, de)| already_remapped(m, se.get(), de.get())) == 0 {
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
        if end > last_full {
            self.plain_copy((src, last_full), (dst, last_full.wrapping_add(delta)), (end - last_full) as usize)?;
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
        self.copy_via((&mut src, from.1), (&mut dst, to.1), len)
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
}

/// The message registers MR0–MR7 of a frame.
pub fn mrs(f: &TrapFrame) -> [u64; MSG_REGS] {
    [f.r8, f.r9, f.r12, f.r13, f.r14, f.r15, f.rbx, f.rbp]
}

fn set_mrs(f: &mut TrapFrame, r: [u64; MSG_REGS]) {
    [f.r8, f.r9, f.r12, f.r13, f.r14, f.r15, f.rbx, f.rbp] = r;
}

/// Writes an IPC result into a frame (see `abi::ipc`).
pub fn write_result(f: &mut TrapFrame, r: IpcResult) {
    match r {
        Ok(got) => {
            f.rax = 0;
            f.rdi = got.badge;
            f.rsi = got.reply;
            f.rdx = got.len as u64 | ((got.ncaps as u64) << abi_ipc::RESULT_NCAPS_SHIFT);
            // A short message's registers arrive as the sender had them
            // (all eight: the length says which bytes count).
            let mut regs = if got.len <= SHORT_MAX { got.regs } else { [0; MSG_REGS] };
            for i in 0..got.ncaps {
                regs[MSG_REGS - 1 - i] = got.caps[i];
            }
            set_mrs(f, regs);
        }
        Err(e) => {
            f.rax = e.error as u64;
            f.rdx = e.detail;
        }
    }
}

/// Decodes the message a frame sends.
fn message(f: &TrapFrame) -> KResult<Msg> {
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

/// The length of a short message without capabilities — what the fast
/// paths carry — or `None` for anything else.
fn short_plain(rax: u64) -> Option<usize> {
    let ncaps = (rax >> abi_ipc::NCAPS_SHIFT) & 7;
    let len = ((rax >> abi_ipc::SEND_LEN_SHIFT) & abi_ipc::LEN_MASK) as usize;
    (ncaps == 0 && len <= SHORT_MAX).then_some(len)
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
/// capabilities whose partner waits and may run before every ready thread
/// of a priority above `ready`. If one was taken, the caller is in the
/// engine's wait and the partner, out of it, is returned with the message
/// length; the kernel has yet to block the caller and run the partner.
/// `None` leaves everything as it was, for the general path.
#[inline(always)]
pub fn try_fast(k: &mut Kernel, f: &TrapFrame, call: bool, ready: Option<u8>) -> Option<(FastPartner, usize)> {
    // A server's receive must block without a deadline.
    if !call && (f.rsi == 0 || f.rdx != abi_ipc::TIMEOUT_NEVER) {
        return None;
    }
    let len = short_plain(f.rax)?;
    let t = k.current();
    let rbuf = recv_buf(f);
    let p = if call {
        k.ipc.fast_call(&k.caps, t, f.rdi, len, rbuf, ready)
    } else {
        k.ipc.fast_reply_receive(&k.caps, t, f.rsi, len, f.rdi, rbuf, ready)
    }?;
    Some((p, len))
}

/// Handles one of the IPC syscalls: the caller returns with its result
/// written, or blocks (and a fast-path partner may be set to run next).
pub fn handle(k: &mut Kernel, sys: Sys, f: &mut TrapFrame) {
    let t = k.current();
    let task = k.current_task();
    let outcome = match sys {
        Sys::EndpointCreate => {
            let r = endpoint_create(k, task, f.rdi, f.rsi, f.rdx);
            return simple(f, r.map(|tok| [tok, 0, 0]));
        }
        Sys::EndpointDelete => {
            let r = endpoint_delete(k, task, f.rdi);
            return simple(f, r.map(|()| [0; 3]));
        }
        Sys::EndpointStats => {
            let r = k.caps.check(task, f.rdi, kind::ENDPOINT, rights::READ).map_err(Error::from).and_then(|c| {
                k.ipc.stats(c.object.id as usize).map(|s| [s.delivered, s.bytes, s.calls]).ok_or(Error::NotFound)
            });
            return simple(f, r);
        }
        Sys::IpcSend | Sys::IpcCall => {
            let call = (sys == Sys::IpcCall).then(|| recv_buf(f));
            let msg = match message(f) {
                Ok(m) => m,
                Err(e) => return simple(f, Err(e)),
            };
            let to = timeout(k, f.rdx);
            let mut env = KernelEnv { frames: &mut k.frames, queues: &mut k.queues, remap_min: k.remap_min };
            k.ipc.send(&mut k.caps, &mut env, t, f.rdi, msg, call, to)
        }
        Sys::IpcReceive => {
            let to = timeout(k, f.rdx);
            let mut env = KernelEnv { frames: &mut k.frames, queues: &mut k.queues, remap_min: k.remap_min };
            k.ipc.receive(&mut k.caps, &mut env, t, f.rdi, recv_buf(f), to)
        }
        Sys::IpcReply => {
            let msg = match message(f) {
                Ok(m) => m,
                Err(e) => return simple(f, Err(e)),
            };
            let mut env = KernelEnv { frames: &mut k.frames, queues: &mut k.queues, remap_min: k.remap_min };
            k.ipc.reply(&mut k.caps, &mut env, t, f.rdi, msg)
        }
        Sys::IpcReplyReceive => {
            let rbuf = recv_buf(f);
            let msg = match message(f) {
                Ok(m) => m,
                Err(e) => return simple(f, Err(e)),
            };
            let to = timeout(k, f.rdx);
            let mut env = KernelEnv { frames: &mut k.frames, queues: &mut k.queues, remap_min: k.remap_min };
            k.ipc.reply_receive(&mut k.caps, &mut env, t, f.rsi, msg, f.rdi, rbuf, to)
        }
        _ => return simple(f, Err(Error::InvalidSyscall)),
    };
    match outcome {
        Outcome::Done(r) => write_result(f, r),
        Outcome::Blocked => k.block_current(crate::kernel::Wait::Ipc),
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
    let mut env = KernelEnv { frames: &mut k.frames, queues: &mut k.queues, remap_min: k.remap_min };
    let token = k.ipc.create_endpoint(&mut k.caps, &mut env, task, kind, max_msg).map_err(|e| e.error)?;
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
