//! Safe wrappers for Iris's system calls, one per call of [`abi::Sys`].
//! Each returns [`SyscallResult`]; the error values are [`SyscallError`]
//! (the VeridianOS names, defined in `abi`).

use abi::{Counter, Sys};
use core::arch::asm;

/// A syscall's error (`abi::Error`).
pub type SyscallError = abi::Error;
/// A syscall's result.
pub type SyscallResult<T> = Result<T, SyscallError>;

/// Issues a raw system call: number and six arguments in, status and three
/// result words out. Prefer the typed wrappers below.
///
/// # Errors
/// Whatever the kernel returns in `rax`; an unknown status is reported as
/// `InvalidSyscall`.
pub fn syscall(sys: u64, args: [u64; 6]) -> SyscallResult<[u64; 3]> {
    let (status, r0, r1, r2);
    // SAFETY: `syscall` enters the Iris kernel, which by the ABI preserves
    // every register except rax, rdi, rsi, rdx (results) and rcx, r11 (used
    // by the instruction), and reads only the memory that the call's
    // documented arguments name; it cannot violate Rust's memory model for
    // this task beyond what those arguments allow (writes only go to
    // buffers the caller passes as `&mut`).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") sys => status,
            inlateout("rdi") args[0] => r0,
            inlateout("rsi") args[1] => r1,
            inlateout("rdx") args[2] => r2,
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            out("rcx") _,
            out("r11") _,
            options(nostack)
        );
    }
    let _: u64 = status;
    if status == 0 {
        Ok([r0, r1, r2])
    } else {
        Err(abi::Error::from_code(status).unwrap_or(abi::Error::InvalidSyscall))
    }
}

fn call(sys: Sys, args: [u64; 6]) -> SyscallResult<[u64; 3]> {
    syscall(sys as u64, args)
}

/// Writes bytes to the console.
///
/// # Arguments
/// * `bytes` — at most [`abi::CONSOLE_MAX`] bytes.
///
/// # Errors
/// * `InvalidArgument` — longer than `CONSOLE_MAX`, or not readable memory.
///
/// # Example
/// ```no_run
/// sdk::sys::console_write(b"hello\n").unwrap();
/// ```
pub fn console_write(bytes: &[u8]) -> SyscallResult<()> {
    call(Sys::ConsoleWrite, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0]).map(|_| ())
}

/// Gives up the rest of the time slice to threads of the same priority.
///
/// # Example
/// ```no_run
/// sdk::sys::yield_now();
/// ```
pub fn yield_now() {
    let _ = call(Sys::Yield, [0; 6]);
}

/// Ends the whole task (every thread) with `code`. Whoever waits for the
/// task with [`task_wait`] gets `(abi::exit::EXITED, code)`.
pub fn task_exit(code: u64) -> ! {
    let _ = call(Sys::TaskExit, [code, 0, 0, 0, 0, 0]);
    unreachable_end()
}

/// Ends the calling thread; the task ends (with `code`) when its last
/// thread does.
pub fn thread_exit(code: u64) -> ! {
    let _ = call(Sys::ThreadExit, [code, 0, 0, 0, 0, 0]);
    unreachable_end()
}

fn unreachable_end() -> ! {
    // The kernel never returns from an exit; should it, loop rather than
    // run on.
    loop {
        core::hint::spin_loop();
    }
}

/// Creates a thread in this task, not yet running.
///
/// # Arguments
/// * `entry` — where it starts; receives `arg` as its argument.
/// * `stack_top` — the top of a stack the caller provides (e.g. from [`mem_map`]).
/// * `priority` — at most the task's priority from the manifest.
///
/// # Returns
/// A thread capability token with every right; start it with [`thread_start`].
///
/// # Errors
/// * `InvalidArgument` — entry or stack outside user space, priority too high.
/// * `OutOfMemory` — no memory for a kernel stack, or 64 threads already.
///
/// # Example
/// ```no_run
/// extern "C" fn worker(arg: u64) -> ! { sdk::sys::thread_exit(arg) }
/// let stack = sdk::sys::mem_map(16384, sdk::abi::map::WRITE).unwrap();
/// let t = sdk::sys::thread_create(worker, stack + 16384, 7, 1).unwrap();
/// sdk::sys::thread_start(t).unwrap();
/// ```
pub fn thread_create(entry: extern "C" fn(u64) -> !, stack_top: u64, arg: u64, priority: u8) -> SyscallResult<u64> {
    call(Sys::ThreadCreate, [entry as usize as u64, stack_top, arg, u64::from(priority), 0, 0]).map(|r| r[0])
}

