//! Init of the "bench" system: the IPC benchmark that `cargo xtask bench`
//! boots under QEMU with `-icount shift=0,align=off`, where `rdtsc` counts
//! guest instructions exactly. For each operation it prints
//!
//! `bench: <operation> <user|kernel> min=<n> median=<n> iters=<n>`
//!
//! in guest instructions, over `iters` measured iterations after a warm-up:
//!
//! * `user` — the user-visible cost: `rdtsc` around the SDK call, minus the
//!   cost of back-to-back `rdtsc`s. For calls the server is an SDK
//!   reply-and-receive loop, so its user code is included.
//! * `kernel` — the kernel path: from the `syscall` instruction (counted)
//!   to the first user instruction after the return (not counted). Inline
//!   assembly reads `rdtsc`, loads the registers, executes `syscall`, then
//!   reads `rdtsc`; the same sequence with a `nop` in place of each
//!   `syscall` gives the fixed overhead, subtracted exactly. For calls the
//!   server is a fixed assembly loop whose 6 user instructions between its
//!   system calls are subtracted too, so a round trip counts exactly the
//!   instructions executed in kernel mode plus the two `syscall`s.
//!
//! The `-fresh` remap figures write one byte in every page of the client's
//! send and reply buffers before each call, so that no page is already
//! mapped as the remap would leave it: inside the user figure (the writes
//! and their copy-on-write faults count), before the timed assembly for the
//! kernel figure (they do not).
//!
//! It also prints `bench: remap <operation> <variant> pages=<n>
//! expected=<n>` (the `RemappedPages` counter over the warm-up and measured
//! calls of a figure), for the `-fresh` figures `bench: cow <operation>
//! <variant> copies=<n> expected=<n>` (the `CowCopies` counter over the
//! measured calls), and ends with `bench: done`. Any failure prints `bench: FAILED: …` and
//! exits with 1. Nothing here waits on a timer or lets the CPU idle, so a
//! run is the same instruction for instruction every time.
#![no_std]
#![no_main]

use apps::{bench_serve, rdtsc, ServeMode, BENCH_MAX, BENCH_REGION, SERVE_LOOP_USER_INSNS};
use core::arch::asm;
use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};
use sdk::abi::{exit, ipc as ipc_abi, map, rights, Counter, Sys};
use sdk::syscall_api::*;
use sdk::{println, sys, SyscallError};

sdk::entry!(main);

/// Iterations before measuring.
const WARMUP: usize = 100;
/// Measured iterations of register-sized operations.
const ITERS: usize = 2000;
/// Measured iterations of calls with long messages.
const ITERS_LARGE: usize = 1000;
/// Priority of this task in the manifest (the main thread's).
const MAIN_PRIO: u8 = 12;
/// Offset within a page of the server's buffers in the copy variants (the
/// client's are page-aligned): different offsets are always copied.
const COPY_OFFSET: usize = 64;
/// Size of a helper thread's stack.
const STACK: u64 = 32 * 1024;

/// Ends the benchmark with a failure.
fn fail(what: &str, why: impl core::fmt::Debug) -> ! {
    println!("bench: FAILED: {}: {:?}", what, why);
    sys::task_exit(1)
}

fn region(len: usize) -> &'static mut [u8] {
    match sys::mem_map(len as u64, map::WRITE) {
        // SAFETY: a fresh writable mapping of `len` bytes, never unmapped,
        // used only through this slice (and by helper threads that get its
        // address while the main thread does not touch it).
        Ok(a) => unsafe { core::slice::from_raw_parts_mut(a as *mut u8, len) },
        Err(e) => fail("mapping memory", e),
    }
}

