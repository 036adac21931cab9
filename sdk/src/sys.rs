//! Safe wrappers for Iris's system calls: one function per call of
//! [`abi::Sys`], plus [`syscall`], the raw entry they are built on.
//!
//! The wrappers that can fail return [`SyscallResult`], whose error is a
//! [`SyscallError`] (the [`abi::Error`] codes, named as VeridianOS's
//! `SyscallError`). The others have no failure to report: [`yield_now`]
//! returns `()`, [`counter`] returns the value directly, and [`task_exit`] and
//! [`thread_exit`] never return. A call that fails leaves nothing half-done.
//!
//! Every function documents its arguments, its result, each error the kernel
//! can return for it together with the condition that causes it, and an
//! example. The register convention is in the `abi` crate and
//! `docs/abi.md`.

use abi::{Counter, Sys};
use core::arch::asm;

/// A syscall's error (`abi::Error`).
pub type SyscallError = abi::Error;
/// A syscall's result.
pub type SyscallResult<T> = Result<T, SyscallError>;

/// Issues a raw system call.
///
/// Loads the call number into `rax` and the six arguments into `rdi`, `rsi`,
/// `rdx`, `r10`, `r8` and `r9`, executes `syscall`, and decodes the status
/// the kernel leaves in `rax`. On success the three result words are those
/// the kernel writes to `rdi`, `rsi` and `rdx` (a call that defines fewer
/// results leaves the rest unspecified). Arguments that a call does not use
/// are ignored. Prefer the typed wrappers in this module: they pass the
/// arguments each call expects and decode its results.
///
/// # Arguments
/// * `sys` — the call number, an [`abi::Sys`] value as `u64`.
/// * `args` — arguments 0–5, in the order the call defines them.
///
/// # Returns
/// The three result words `[rdi, rsi, rdx]` of a successful call.
///
/// # Errors
/// * `InvalidSyscall` — `sys` is not a call the kernel knows (no number of
///   [`abi::Sys`]), or the kernel returned a status that is not a known
///   [`abi::Error`] code.
/// * Any other error — as documented for the call `sys` names (see the typed
///   wrapper of that call).
///
/// # Examples
/// ```no_run
/// use sdk::abi::{Counter, Sys};
/// let [ticks, _, _] = sdk::sys::syscall(Sys::Counter as u64, [Counter::Ticks as u64, 0, 0, 0, 0, 0]).unwrap();
/// assert_eq!(
///     sdk::sys::syscall(sdk::abi::SYS_COUNT, [0; 6]),
///     Err(sdk::abi::Error::InvalidSyscall)
/// );
/// # let _ = ticks;
/// ```
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
/// The kernel copies the whole buffer from the caller's memory first and then
/// writes the bytes, unchanged and in one piece, to the serial console; on an
/// error nothing is written. Bytes need not be UTF-8. An empty slice succeeds
/// and writes nothing. Longer output must be split into several calls (the
/// `print!` machinery of this crate does so).
///
/// # Arguments
/// * `bytes` — the bytes to write, at most [`abi::CONSOLE_MAX`] (4096).
///
/// # Returns
/// `()` once the bytes are written.
///
/// # Errors
/// * `InvalidArgument` — `bytes` is longer than [`abi::CONSOLE_MAX`]; or part
///   of it is not in memory mapped for user access in the caller's address
///   space (cannot happen for a valid slice).
///
/// # Examples
/// ```no_run
/// sdk::sys::console_write(b"hello\n").unwrap();
/// let too_long = [b'x'; sdk::abi::CONSOLE_MAX as usize + 1];
/// assert_eq!(sdk::sys::console_write(&too_long), Err(sdk::abi::Error::InvalidArgument));
/// ```
pub fn console_write(bytes: &[u8]) -> SyscallResult<()> {
    call(Sys::ConsoleWrite, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0]).map(|_| ())
}