/// Starts a created thread.
///
/// # Errors
/// * `NotFound` — the token is not a live capability of this task.
/// * `PermissionDenied` — not a thread capability, or no `EXECUTE` right.
/// * `InvalidState` — the thread was already started.
pub fn thread_start(thread: u64) -> SyscallResult<()> {
    call(Sys::ThreadStart, [thread, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Maps `len` bytes (rounded up to pages) of zeroed memory.
///
/// # Arguments
/// * `flags` — [`abi::map::WRITE`] and/or [`abi::map::EXECUTE`], not both.
///
/// # Returns
/// The address of the mapping.
///
/// # Errors
/// * `InvalidArgument` — `len` 0 or above [`abi::map::MAX_LEN`], unknown flags, W and X.
/// * `OutOfMemory` — no frames left (nothing stays mapped).
///
/// # Example
/// ```no_run
/// let a = sdk::sys::mem_map(8192, sdk::abi::map::WRITE).unwrap();
/// sdk::sys::mem_unmap(a, 8192).unwrap();
/// ```
pub fn mem_map(len: u64, flags: u64) -> SyscallResult<u64> {
    call(Sys::MemMap, [len, flags, 0, 0, 0, 0]).map(|r| r[0])
}

/// Unmaps pages obtained from [`mem_map`] and frees them.
///
/// # Errors
/// * `InvalidArgument` — unaligned, empty, outside the mapping area, or a page not mapped (nothing changes).
pub fn mem_unmap(addr: u64, len: u64) -> SyscallResult<()> {
    call(Sys::MemUnmap, [addr, len, 0, 0, 0, 0]).map(|_| ())
}

/// Copies a capability into a new slot of this task with the same rights
/// and badge; the copy is derived from the original (revoking the original
/// removes it).
///
/// # Errors
/// * `NotFound` — invalid, deleted or revoked token.
/// * `PermissionDenied` — no `GRANT` right.
/// * `OutOfMemory` — the table is full.
pub fn cap_copy(token: u64) -> SyscallResult<u64> {
    call(Sys::CapCopy, [token, 0, 0, 0, 0, 0]).map(|r| r[0])
}

/// Derives a capability with the rights `rights ∩ original` and `badge`.
///
/// # Errors
/// As [`cap_copy`].
///
/// # Example
/// ```no_run
/// # let token = 0;
/// let read_only = sdk::sys::cap_mint(token, sdk::abi::rights::READ, 42).unwrap();
/// ```
pub fn cap_mint(token: u64, rights: u64, badge: u64) -> SyscallResult<u64> {
    call(Sys::CapMint, [token, rights, badge, 0, 0, 0]).map(|r| r[0])
}

/// Deletes this capability slot. Capabilities derived from it stay valid
/// (they are re-attached to its parent).
///
/// # Errors
/// * `NotFound` — invalid, deleted or revoked token.
pub fn cap_delete(token: u64) -> SyscallResult<()> {
    call(Sys::CapDelete, [token, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Deletes every capability derived from this one, in every task; this one
/// stays.
///
/// # Returns
/// How many capabilities were deleted.
///
/// # Errors
/// * `NotFound` — invalid, deleted or revoked token.
/// * `PermissionDenied` — no `REVOKE` right.
pub fn cap_revoke(token: u64) -> SyscallResult<u64> {
    call(Sys::CapRevoke, [token, 0, 0, 0, 0, 0]).map(|r| r[0])
}

/// Describes a capability: `(object kind, rights, badge)`.
///
/// # Errors
/// * `NotFound` — invalid, deleted or revoked token.
pub fn cap_inspect(token: u64) -> SyscallResult<(u8, u64, u64)> {
    call(Sys::CapInspect, [token, 0, 0, 0, 0, 0]).map(|r| (r[0] as u8, r[1], r[2]))
}

/// Reads a kernel counter (free frames, tasks, …).
pub fn counter(c: Counter) -> u64 {
    call(Sys::Counter, [c as u64, 0, 0, 0, 0, 0]).map_or(u64::MAX, |r| r[0])
}

/// Starts a new instance of a task of the boot image, by name.
///
/// # Returns
/// A task capability token (all rights); wait for it with [`task_wait`].
///
/// # Errors
/// * `NotFound` — no task of that name in the manifest or the image.
/// * `InvalidArgument` — bad name buffer, or the task's ELF was refused.
/// * `OutOfMemory` — no memory for the task.
pub fn task_spawn(name: &str) -> SyscallResult<u64> {
    call(Sys::TaskSpawn, [name.as_ptr() as u64, name.len() as u64, 0, 0, 0, 0]).map(|r| r[0])
}

/// Blocks until a task has ended.
///
/// # Returns
/// `(kind, value)`: `(abi::exit::EXITED, code)` or `(abi::exit::FAULTED, vector)`.
///
/// # Errors
/// * `NotFound` — invalid or revoked token.
/// * `PermissionDenied` — not a task capability, or no `READ` right.
/// * `InvalidArgument` — the token names the caller's own task.
pub fn task_wait(task: u64) -> SyscallResult<(u64, u64)> {
    call(Sys::TaskWait, [task, 0, 0, 0, 0, 0]).map(|r| (r[0], r[1]))
}