/// Storage for the samples of one figure.
struct Samples(&'static mut [u64]);

impl Samples {
    /// Prints min and median of the first `n` samples.
    fn report(&mut self, op: &str, variant: &str, n: usize) {
        let s = &mut self.0[..n];
        s.sort_unstable();
        println!("bench: {} {} min={} median={} iters={}", op, variant, s[0], s[n / 2], n);
    }
}

// ----- the timed assembly sequences -----

/// Registers of one timed system call: `rax` (number and IPC lengths),
/// `rdi` (token or argument), `r10` (receive buffer), `r8` (MR0: first
/// message word, or the address of a long message).
#[derive(Clone, Copy, Default)]
struct Regs {
    rax: u64,
    rdi: u64,
    r10: u64,
    r8: u64,
}

/// Defines a function that runs `rdtsc`, stores it at `t0` (two 32-bit
/// stores), loads rax and rdx (timeout: never), executes `$insn` (`syscall`
/// or, for calibration, `nop`), keeps the status, and reads `rdtsc` again.
/// Returns (second `rdtsc`, status). rbx and rbp, message registers the
/// kernel writes on return, are saved and restored outside the timed part.
macro_rules! timed_one {
    ($name:ident, $insn:literal) => {
        #[inline(never)]
        fn $name(r: Regs, t0: *mut u64) -> (u64, u64) {
            let (lo, hi, status): (u64, u64, u64);
            // SAFETY: the system call's buffers (r8 for a long message, r10
            // for a receive) are the caller's live buffers; `t0` points to a
            // writable u64. Every register the kernel writes is an output or
            // clobber, rbx/rbp are saved on the stack and restored.
            unsafe {
                asm!(
                    "push rbp",
                    "push rbx",
                    "rdtsc",
                    "mov [r11], eax",
                    "mov [r11 + 4], edx",
                    "mov rax, rcx",
                    "mov rdx, -1",
                    $insn,
                    "mov r11, rax",
                    "rdtsc",
                    "pop rbx",
                    "pop rbp",
                    inout("rcx") r.rax => _,
                    inout("rdi") r.rdi => _,
                    inout("r10") r.r10 => _,
                    inout("r8") r.r8 => _,
                    inout("r11") t0 => status,
                    out("rax") lo,
                    out("rdx") hi,
                    out("rsi") _,
                    out("r9") _,
                    out("r12") _,
                    out("r13") _,
                    out("r14") _,
                    out("r15") _,
                );
            }
            ((hi << 32) | lo, status)
        }
    };
}

timed_one!(timed_syscall, "syscall");
timed_one!(timed_nop, "nop");

/// Like `timed_one`, with two system calls on the same token: the first
/// with `r.rax`, the second with `second` in rax and a zero timeout. The
/// status is the second's.
macro_rules! timed_two {
    ($name:ident, $insn:literal) => {
        #[inline(never)]
        fn $name(r: Regs, second: u64, t0: *mut u64) -> (u64, u64) {
            let (lo, hi, status): (u64, u64, u64);
            // SAFETY: as for `timed_one`; the two words pushed are popped.
            unsafe {
                asm!(
                    "push rbp",
                    "push rbx",
                    "push rsi",
                    "push rdi",
                    "rdtsc",
                    "mov [r11], eax",
                    "mov [r11 + 4], edx",
                    "mov rax, rcx",
                    "mov rdx, -1",
                    $insn,
                    "mov rax, [rsp + 8]",
                    "mov rdi, [rsp]",
                    "xor edx, edx",
                    $insn,
                    "mov r11, rax",
                    "rdtsc",
                    "add rsp, 16",
                    "pop rbx",
                    "pop rbp",
                    inout("rcx") r.rax => _,
                    inout("rdi") r.rdi => _,
                    inout("rsi") second => _,
                    inout("r10") r.r10 => _,
                    inout("r8") r.r8 => _,
                    inout("r11") t0 => status,
                    out("rax") lo,
                    out("rdx") hi,
                    out("r9") _,
                    out("r12") _,
                    out("r13") _,
                    out("r14") _,
                    out("r15") _,
                );
            }
            ((hi << 32) | lo, status)
        }
    };
}

timed_two!(timed_two_syscalls, "syscall");
timed_two!(timed_two_nops, "nop");

/// The fixed costs subtracted from every sample.
struct Calibration {
    /// Back-to-back `rdtsc()` (user-visible figures).
    rdtsc: u64,
    /// `rdtsc()`, a store of it, `rdtsc()` (the one-way user-visible figure).
    rdtsc_store: u64,
    /// `timed_one` with a `nop`.
    one: u64,
    /// `timed_two` with two `nop`s.
    two: u64,
}

fn calibrate() -> Calibration {
    let slot = AtomicU64::new(0);
    let (mut c, mut t0) = (Calibration { rdtsc: u64::MAX, rdtsc_store: u64::MAX, one: u64::MAX, two: u64::MAX }, 0);
    for _ in 0..1000 {
        let a = rdtsc();
        let b = rdtsc();
        c.rdtsc = c.rdtsc.min(b - a);
        let a = rdtsc();
        slot.store(a, Ordering::Relaxed);
        let b = rdtsc();
        c.rdtsc_store = c.rdtsc_store.min(b - slot.load(Ordering::Relaxed));
        let (t1, _) = timed_nop(Regs::default(), &mut t0);
        c.one = c.one.min(t1 - t0);
        let (t1, _) = timed_two_nops(Regs::default(), 0, &mut t0);
        c.two = c.two.min(t1 - t0);
    }
    c
}

/// How one figure is taken.
struct Bench<'a> {
    samples: &'a mut Samples,
    cal: &'a Calibration,
}