/// Gives up the rest of the time slice to threads of the same priority.
///
/// The calling thread goes to the back of the ready queue of its priority, and
/// the next ready thread of that priority runs. Only threads of the same
/// priority gain anything: a ready thread of higher priority would already
/// have preempted the caller, and threads of lower priority never run while
/// this one is runnable. When no other thread of the same priority is ready,
/// the call returns at once. The timer (100 Hz) also rotates threads of equal
/// priority, so yielding only ends the current slice early.
///
/// # Arguments
/// None.
///
/// # Returns
/// Nothing, once the caller is scheduled again.
///
/// # Errors
/// None.
///
/// # Examples
/// ```no_run
/// use core::sync::atomic::{AtomicBool, Ordering};
/// static DONE: AtomicBool = AtomicBool::new(false);
/// // Wait for a thread of the same priority to set `DONE`.
/// while !DONE.load(Ordering::Acquire) {
///     sdk::sys::yield_now();
/// }
/// ```
pub fn yield_now() {
    let _ = call(Sys::Yield, [0; 6]);
}

/// Ends the whole calling task with an exit code.
///
/// Every thread of the task ends, including threads created but not started;
/// the capabilities naming them are deleted everywhere, as is every
/// capability the task held (capabilities derived from them elsewhere stay
/// valid, attached to the nearest surviving ancestor). The task's memory is
/// freed. Every thread waiting for the task in [`task_wait`] wakes with
/// `(abi::exit::EXITED, code)`, and so does any later [`task_wait`] through a
/// token that still names the task. If the caller is the init task, the
/// system shuts down (under QEMU: exit status 0 if `code` is 0, else 3). The
/// [`entry!`](crate::entry) macro calls this with `main`'s return value.
///
/// # Arguments
/// * `code` — the exit code reported to waiters.
///
/// # Returns
/// Never returns.
///
/// # Errors
/// None.
///
/// # Examples
/// ```no_run
/// if sdk::sys::console_write(b"bye\n").is_err() {
///     sdk::sys::task_exit(1);
/// }
/// sdk::sys::task_exit(0);
/// ```
pub fn task_exit(code: u64) -> ! {
    let _ = call(Sys::TaskExit, [code, 0, 0, 0, 0, 0]);
    unreachable_end()
}

/// Ends the calling thread.
///
/// The thread stops for good, and every capability naming it (in any task) is
/// deleted. The rest of the task goes on; when the caller was the task's last
/// thread, the task ends as by [`task_exit`] with this `code`, otherwise the
/// code is discarded. Threads created with [`thread_create`] but never
/// started count as threads of the task: while one exists, the task does not
/// end. The thread's stack is not unmapped.
///
/// # Arguments
/// * `code` — the task's exit code if this is its last thread; otherwise
///   ignored.
///
/// # Returns
/// Never returns.
///
/// # Errors
/// None.
///
/// # Examples
/// ```no_run
/// extern "C" fn worker(arg: u64) -> ! {
///     // … work with `arg` …
///     sdk::sys::thread_exit(arg)
/// }
/// ```
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

/// Creates a thread in the calling task, not yet running.
///
/// The new thread shares the task's address space and capabilities. Once
/// started with [`thread_start`], it begins at `entry` with `arg` as its
/// argument (in `rdi`), interrupts enabled, and `rsp` set to `stack_top`
/// rounded down to 16 bytes minus 8, as a function entry expects. The kernel
/// does not check that `entry` is code or that the stack is mapped and
/// writable: if not, the thread faults when it runs, which ends the whole
/// task. The stack memory must not be used by anything else while the thread
/// runs. The thread has its own 16 KiB kernel stack and counts towards the
/// task's limit of 64 threads until it ends.
///
/// # Arguments
/// * `entry` — the function the thread runs; it receives `arg` and must end
///   with [`thread_exit`] or [`task_exit`].
/// * `stack_top` — one past the highest byte of a stack the caller provides
///   (e.g. from [`mem_map`]); within [`abi::USER_MIN`]`..=`[`abi::USER_END`].
/// * `arg` — the value passed to `entry`.
/// * `priority` — the thread's priority, from 0 (lowest) to the task's
///   priority in the manifest.
///
/// # Returns
/// A token for a new thread capability with every right ([`abi::rights::ALL`])
/// and badge 0; start the thread with [`thread_start`]. The capability is
/// deleted when the thread ends.
///
/// # Errors
/// * `InvalidArgument` — `entry` is outside
///   [`abi::USER_MIN`]`..`[`abi::USER_END`]; `stack_top` is outside
///   [`abi::USER_MIN`]`..=`[`abi::USER_END`]; or `priority` is higher than
///   the task's priority in the manifest.
/// * `OutOfMemory` — the task already has 64 threads (started or not); no
///   physical memory is left for the thread's kernel stack; or the task's
///   capability table (256 slots) is full. Nothing is created.
///
/// # Examples
/// ```no_run
/// extern "C" fn worker(arg: u64) -> ! {
///     sdk::sys::thread_exit(arg)
/// }
/// let stack = sdk::sys::mem_map(16384, sdk::abi::map::WRITE).unwrap();
/// let t = sdk::sys::thread_create(worker, stack + 16384, 7, 1).unwrap();
/// sdk::sys::thread_start(t).unwrap();
/// ```
pub fn thread_create(entry: extern "C" fn(u64) -> !, stack_top: u64, arg: u64, priority: u8) -> SyscallResult<u64> {
    call(Sys::ThreadCreate, [entry as usize as u64, stack_top, arg, u64::from(priority), 0, 0]).map(|r| r[0])
}

