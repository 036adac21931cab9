//! The syscall layer: decodes the registers of a `syscall` (numbers and
//! argument meaning from the `abi` crate), checks every argument as hostile,
//! calls the kernel, and writes the status and results back (see
//! `docs/abi.md`). A call either completes now (results written), blocks
//! (whoever wakes the thread writes them) or ends the thread.

use crate::kernel::{write_result, KResult, Kernel, ThreadState, Wait};
use abi::{kind, map, rights, Counter, Error, Sys};
use arch_x86_64::paging::{self, FrameSource};
use arch_x86_64::serial;
use arch_x86_64::trap::TrapFrame;
use kernel_core::cap::ObjectRef;

const PAGE: u64 = 4096;

/// What became of the calling thread.
enum Outcome {
    /// Finished: write this into its frame.
    Done(KResult<[u64; 3]>),
    /// Blocked, or ended: its frame is written later or never.
    Parked,
}

use Outcome::{Done, Parked};

fn ok0() -> Outcome {
    Done(Ok([0; 3]))
}

/// Handles the syscall of thread `cur` (the current one) whose registers
/// are in `frame`.
pub fn handle(k: &mut Kernel, cur: usize, frame: &mut TrapFrame) {
    // IPC calls carry lengths in the upper bits of rax; the others must not.
    let sys = Sys::from_number(frame.rax & abi::ipc::NUMBER_MASK);
    let outcome = match sys {
        Some(s) if s as u64 >= Sys::EndpointCreate as u64 => {
            crate::ipc::handle(k, cur, s, frame);
            return;
        }
        Some(s) if frame.rax >> 8 == 0 => {
            dispatch(k, s, [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9])
        }
        _ => Done(Err(Error::InvalidSyscall)),
    };
    if let Done(result) = outcome {
        write_result(frame, result);
    }
}

fn dispatch(k: &mut Kernel, sys: Sys, a: [u64; 6]) -> Outcome {
    let task = k.current_task();
    match sys {
        Sys::ConsoleWrite => Done(console_write(k, task, a[0], a[1]).map(|()| [0; 3])),
        Sys::Yield => {
            k.request_resched();
            ok0()
        }
        Sys::TaskExit => {
            k.end_task(task, (abi::exit::EXITED, a[0]));
            Parked
        }
        Sys::ThreadExit => {
            let cur = k.current();
            k.end_thread(cur, (abi::exit::EXITED, a[0]));
            Parked
        }
        Sys::ThreadCreate => Done(thread_create(k, task, a[0], a[1], a[2], a[3]).map(|t| [t, 0, 0])),
        Sys::ThreadStart => Done(thread_start(k, task, a[0]).map(|()| [0; 3])),
        Sys::MemMap => Done(mem_map(k, task, a[0], a[1]).map(|addr| [addr, 0, 0])),
        Sys::MemUnmap => Done(mem_unmap(k, task, a[0], a[1]).map(|()| [0; 3])),
        // Reply tokens name the IPC engine's reply records, not
        // capabilities: they can be inspected and deleted, never copied,
        // minted, revoked or passed on.
        Sys::CapCopy | Sys::CapMint | Sys::CapRevoke if is_reply_token(a[0]) => {
            Done(reply_token_check(k, task, a[0]).and(Err(Error::PermissionDenied)))
        }
        Sys::CapDelete if is_reply_token(a[0]) => {
            Done(k.ipc.drop_reply(task, a[0]).map(|()| [0; 3]).map_err(|e| e.error))
        }
        Sys::CapCopy => Done(k.caps.copy(task, a[0]).map(|t| [t, 0, 0]).map_err(Error::from)),
        Sys::CapMint => Done(k.caps.mint(task, a[0], a[1], a[2]).map(|t| [t, 0, 0]).map_err(Error::from)),
        Sys::CapDelete => {
            let r = k.caps.delete(task, a[0]).map_err(Error::from);
            k.after_cap_changes();
            Done(r.map(|()| [0; 3]))
        }
        Sys::CapRevoke => {
            let r = k.caps.revoke(task, a[0]).map_err(Error::from);
            k.after_cap_changes();
            Done(r.map(|n| [n as u64, 0, 0]))
        }
        Sys::CapInspect | Sys::Counter => Done(query(k, sys, a[0]).unwrap_or(Err(Error::InvalidSyscall))),
        Sys::TaskSpawn => Done(task_spawn(k, task, a[0], a[1], a[2], a[3]).map(|t| [t, 0, 0])),
        Sys::TaskWait => task_wait(k, task, a[0]),
        _ => Done(Err(Error::InvalidSyscall)),
    }
}