impl Bench<'_> {
    /// User-visible: `rdtsc` around `f` (which returns whether the call had
    /// the expected outcome), `n` times after the warm-up.
    fn user(&mut self, op: &str, n: usize, f: impl FnMut() -> bool) {
        self.user_prepared(op, n, |_| {}, f);
    }

    /// [`Self::user`], calling `prepare` with the iteration's index (the
    /// warm-up's first) before each, outside the timed part.
    fn user_prepared(&mut self, op: &str, n: usize, mut prepare: impl FnMut(usize), mut f: impl FnMut() -> bool) {
        for i in 0..WARMUP + n {
            prepare(i);
            let t0 = rdtsc();
            let ok = f();
            let t1 = rdtsc();
            if !ok {
                fail(op, "unexpected result (user-visible)");
            }
            if i >= WARMUP {
                self.samples.0[i - WARMUP] = t1 - t0 - self.cal.rdtsc;
            }
        }
        self.samples.report(op, "user", n);
    }

    /// Kernel path of one system call with registers `r` (status `expect`),
    /// less `partner` user instructions of a server in between.
    fn kernel(&mut self, op: &str, n: usize, r: Regs, expect: u64, partner: u64) {
        self.kernel_prepared(op, n, r, (expect, partner), |_| {});
    }

    /// [`Self::kernel`] (`(expect, partner)`), calling `prepare` with the
    /// iteration's index (the warm-up's first) before each, outside the
    /// timed part.
    fn kernel_prepared(
        &mut self,
        op: &str,
        n: usize,
        r: Regs,
        (expect, partner): (u64, u64),
        mut prepare: impl FnMut(usize),
    ) {
        let mut t0 = 0u64;
        for i in 0..WARMUP + n {
            prepare(i);
            let (t1, status) = timed_syscall(r, &mut t0);
            if status != expect {
                fail(op, ("kernel path: status", status, "expected", expect));
            }
            if i >= WARMUP {
                self.samples.0[i - WARMUP] = t1 - t0 - self.cal.one + 1 - partner;
            }
        }
        self.samples.report(op, "kernel", n);
    }
}

// ----- servers -----

/// The endpoint, mode and buffers of the server thread, and where it
/// reports that it ended.
static THREAD_EP: AtomicU64 = AtomicU64::new(0);
static THREAD_MODE: AtomicU64 = AtomicU64::new(0);
static THREAD_RECV: AtomicU64 = AtomicU64::new(0);
static THREAD_REPLY: AtomicU64 = AtomicU64::new(0);
static THREAD_ERROR: AtomicU64 = AtomicU64::new(0);
/// Endpoint on which helper threads say they are finishing.
static DONE: AtomicU64 = AtomicU64::new(0);