/// Starts a thread created by [`thread_create`].
///
/// The thread becomes ready and joins the back of the ready queue of its
/// priority. If its priority is higher than the caller's, it runs at once,
/// before the caller returns from this call; otherwise it runs when the
/// scheduler reaches it. A thread can be started only once.
///
/// # Arguments
/// * `thread` — a thread token of the calling task with the
///   [`abi::rights::EXECUTE`] right.
///
/// # Returns
/// `()` once the thread is ready.
///
/// # Errors
/// * `NotFound` — `thread` does not name a live capability of the calling
///   task: never issued, deleted, revoked, or the thread has ended (its
///   capabilities are deleted with it).
/// * `PermissionDenied` — the capability names something other than a thread,
///   or lacks the `EXECUTE` right.
/// * `InvalidState` — the thread was already started.
///
/// # Examples
/// ```no_run
/// extern "C" fn worker(_: u64) -> ! {
///     sdk::sys::thread_exit(0)
/// }
/// let stack = sdk::sys::mem_map(16384, sdk::abi::map::WRITE).unwrap();
/// let t = sdk::sys::thread_create(worker, stack + 16384, 0, 0).unwrap();
/// sdk::sys::thread_start(t).unwrap();
/// assert_eq!(sdk::sys::thread_start(t), Err(sdk::abi::Error::InvalidState));
/// ```
pub fn thread_start(thread: u64) -> SyscallResult<()> {
    call(Sys::ThreadStart, [thread, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Maps fresh zeroed memory into the calling task.
///
/// Rounds `len` up to whole pages ([`abi::PAGE_SIZE`]) and maps that many
/// newly allocated, zeroed pages at the next free address of the task's
/// mapping area, which starts at [`abi::USER_MAP_BASE`] and grows upward.
/// Consecutive mappings are adjacent, and addresses are never handed out
/// twice, even after [`mem_unmap`]. Pages are readable; writable with
/// [`abi::map::WRITE`]; executable only with [`abi::map::EXECUTE`]. Flags 0
/// give read-only, non-executable memory.
///
/// # Arguments
/// * `len` — the size in bytes, from 1 to [`abi::map::MAX_LEN`] (64 MiB).
/// * `flags` — [`abi::map::WRITE`] and/or [`abi::map::EXECUTE`], not both.
///
/// # Returns
/// The page-aligned address of the first byte of the mapping.
///
/// # Errors
/// * `InvalidArgument` — `len` is 0 or above [`abi::map::MAX_LEN`]; `flags`
///   has a bit other than `WRITE` and `EXECUTE`; or `flags` has both.
/// * `OutOfMemory` — no physical memory is left for the pages or the page
///   tables, or the mapping would reach the main thread's stack; nothing stays
///   mapped.
///
/// # Examples
/// ```no_run
/// let a = sdk::sys::mem_map(8192, sdk::abi::map::WRITE).unwrap();
/// sdk::sys::mem_unmap(a, 8192).unwrap();
/// ```
pub fn mem_map(len: u64, flags: u64) -> SyscallResult<u64> {
    call(Sys::MemMap, [len, flags, 0, 0, 0, 0]).map(|r| r[0])
}

/// Unmaps memory obtained from [`mem_map`] and frees it.
///
/// Rounds `len` up to whole pages and unmaps every page of
/// `addr..addr + len`, freeing the frames and any page table left empty. The
/// range may cover part of one mapping or several adjacent mappings. It
/// either succeeds for every page or changes nothing. The addresses are not
/// reused; touching them afterwards faults, which ends the task.
///
/// # Arguments
/// * `addr` — the first address to unmap; page-aligned.
/// * `len` — the number of bytes, rounded up to whole pages; not 0.
///
/// # Returns
/// `()` once the pages are unmapped.
///
/// # Errors
/// * `InvalidArgument` — `len` is 0; `addr` is not page-aligned; the range
///   does not lie inside the area [`mem_map`] has used so far (starts below
///   [`abi::USER_MAP_BASE`] or ends past the end of the latest mapping, or
///   `addr + len` overflows); or a page in the range is not mapped (never
///   mapped or already unmapped).
///
/// # Examples
/// ```no_run
/// let a = sdk::sys::mem_map(3 * 4096, sdk::abi::map::WRITE).unwrap();
/// sdk::sys::mem_unmap(a + 4096, 4096).unwrap(); // the middle page only
/// assert_eq!(sdk::sys::mem_unmap(a, 3 * 4096), Err(sdk::abi::Error::InvalidArgument));
/// ```
pub fn mem_unmap(addr: u64, len: u64) -> SyscallResult<()> {
    call(Sys::MemUnmap, [addr, len, 0, 0, 0, 0]).map(|_| ())
}

/// Copies a capability into a new slot of the calling task.
///
/// The copy names the same object with the same rights and badge. It is a
/// child of the original in the derivation tree: revoking the original (or an
/// ancestor) deletes the copy; deleting the original does not.
///
/// # Arguments
/// * `token` — a token of the calling task with the [`abi::rights::GRANT`]
///   right.
///
/// # Returns
/// The token of the new capability.
///
/// # Errors
/// * `NotFound` — `token` does not name a live capability of the calling
///   task: never issued, deleted or revoked.
/// * `PermissionDenied` — the capability lacks the `GRANT` right.
/// * `OutOfMemory` — the task's capability table (256 slots) is full.
///
/// # Examples
/// ```no_run
/// let task = sdk::sys::task_spawn("hello").unwrap();
/// let copy = sdk::sys::cap_copy(task).unwrap();
/// assert_eq!(sdk::sys::cap_inspect(copy), sdk::sys::cap_inspect(task));
/// ```
pub fn cap_copy(token: u64) -> SyscallResult<u64> {
    call(Sys::CapCopy, [token, 0, 0, 0, 0, 0]).map(|r| r[0])
}

/// Derives a capability with fewer rights and a badge.
///
/// Puts a new capability into a free slot of the calling task. It names the
/// same object, holds the rights both the original and `rights` have (rights
/// never grow; bits the original lacks are dropped without error), and
/// carries `badge`. Like a copy it is a child of the original: revoking the
/// original deletes it.
///
/// # Arguments
/// * `token` — a token of the calling task with the [`abi::rights::GRANT`]
///   right.
/// * `rights` — the rights wanted, a set of [`abi::rights`] bits.
/// * `badge` — any value, reported by [`cap_inspect`].
///
/// # Returns
/// The token of the new capability.
///
/// # Errors
/// * `NotFound` — `token` does not name a live capability of the calling
///   task: never issued, deleted or revoked.
/// * `PermissionDenied` — the capability lacks the `GRANT` right.
/// * `OutOfMemory` — the task's capability table (256 slots) is full.
///
/// # Examples
/// ```no_run
/// use sdk::abi::rights;
/// let task = sdk::sys::task_spawn("hello").unwrap();
/// let read_only = sdk::sys::cap_mint(task, rights::READ, 42).unwrap();
/// assert_eq!(sdk::sys::cap_inspect(read_only).unwrap().1, rights::READ);
/// ```
pub fn cap_mint(token: u64, rights: u64, badge: u64) -> SyscallResult<u64> {
    call(Sys::CapMint, [token, rights, badge, 0, 0, 0]).map(|r| r[0])
}

/// Deletes one capability of the calling task.
///
/// Needs no right. The slot is freed and `token` is dead from then on (the
/// slot's generation advances, so a later capability in the same slot gets a
/// different token). Capabilities derived from the deleted one stay valid:
/// they are re-attached to its parent. Deleting a capability does not affect
/// the object: a thread keeps running and a task keeps living. Deleting the
/// last capability naming an ended task discards its exit status.
///
/// # Arguments
/// * `token` — a token of the calling task.
///
/// # Returns
/// `()` once the capability is deleted.
///
/// # Errors
/// * `NotFound` — `token` does not name a live capability of the calling
///   task: never issued, deleted or revoked.
///
/// # Examples
/// ```no_run
/// let task = sdk::sys::task_spawn("hello").unwrap();
/// sdk::sys::task_wait(task).unwrap();
/// sdk::sys::cap_delete(task).unwrap();
/// assert_eq!(sdk::sys::cap_delete(task), Err(sdk::abi::Error::NotFound));
/// ```
pub fn cap_delete(token: u64) -> SyscallResult<()> {
    call(Sys::CapDelete, [token, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Deletes every capability derived from this one.
///
/// Removes, in every task, every capability copied or minted from `token`,
/// directly or indirectly. The capability `token` names stays, with its
/// rights. Like [`cap_delete`], revoking affects no object itself.
///
/// # Arguments
/// * `token` — a token of the calling task with the [`abi::rights::REVOKE`]
///   right.
///
/// # Returns
/// How many capabilities were deleted (0 if none was derived).
///
/// # Errors
/// * `NotFound` — `token` does not name a live capability of the calling
///   task: never issued, deleted or revoked.
/// * `PermissionDenied` — the capability lacks the `REVOKE` right.
///
/// # Examples
/// ```no_run
/// let task = sdk::sys::task_spawn("hello").unwrap();
/// let copy = sdk::sys::cap_copy(task).unwrap();
/// assert_eq!(sdk::sys::cap_revoke(task), Ok(1));
/// assert_eq!(sdk::sys::cap_inspect(copy), Err(sdk::abi::Error::NotFound));
/// ```
pub fn cap_revoke(token: u64) -> SyscallResult<u64> {
    call(Sys::CapRevoke, [token, 0, 0, 0, 0, 0]).map(|r| r[0])
}

/// Describes a capability of the calling task.
///
/// Needs no right and changes nothing.
///
/// # Arguments
/// * `token` — a token of the calling task.
///
/// # Returns
/// `(kind, rights, badge)`: the object kind (one of [`abi::kind`]), the
/// rights held (a set of [`abi::rights`] bits) and the badge (0 unless
/// minted with one).
///
/// # Errors
/// * `NotFound` — `token` does not name a live capability of the calling
///   task: never issued, deleted or revoked.
///
/// # Examples
/// ```no_run
/// use sdk::abi::{kind, rights};
/// let task = sdk::sys::task_spawn("hello").unwrap();
/// assert_eq!(sdk::sys::cap_inspect(task), Ok((kind::TASK, rights::ALL, 0)));
/// ```
pub fn cap_inspect(token: u64) -> SyscallResult<(u8, u64, u64)> {
    call(Sys::CapInspect, [token, 0, 0, 0, 0, 0]).map(|r| (r[0] as u8, r[1], r[2]))
}

/// Reads a kernel counter.
///
/// Returns the current value of one of the kernel's counters, as described
/// at [`abi::Counter`]: free and total physical frames, live tasks, live
/// threads (the idle thread excluded, threads not yet started included),
/// capability slots in use over all tasks, timer ticks since boot (100 per
/// second), context switches since boot. Needs no capability.
///
/// # Arguments
/// * `c` — which counter to read.
///
/// # Returns
/// The counter's value, or `u64::MAX` if the kernel refused the call.
///
/// # Errors
/// None: the kernel's only error, `InvalidArgument` for an unknown counter
/// number, cannot arise from a [`Counter`] value; any error would be reported
/// as `u64::MAX`.
///
/// # Examples
/// ```no_run
/// use sdk::abi::Counter;
/// let free = sdk::sys::counter(Counter::FreeFrames);
/// sdk::println!("{} KiB free", free * 4);
/// ```
pub fn counter(c: Counter) -> u64 {
    call(Sys::Counter, [c as u64, 0, 0, 0, 0, 0]).map_or(u64::MAX, |r| r[0])
}

/// Starts a new instance of a task of the boot image, by name.
///
/// Looks `name` up in the manifest, checks and loads the boot-image file of
/// that name into a new address space, and makes its main thread ready at the
/// priority the manifest gives the task (whatever the caller's priority; if
/// it is higher, the new task runs before this call returns). Any task of the
/// manifest can be spawned, whether or not it starts at boot, any number of
/// times; no capability is needed. Spawning the manifest's init task starts
/// another init task, whose end shuts the system down. Reasons for refusing
/// the file are reported on the console.
///
/// # Arguments
/// * `name` — the task's name in the manifest, 1 to [`abi::NAME_MAX`] (32)
///   bytes.
///
/// # Returns
/// A token for a new task capability with every right ([`abi::rights::ALL`])
/// and badge 0; wait for the task with [`task_wait`]. The capability outlives
/// the task, so that [`task_wait`] can report how it ended.
///
/// # Errors
/// * `NotFound` — no task of that name in the manifest, or no file of that
///   name in the boot image.
/// * `InvalidArgument` — a bad name buffer: length 0 or above
///   [`abi::NAME_MAX`], not readable user memory, or not UTF-8 (the last two
///   cannot happen for a `&str`); or the kernel refused the task's ELF file.
/// * `OutOfMemory` — the caller's capability table (256 slots) is full, or no
///   physical memory is left for the task's address space, page tables,
///   segments, 64 KiB stack or kernel stack. Nothing is started.
///
/// # Examples
/// ```no_run
/// use sdk::abi::{exit, Error};
/// let task = sdk::sys::task_spawn("hello").unwrap();
/// assert_eq!(sdk::sys::task_wait(task), Ok((exit::EXITED, 0)));
/// assert_eq!(sdk::sys::task_spawn("no-such-task"), Err(Error::NotFound));
/// ```
pub fn task_spawn(name: &str) -> SyscallResult<u64> {
    task_spawn_with(name, &[])
}

/// Starts a task of the boot image and passes it capabilities.
///
/// Like [`task_spawn`]; in addition each token in `caps` (which needs
/// `GRANT`) is copied, with the same rights and badge, into the new task's
/// table before it starts, derived from the original (revoking the original
/// reaches the copy). The new task reads them with [`crate::startup_caps`].
///
/// # Arguments
/// * `name` — the task's name in the manifest.
/// * `caps` — up to 4 capability tokens of this task.
///
/// # Returns
/// A task capability token (all rights).
///
/// # Errors
/// As [`task_spawn`]; plus `InvalidArgument` (more than 4 capabilities),
/// `NotFound` (a token is not a live capability of this task) and
/// `PermissionDenied` (a capability lacks `GRANT`, or `name` is the init task).
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::{sys_endpoint_create, EndpointKind};
/// let ep = sys_endpoint_create(EndpointKind::Sync, 0).unwrap();
/// let server = sdk::sys::task_spawn_with("echo-server", &[ep]).unwrap();
/// ```
pub fn task_spawn_with(name: &str, caps: &[u64]) -> SyscallResult<u64> {
    call(Sys::TaskSpawn, [name.as_ptr() as u64, name.len() as u64, caps.as_ptr() as u64, caps.len() as u64, 0, 0])
        .map(|r| r[0])
}

/// Blocks until a task has ended and reports how it ended.
///
/// If the task has already ended, returns at once; otherwise the calling
/// thread blocks, without timeout, until it ends (other threads of the caller
/// keep running). Any number of threads may wait for the same task. The token
/// stays valid afterwards and every later call returns the same result, until
/// the token is deleted.
///
/// # Arguments
/// * `task` — a task token of the calling task with the
///   [`abi::rights::READ`] right, naming another task.
///
/// # Returns
/// `(kind, value)`: `(abi::exit::EXITED, code)` when the task exited (by
/// [`task_exit`] or its last thread's [`thread_exit`]; a panic exits with
/// [`abi::exit::PANIC_CODE`]), or `(abi::exit::FAULTED, vector)` when a CPU
/// exception with that vector ended it.
///
/// # Errors
/// * `NotFound` — `task` does not name a live capability of the calling task:
///   never issued, deleted or revoked.
/// * `PermissionDenied` — the capability names something other than a task,
///   or lacks the `READ` right.
/// * `InvalidArgument` — the token names the caller's own task.
///
/// # Examples
/// ```no_run
/// use sdk::abi::exit;
/// let task = sdk::sys::task_spawn("hello").unwrap();
/// match sdk::sys::task_wait(task).unwrap() {
///     (exit::EXITED, code) => sdk::println!("exited with {}", code),
///     (_, vector) => sdk::println!("faulted with vector {}", vector),
/// }
/// sdk::sys::cap_delete(task).unwrap();
/// ```
pub fn task_wait(task: u64) -> SyscallResult<(u64, u64)> {
    call(Sys::TaskWait, [task, 0, 0, 0, 0, 0]).map(|r| (r[0], r[1]))
}