/// The syscalls that only read kernel state and take one argument —
/// `CapInspect` and `Counter` — answered for the running thread; `None` for
/// any other. The lean path answers them too (`crate::fastpath`).
#[inline]
pub fn query(k: &Kernel, sys: Sys, a0: u64) -> Option<KResult<[u64; 3]>> {
    Some(match sys {
        Sys::Counter => counter_value(k, a0).map(|v| [v, 0, 0]),
        // Reply tokens name the IPC engine's reply records, not
        // capabilities (see `dispatch`).
        Sys::CapInspect if is_reply_token(a0) => {
            reply_token_check(k, k.current_task(), a0).map(|()| [u64::from(kind::REPLY), rights::WRITE, 0])
        }
        Sys::CapInspect => k
            .caps
            .lookup(k.current_task(), a0)
            .map(|c| [u64::from(c.object.kind), c.rights, c.badge])
            .map_err(Error::from),
        _ => return None,
    })
}

fn is_reply_token(token: u64) -> bool {
    abi::token::kind(token) == kind::REPLY
}

/// `Ok` if `token` is a live reply token `task` holds, else `NotFound`.
fn reply_token_check(k: &Kernel, task: usize, token: u64) -> KResult<()> {
    k.ipc.reply_token_info(task, token).map_err(|e| e.error)
}

fn console_write(k: &Kernel, task: usize, ptr: u64, len: u64) -> KResult<()> {
    if len > abi::CONSOLE_MAX {
        return Err(Error::InvalidArgument);
    }
    let space = k.task(task).ok_or(Error::NotFound)?.space;
    let mut buf = [0u8; abi::CONSOLE_MAX as usize];
    let buf = &mut buf[..len as usize];
    paging::copy_from_user(space, ptr, buf).map_err(|_| Error::InvalidArgument)?;
    serial::write_bytes(buf);
    Ok(())
}

fn is_user_address(a: u64) -> bool {
    (abi::USER_MIN..abi::USER_END).contains(&a)
}

fn thread_create(k: &mut Kernel, task: usize, entry: u64, stack_top: u64, arg: u64, priority: u64) -> KResult<u64> {
    let t = k.task(task).ok_or(Error::NotFound)?;
    if !is_user_address(entry) || !(abi::USER_MIN..=abi::USER_END).contains(&stack_top) {
        return Err(Error::InvalidArgument);
    }
    if priority > u64::from(t.priority) {
        return Err(Error::InvalidArgument);
    }
    if t.threads.len() >= crate::kernel::MAX_THREADS_PER_TASK {
        return Err(Error::OutOfMemory);
    }
    // Keep the SysV alignment a function entry expects (rsp + 8 aligned).
    let rsp = (stack_top & !15).wrapping_sub(8);
    let frame = TrapFrame::user(entry, rsp, arg);
    let id = k.new_thread(task, priority as u8, &frame)?;
    match k.caps.insert_root(task, ObjectRef { kind: kind::THREAD, id: id as u64 }, rights::ALL) {
        Ok(token) => Ok(token),
        Err(e) => {
            k.end_thread(id, (abi::exit::EXITED, 0));
            Err(e.into())
        }
    }
}