extern "C" fn server_thread(_: u64) -> ! {
    let mode = ServeMode::from_badge(THREAD_MODE.load(Ordering::Acquire));
    let (recv, reply) = (THREAD_RECV.load(Ordering::Acquire), THREAD_REPLY.load(Ordering::Acquire));
    // SAFETY: two regions of BENCH_REGION bytes mapped by the main thread
    // for this thread's use only (it does not touch them while a server
    // thread runs).
    let (recv, reply) = unsafe {
        (
            core::slice::from_raw_parts_mut(recv as *mut u8, BENCH_MAX),
            core::slice::from_raw_parts(reply as *const u8, BENCH_MAX),
        )
    };
    let e = bench_serve(THREAD_EP.load(Ordering::Acquire), mode, recv, reply);
    THREAD_ERROR.store(e as u64, Ordering::Release);
    let _ = sys_ipc_send(DONE.load(Ordering::Acquire), b"done");
    sys::thread_exit(0)
}

/// A helper thread of this task on one of the stacks mapped at the start.
fn start_thread(entry: extern "C" fn(u64) -> !, stack: u64, arg: u64, priority: u8) -> u64 {
    match sys::thread_create(entry, stack + STACK, arg, priority).and_then(|t| sys::thread_start(t).map(|()| t)) {
        Ok(t) => t,
        Err(e) => fail("starting a thread", e),
    }
}

/// Waits for a helper thread's "done" message, then until it has ended
/// (it is ready at this priority or above, so yielding lets it finish).
fn join_thread(token: u64) {
    let mut buf = [0u8; 8];
    if let Err(e) = sys_ipc_receive(DONE.load(Ordering::Relaxed), &mut buf) {
        fail("waiting for a helper thread", e);
    }
    while sys::cap_inspect(token).is_ok() {
        sys::yield_now();
    }
}

/// A running server: a task or a thread of this task, serving `ep`.
struct Server {
    ep: u64,
    task: Option<u64>,
    thread: u64,
}

/// Where a server runs.
#[derive(Clone, Copy)]
enum Place {
    Task,
    Thread,
}

struct Stacks {
    server: u64,
    sender: u64,
}

fn start_server(place: Place, mode: ServeMode, stacks: &Stacks) -> Server {
    let ep = match sys_endpoint_create(EndpointKind::Sync, 0) {
        Ok(ep) => ep,
        Err(e) => fail("creating the endpoint", e),
    };
    match place {
        Place::Task => {
            let given = match sys::cap_mint(ep, rights::READ | rights::GRANT, mode.badge()) {
                Ok(t) => t,
                Err(e) => fail("minting the server's token", e),
            };
            let task = match sys::task_spawn_with("bench-server", &[given]) {
                Ok(t) => t,
                Err(e) => fail("spawning bench-server", e),
            };
            let _ = sys::cap_delete(given);
            Server { ep, task: Some(task), thread: 0 }
        }
        Place::Thread => {
            THREAD_EP.store(ep, Ordering::Release);
            THREAD_MODE.store(mode.badge(), Ordering::Release);
            let thread = start_thread(server_thread, stacks.server, 0, MAIN_PRIO);
            Server { ep, task: None, thread }
        }
    }
}

fn stop_server(s: Server) {
    if let Err(e) = sys_endpoint_delete(s.ep) {
        fail("deleting the endpoint", e);
    }
    match s.task {
        Some(task) => {
            let r = sys::task_wait(task);
            let _ = sys::cap_delete(task);
            if r != Ok((exit::EXITED, 0)) {
                fail("bench-server ended badly", r);
            }
        }
        None => {
            join_thread(s.thread);
            let e = THREAD_ERROR.load(Ordering::Acquire);
            if e != SyscallError::NotFound as u64 {
                fail("the server thread ended badly", SyscallError::from_code(e));
            }
        }
    }
}

