//! The lean syscall path. `syscall_entry` (in `arch-x86_64`) saves only
//! part of the caller's frame — rip, rflags, rsp, the FPU/SSE state and the
//! registers compiled code may clobber — and calls [`syscall`] here first.
//! It finishes two kinds of syscall without the general trap path:
//!
//! - the IPC fast paths (a call or reply-and-receive of a short message
//!   with no capabilities whose partner waits and may run now): the engine
//!   commits, the caller blocks and the kernel switches straight to the
//!   partner. The message registers are not copied: MR2–MR7 (`r12`–`r15`,
//!   `rbx`, `rbp`) stay in the CPU from the caller's `syscall` to the
//!   partner's return, and MR0/MR1 (`r8`, `r9`) are copied from one frame
//!   to the other;
//! - the queries `Counter` and `CapInspect`, which only read kernel state.
//!
//! Anything else returns 0 and the entry stub completes the frame for the
//! general path (`kernel::trap`), which gives the same results.

use crate::kernel::{with_kernel, Kernel};
use abi::{ipc as abi_ipc, Sys};
use arch_x86_64::trap::TrapFrame;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::ipc::{plain_len, FastPartner, SHORT_MAX};

/// The IPC fast paths take messages shorter than this: `SHORT_MAX + 1`
/// while they are on, 0 (nothing) while they are off — set once at boot,
/// off with `nofastpath` on the kernel command line or when built without
/// them. Checked before the kernel lock, so that a message the fast paths
/// cannot carry (long, or with capabilities), and every IPC while they are
/// off, goes straight to the general path.
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// Switches the IPC fast paths on or off (at boot).
pub fn enable(on: bool) {
    LIMIT.store(if on { SHORT_MAX as u64 + 1 } else { 0 }, Ordering::Relaxed);
}

/// Handles the syscall whose (partly saved) frame is `f` if it can; returns
/// the frame to resume with the lean exit, or 0 for the general path.
#[inline(always)]
pub fn syscall(f: &mut TrapFrame) -> u64 {
    const CALL: u64 = Sys::IpcCall as u64;
    const REPLY_RECEIVE: u64 = Sys::IpcReplyReceive as u64;
    const COUNTER: u64 = Sys::Counter as u64;
    const INSPECT: u64 = Sys::CapInspect as u64;
    let rax = f.rax;
    // The two IPC syscalls first, each with one compare of the message's
    // shape against the limit. (Only IPC calls carry bits above the
    // number.)
    let fast = |rax| {
        let len = plain_len(rax);
        (len < LIMIT.load(Ordering::Relaxed)).then_some(len as usize)
    };
    match rax & abi_ipc::NUMBER_MASK {
        CALL => fast(rax).map_or(0, |len| call(f, len)),
        REPLY_RECEIVE => fast(rax).map_or(0, |len| reply_receive(f, len)),
        COUNTER if rax == COUNTER => counter(f),
        INSPECT if rax == INSPECT => inspect(f),
        _ => 0,
    }
}

#[inline(never)]
fn counter(f: &mut TrapFrame) -> u64 {
    with_kernel(0, |k| {
        match crate::syscall::counter_value(k, f.rdi) {
            Ok(v) => {
                f.rax = 0;
                f.rdi = v;
                f.rsi = 0;
                f.rdx = 0;
            }
            Err(e) => f.rax = e as u64,
        }
        f as *mut TrapFrame as u64
    })
}

#[inline(never)]
fn inspect(f: &mut TrapFrame) -> u64 {
    with_kernel(0, |k| {
        let Some(r) = crate::syscall::query(k, Sys::CapInspect, f.rdi) else { return 0 };
        crate::kernel::write_result(f, r);
        f as *mut TrapFrame as u64
    })
}

#[inline(never)]
fn call(f: &mut TrapFrame, len: usize) -> u64 {
    ipc::<true>(f, len)
}

#[inline(never)]
fn reply_receive(f: &mut TrapFrame, len: usize) -> u64 {
    ipc::<false>(f, len)
}

/// One of the IPC fast paths (`CALL`: a call, else a reply-and-receive) of
/// a short message of `len` bytes without capabilities, inlined into each
/// of the two functions above.
#[inline(always)]
fn ipc<const CALL: bool>(f: &mut TrapFrame, len: usize) -> u64 {
    with_kernel(0, |k| match crate::ipc::try_fast(k, f, CALL, len) {
        Some((p, len)) => switch(k, f, &p, len),
        None => 0,
    })
}

/// The caller blocks; the partner gets its results and runs.
#[inline(always)]
fn switch(k: &mut Kernel, f: &TrapFrame, p: &FastPartner, len: usize) -> u64 {
    // (The caller blocks in a syscall: its frame's vector already says
    // so, see `TrapFrame::vector`.)
    k.fast_switch(p, [0, p.badge, p.reply, len as u64, f.r8, f.r9])
}