fn thread_start(k: &mut Kernel, task: usize, token: u64) -> KResult<()> {
    let cap = k.caps.check(task, token, kind::THREAD, rights::EXECUTE)?;
    let id = cap.object.id as usize;
    match k.thread(id).map(|t| t.state) {
        Some(ThreadState::Created) => {
            k.make_ready(id);
            Ok(())
        }
        Some(_) => Err(Error::InvalidState),
        None => Err(Error::NotFound),
    }
}

fn mem_map(k: &mut Kernel, task: usize, len: u64, flags: u64) -> KResult<u64> {
    if len == 0 || len > map::MAX_LEN || flags & !(map::WRITE | map::EXECUTE) != 0 {
        return Err(Error::InvalidArgument);
    }
    if flags & map::WRITE != 0 && flags & map::EXECUTE != 0 {
        return Err(Error::InvalidArgument);
    }
    let t = k.task(task).ok_or(Error::NotFound)?;
    let (space, base) = (t.space, t.map_next);
    let size = len.next_multiple_of(PAGE);
    if base + size > abi::USER_STACK_TOP - abi::USER_STACK_SIZE {
        return Err(Error::OutOfMemory);
    }
    let mut bits = 0;
    if flags & map::WRITE != 0 {
        bits |= paging::flags::WRITE;
    }
    if flags & map::EXECUTE == 0 {
        bits |= paging::flags::NO_EXECUTE;
    }
    let mut va = base;
    while va < base + size {
        let mapped = match k.frames.alloc_zeroed() {
            Some(f) => paging::map_user(space, va, f, bits, &mut k.frames).map_err(|_| f),
            None => Err(u64::MAX),
        };
        if let Err(f) = mapped {
            if f != u64::MAX {
                k.frames.free_frame(f);
            }
            unmap_range(k, space, base, va);
            return Err(Error::OutOfMemory);
        }
        va += PAGE;
    }
    if let Some(t) = k.task_mut(task) {
        t.map_next = base + size;
    }
    Ok(base)
}

fn unmap_range(k: &mut Kernel, space: u64, from: u64, to: u64) {
    let mut va = from;
    while va < to {
        if let Some(f) = paging::unmap_user(space, va, &mut k.frames) {
            k.frames.free_frame(f);
        }
        va += PAGE;
    }
}

fn mem_unmap(k: &mut Kernel, task: usize, addr: u64, len: u64) -> KResult<()> {
    let t = k.task(task).ok_or(Error::NotFound)?;
    let (space, map_end) = (t.space, t.map_next);
    if len > abi::USER_END {
        return Err(Error::InvalidArgument);
    }
    let end = addr.checked_add(len.next_multiple_of(PAGE)).ok_or(Error::InvalidArgument)?;
    if len == 0 || !addr.is_multiple_of(PAGE) || addr < abi::USER_MAP_BASE || end > map_end {
        return Err(Error::InvalidArgument);
    }
    let mut va = addr;
    while va < end {
        if paging::translate_user(space, va).is_none() {
            return Err(Error::InvalidArgument);
        }
        va += PAGE;
    }
    unmap_range(k, space, addr, end);
    Ok(())
}

/// `Counter`: the value of counter number `n` (`InvalidArgument` for an
/// unknown number).
#[inline(always)]
pub fn counter_value(k: &Kernel, n: u64) -> KResult<u64> {
    match Counter::from_number(n) {
        None => Err(Error::InvalidArgument),
        Some(Counter::QueueFrames) => Ok(k.task(k.current_task()).map_or(0, |t| t.queue_frames as u64)),
        Some(c) => Ok(counter(k, c)),
    }
}