// ----- the operations -----

fn ipc_rax(sys: Sys, send_len: usize, recv_cap: usize) -> u64 {
    ipc_abi::encode(sys as u64, 0, send_len as u64, recv_cap as u64)
}

/// Null system call and yield.
fn simple_calls(b: &mut Bench) {
    // Counter with an unknown counter number: decoded, dispatched and
    // refused with InvalidArgument; nothing else happens.
    b.user("null-syscall", ITERS, || {
        sys::syscall(Sys::Counter as u64, [u64::MAX, 0, 0, 0, 0, 0]) == Err(SyscallError::InvalidArgument)
    });
    let r = Regs { rax: Sys::Counter as u64, rdi: u64::MAX, ..Regs::default() };
    b.kernel("null-syscall", ITERS, r, SyscallError::InvalidArgument as u64, 0);
    // Yield with no other thread ready: the scheduler runs and keeps us.
    b.user("yield", ITERS, || {
        sys::yield_now();
        true
    });
    b.kernel("yield", ITERS, Regs { rax: Sys::Yield as u64, ..Regs::default() }, 0, 0);
}

/// A send with a revoked token.
fn revoked_send(b: &mut Bench) {
    let ep = sys_endpoint_create(EndpointKind::Sync, 0).unwrap_or_else(|e| fail("creating an endpoint", e));
    let child = sys::cap_mint(ep, rights::WRITE, 7).unwrap_or_else(|e| fail("minting a token", e));
    if sys::cap_revoke(ep) != Ok(1) {
        fail("revoking the token", "wrong count");
    }
    let word = [0x5Au8; 8];
    b.user("send-revoked", ITERS, || sys_ipc_send(child, &word) == Err(SyscallError::NotFound));
    let r = Regs { rax: ipc_rax(Sys::IpcSend, 8, 0), rdi: child, ..Regs::default() };
    b.kernel("send-revoked", ITERS, r, SyscallError::NotFound as u64, 0);
    let _ = sys_endpoint_delete(ep);
}

/// Send then receive an 8-byte message through an asynchronous endpoint,
/// in one thread.
fn async_pair(b: &mut Bench) {
    let ep = sys_endpoint_create(EndpointKind::Async(4), 64).unwrap_or_else(|e| fail("creating an async endpoint", e));
    let word = [0xA5u8; 8];
    let mut buf = [0u8; 64];
    b.user("async-send-recv", ITERS, || {
        sys_ipc_send(ep, &word).is_ok() && sys_ipc_receive(ep, &mut buf).is_ok_and(|m| m.len == 8)
    });
    let r = Regs { rax: ipc_rax(Sys::IpcSend, 8, 0), rdi: ep, r10: buf.as_mut_ptr() as u64, r8: 0x1122 };
    let second = ipc_rax(Sys::IpcReceive, 0, buf.len());
    let mut t0 = 0u64;
    for i in 0..WARMUP + ITERS {
        let (t1, status) = timed_two_syscalls(r, second, &mut t0);
        if status != 0 {
            fail("async-send-recv", ("kernel path: status", status));
        }
        if i >= WARMUP {
            b.samples.0[i - WARMUP] = t1 - t0 - b.cal.two + 2;
        }
    }
    b.samples.report("async-send-recv", "kernel", ITERS);
    let _ = sys_endpoint_delete(ep);
}

/// The one-way endpoint and the sender's timestamp.
static ONEWAY_EP: AtomicU64 = AtomicU64::new(0);
static T0: AtomicU64 = AtomicU64::new(0);

