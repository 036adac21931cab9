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

use crate::kernel::Kernel;
use abi::{ipc as abi_ipc, Sys};
use arch_x86_64::trap::TrapFrame;

/// Handles the syscall whose (partly saved) frame is `f` if it can; returns
/// the frame to resume with the lean exit, or 0 for the general path.
pub fn syscall(k: &mut Kernel, f: &mut TrapFrame) -> u64 {
    let number = f.rax & abi_ipc::NUMBER_MASK;
    if number == Sys::IpcCall as u64 || number == Sys::IpcReplyReceive as u64 {
        return ipc(k, f, number == Sys::IpcCall as u64);
    }
    // Only IPC calls carry bits above the number (the general path refuses
    // them).
    if f.rax >> 8 != 0 {
        return 0;
    }
    let Some(r) = Sys::from_number(number).and_then(|sys| crate::syscall::query(k, sys, f.rdi)) else { return 0 };
    crate::kernel::write_result(f, r);
    f as *mut TrapFrame as u64
}

fn ipc(k: &mut Kernel, f: &TrapFrame, call: bool) -> u64 {
    let ready = k.ready_highest();
    let Some((p, len)) = crate::ipc::try_fast(k, f, call, ready) else { return 0 };
    let (mr0, mr1) = (f.r8, f.r9);
    k.fast_switch(&p, |pf| {
        pf.rax = 0;
        pf.rdi = p.badge;
        pf.rsi = p.reply;
        pf.rdx = len as u64;
        pf.r8 = mr0;
        pf.r9 = mr1;
    })
}