#[inline(never)]
fn counter(k: &Kernel, c: Counter) -> u64 {
    match c {
        Counter::FreeFrames => k.frames.bits.free_frames() as u64,
        Counter::TotalFrames => k.frames.bits.total_frames() as u64,
        Counter::Tasks => k.tasks.iter().flatten().filter(|t| t.exit.is_none()).count() as u64,
        Counter::Threads => k.threads.iter().skip(1).flatten().filter(|t| t.state != ThreadState::Dead).count() as u64,
        Counter::CapSlots => k.caps.slots_in_use() as u64,
        Counter::Ticks => k.ticks,
        Counter::Switches => k.switches,
        Counter::Endpoints => k.ipc.endpoint_count() as u64,
        Counter::RemappedPages => k.frames.remapped,
        Counter::CowCopies => k.frames.cow_copies,
        Counter::QueueFrames => 0, // per task: answered in `dispatch`
    }
}

fn task_spawn(k: &mut Kernel, task: usize, ptr: u64, len: u64, caps_ptr: u64, ncaps: u64) -> KResult<u64> {
    if len == 0 || len > abi::NAME_MAX as u64 || ncaps > abi::SPAWN_CAPS as u64 {
        return Err(Error::InvalidArgument);
    }
    let space = k.task(task).ok_or(Error::NotFound)?.space;
    let mut buf = [0u8; abi::NAME_MAX];
    let buf = &mut buf[..len as usize];
    paging::copy_from_user(space, ptr, buf).map_err(|_| Error::InvalidArgument)?;
    let name = core::str::from_utf8(buf).map_err(|_| Error::InvalidArgument)?;
    if k.specs.iter().any(|s| s.name == name && s.init) {
        // There is one init; starting another would end the system with it.
        return Err(Error::PermissionDenied);
    }
    let mut raw = [0u8; 8 * abi::SPAWN_CAPS];
    let raw = &mut raw[..8 * ncaps as usize];
    paging::copy_from_user(space, caps_ptr, raw).map_err(|_| Error::InvalidArgument)?;
    let mut caps = [0u64; abi::SPAWN_CAPS];
    for (i, c) in raw.chunks(8).enumerate() {
        caps[i] = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Passing a capability on needs GRANT (a reply token has none).
        if is_reply_token(caps[i]) {
            reply_token_check(k, task, caps[i])?;
            return Err(Error::PermissionDenied);
        }
        let cap = k.caps.lookup(task, caps[i]).map_err(Error::from)?;
        if cap.rights & rights::GRANT == 0 {
            return Err(Error::PermissionDenied);
        }
    }
    // Reserve the caller's slot first so a full table refuses before anything starts.
    if k.caps.slots_in_use_of(task).map_err(Error::from)? >= k.caps.slots_per_task() {
        return Err(Error::OutOfMemory);
    }
    let child = k.spawn(name)?;
    let mut given = [0u64; abi::SPAWN_CAPS];
    for i in 0..ncaps as usize {
        let rights = k.caps.lookup(task, caps[i]).map(|c| c.rights).unwrap_or(0);
        given[i] = k.caps.grant_to(task, caps[i], child, rights).map_err(Error::from)?;
    }
    k.set_start_args(child, ncaps, given);
    k.caps.insert_root(task, ObjectRef { kind: kind::TASK, id: child as u64 }, rights::ALL).map_err(Error::from)
}

fn task_wait(k: &mut Kernel, task: usize, token: u64) -> Outcome {
    let cap = match k.caps.check(task, token, kind::TASK, rights::READ) {
        Ok(c) => c,
        Err(e) => return Done(Err(e.into())),
    };
    let target = cap.object.id as usize;
    if target == task {
        return Done(Err(Error::InvalidArgument));
    }
    let cur = k.current();
    match k.task_mut(target) {
        None => Done(Err(Error::NotFound)),
        Some(t) => match t.exit {
            Some((kind, value)) => Done(Ok([kind, value, 0])),
            None => {
                t.waiters.push(cur);
                k.block_current(Wait::TaskEnd(target));
                Parked
            }
        },
    }
}