/// Sends `arg` 8-byte messages with the SDK (stamping T0 before each),
/// calls DONE (blocking until the main thread replies), sends `arg` more by
/// the timed assembly (which stamps T0 itself), and calls DONE again — a
/// call that is never answered, so the thread ends blocked, out of every
/// ready queue, and the rest of the benchmark runs as if it were gone.
extern "C" fn sender_thread(n: u64) -> ! {
    let ep = ONEWAY_EP.load(Ordering::Acquire);
    let done = DONE.load(Ordering::Acquire);
    let word = [0x3Cu8; 8];
    for _ in 0..n {
        T0.store(rdtsc(), Ordering::Relaxed);
        if let Err(e) = sys_ipc_send(ep, &word) {
            fail("one-way send", e);
        }
    }
    let _ = sys_ipc_call(done, b"user done", &mut []);
    let r = Regs { rax: ipc_rax(Sys::IpcSend, 8, 0), rdi: ep, r10: 0, r8: 0x77 };
    for _ in 0..n {
        let (_, status) = timed_syscall(r, T0.as_ptr());
        if status != 0 {
            fail("one-way send (kernel path)", status);
        }
    }
    let _ = sys_ipc_call(done, b"kernel done", &mut []);
    sys::thread_exit(0)
}

/// Waits for the sender's call on DONE; returns its reply token.
fn sender_finished() -> u64 {
    let mut buf = [0u8; 16];
    match sys_ipc_receive(DONE.load(Ordering::Relaxed), &mut buf) {
        Ok(m) if m.reply != 0 => m.reply,
        r => fail("waiting for the sender", r),
    }
}

/// One-way send on a synchronous endpoint to a waiting receiver: a sender
/// thread (priority 11) stamps T0 and sends; this thread (12, waiting in
/// receive) stamps after its receive returns, preempting the sender.
fn oneway(b: &mut Bench, stacks: &Stacks) {
    let ep = sys_endpoint_create(EndpointKind::Sync, 0).unwrap_or_else(|e| fail("creating an endpoint", e));
    ONEWAY_EP.store(ep, Ordering::Release);
    let mut buf = [0u8; 64];
    start_thread(sender_thread, stacks.sender, (WARMUP + ITERS) as u64, MAIN_PRIO - 1);
    for i in 0..WARMUP + ITERS {
        let r = sys_ipc_receive(ep, &mut buf);
        let t1 = rdtsc();
        if !r.is_ok_and(|m| m.len == 8) {
            fail("one-way receive", r);
        }
        if i >= WARMUP {
            b.samples.0[i - WARMUP] = t1 - T0.load(Ordering::Relaxed) - b.cal.rdtsc_store;
        }
    }
    b.samples.report("send-recv-sync", "user", ITERS);
    let reply = sender_finished();
    if let Err(e) = sys_ipc_reply(reply, &[]) {
        fail("releasing the sender", e);
    }
    let r = Regs { rax: ipc_rax(Sys::IpcReceive, 0, buf.len()), rdi: ep, r10: buf.as_mut_ptr() as u64, r8: 0 };
    let mut mine = 0u64;
    for i in 0..WARMUP + ITERS {
        let (t1, status) = timed_syscall(r, &mut mine);
        if status != 0 {
            fail("one-way receive (kernel path)", status);
        }
        if i >= WARMUP {
            b.samples.0[i - WARMUP] = t1 - T0.load(Ordering::Relaxed) - b.cal.one + 1;
        }
    }
    b.samples.report("send-recv-sync", "kernel", ITERS);
    // The sender now waits for a reply that never comes: blocked for good.
    let _ = sender_finished();
    let _ = sys_endpoint_delete(ep);
}

/// Client buffers for long messages.
struct Buffers {
    send: &'static mut [u8],
    reply: &'static mut [u8],
}

/// Call + reply of `len` bytes each way to a server at `place`, whose
/// buffers sit at `server_off` in a page (the client's are page-aligned).
/// `remap_pages`: pages each direction should remap (0: none may).
#[allow(clippy::too_many_arguments)]
fn calls(
    b: &mut Bench,
    stacks: &Stacks,
    bufs: &mut Buffers,
    op: &str,
    place: Place,
    len: usize,
    server_off: usize,
    remap_pages: u64,
) {
    let n = if len > 64 { ITERS_LARGE } else { ITERS };
    // User-visible, with an SDK server.
    let s = start_server(place, ServeMode { asm: false, reply_len: len, offset: server_off }, stacks);
    let (send, reply) = (&bufs.send[..len], &mut bufs.reply[..len]);
    let before = sys::counter(Counter::RemappedPages);
    b.user(op, n, || sys_ipc_call(s.ep, send, reply) == Ok(len));
    check_remap(op, "user", before, n, remap_pages);
    stop_server(s);
    // Kernel path, with an assembly server.
    let s = start_server(place, ServeMode { asm: true, reply_len: len, offset: server_off }, stacks);
    let r = call_regs(s.ep, bufs, len);
    let before = sys::counter(Counter::RemappedPages);
    b.kernel(op, n, r, 0, SERVE_LOOP_USER_INSNS);
    check_remap(op, "kernel", before, n, remap_pages);
    stop_server(s);
}

/// The registers of a call on `ep` of `len` bytes each way, from and into
/// the client's buffers.
fn call_regs(ep: u64, bufs: &mut Buffers, len: usize) -> Regs {
    Regs {
        rax: ipc_rax(Sys::IpcCall, len, len),
        rdi: ep,
        r10: bufs.reply.as_mut_ptr() as u64,
        r8: bufs.send.as_ptr() as u64,
    }
}

/// Prints how many pages the `WARMUP + n` calls since `before` remapped,
/// and how many they should have (both directions).
fn check_remap(op: &str, variant: &str, before: u64, n: usize, pages_per_direction: u64) {
    let got = sys::counter(Counter::RemappedPages) - before;
    let expected = (WARMUP + n) as u64 * 2 * pages_per_direction;
    println!("bench: remap {} {} pages={} expected={}", op, variant, got, expected);
}

/// Writes one byte (`v`) in every page of `buf`: a page still shared
/// copy-on-write from an earlier remap takes a fault and a private copy.
fn touch_pages(buf: &mut [u8], v: u8) {
    for page in buf.chunks_mut(4096) {
        page[0] = v;
    }
}

/// Call + reply of `len` bytes each way to a server task, all buffers
/// page-aligned (remapped), with fresh pages: before every call the client
/// writes one byte in each page of its send and its reply buffer. Both
/// still share their frames with the server from the previous call, so
/// each write takes a copy-on-write fault and a private frame, and each
/// direction's remap then finds destinations that map other frames than
/// its source: nothing is settled. The writes and their faults are inside
/// the user figure and before the timed part of the kernel figure.
fn fresh_calls(b: &mut Bench, stacks: &Stacks, bufs: &mut Buffers, op: &str, len: usize) {
    let n = ITERS_LARGE;
    let pages = len as u64 / 4096;
    let mut v = 0u8;
    // The copy-on-write counter when the measured calls begin.
    let first = Cell::new(0u64);
    let mark = |i: usize| {
        if i == WARMUP {
            first.set(sys::counter(Counter::CowCopies));
        }
    };
    let s = start_server(Place::Task, ServeMode { asm: false, reply_len: len, offset: 0 }, stacks);
    let before = sys::counter(Counter::RemappedPages);
    b.user_prepared(op, n, mark, || {
        v = v.wrapping_add(1);
        touch_pages(&mut bufs.send[..len], v);
        touch_pages(&mut bufs.reply[..len], v);
        sys_ipc_call(s.ep, &bufs.send[..len], &mut bufs.reply[..len]) == Ok(len)
    });
    check_cow(op, "user", first.get(), n, pages);
    check_remap(op, "user", before, n, pages);
    stop_server(s);
    let s = start_server(Place::Task, ServeMode { asm: true, reply_len: len, offset: 0 }, stacks);
    let r = call_regs(s.ep, bufs, len);
    let before = sys::counter(Counter::RemappedPages);
    b.kernel_prepared(op, n, r, (0, SERVE_LOOP_USER_INSNS), |i| {
        mark(i);
        v = v.wrapping_add(1);
        touch_pages(&mut bufs.send[..len], v);
        touch_pages(&mut bufs.reply[..len], v);
    });
    check_cow(op, "kernel", first.get(), n, pages);
    check_remap(op, "kernel", before, n, pages);
    stop_server(s);
}

/// Prints how many copy-on-write copies the `n` measured calls since
/// `before` took, and how many they should have: one per page written,
/// `pages` in each of the two buffers.
fn check_cow(op: &str, variant: &str, before: u64, n: usize, pages: u64) {
    let got = sys::counter(Counter::CowCopies) - before;
    println!("bench: cow {} {} copies={} expected={}", op, variant, got, n as u64 * 2 * pages);
}

fn main() -> u64 {
    println!("bench: start: {} iterations ({} with long messages) after {} warm-up", ITERS, ITERS_LARGE, WARMUP);
    let mut samples = Samples(match sys::mem_map(8 * ITERS as u64, map::WRITE) {
        // SAFETY: a fresh writable mapping of ITERS u64s, used only here.
        Ok(a) => unsafe { core::slice::from_raw_parts_mut(a as *mut u64, ITERS) },
        Err(e) => fail("mapping the sample buffer", e),
    });
    let stacks =
        Stacks { server: region(STACK as usize).as_ptr() as u64, sender: region(STACK as usize).as_ptr() as u64 };
    THREAD_RECV.store(region(BENCH_REGION).as_ptr() as u64, Ordering::Release);
    THREAD_REPLY.store(region(BENCH_REGION).as_ptr() as u64, Ordering::Release);
    let mut bufs = Buffers { send: region(BENCH_REGION), reply: region(BENCH_REGION) };
    bufs.send.fill(0x42);
    let done = sys_endpoint_create(EndpointKind::Sync, 0).unwrap_or_else(|e| fail("creating an endpoint", e));
    DONE.store(done, Ordering::Release);

    let cal = calibrate();
    println!(
        "bench: calibration rdtsc={} rdtsc-store={} one-syscall-sequence={} two-syscall-sequence={}",
        cal.rdtsc, cal.rdtsc_store, cal.one, cal.two
    );
    let mut b = Bench { samples: &mut samples, cal: &cal };
    simple_calls(&mut b);
    revoked_send(&mut b);
    async_pair(&mut b);
    for (op, place, words) in [
        ("call-0w-thread", Place::Thread, 0usize),
        ("call-8w-thread", Place::Thread, 8),
        ("call-0w-task", Place::Task, 0),
        ("call-8w-task", Place::Task, 8),
    ] {
        calls(&mut b, &stacks, &mut bufs, op, place, words * 8, 0, 0);
    }
    for (op, len) in
        [("call-256b-copy", 256), ("call-4k-copy", 4096), ("call-16k-copy", 16384), ("call-64k-copy", 65536)]
    {
        calls(&mut b, &stacks, &mut bufs, op, Place::Task, len, COPY_OFFSET, 0);
    }
    // (The 4 KiB rows remap only when the kernel remaps from one page on:
    // `cargo xtask bench` boots it with `remap_min=4096`.)
    for (op, len) in [("call-4k-remap", 4096), ("call-16k-remap", 16384), ("call-64k-remap", 65536)] {
        calls(&mut b, &stacks, &mut bufs, op, Place::Task, len, 0, len as u64 / 4096);
    }
    for (op, len) in [("call-4k-remap-fresh", 4096), ("call-16k-remap-fresh", 16384), ("call-64k-remap-fresh", 65536)] {
        fresh_calls(&mut b, &stacks, &mut bufs, op, len);
    }
    // Last: it leaves its sender thread blocked in a call that is never
    // answered (an outstanding reply the other figures should not see).
    oneway(&mut b, &stacks);
    println!(
        "bench: done: {} timer ticks, {} context switches",
        sys::counter(Counter::Ticks),
        sys::counter(Counter::Switches)
    );
    0
}
