//! Helpers shared by Iris's user tasks: a checker that counts failed
//! expectations (test inits exit with the count), spawning and waiting for
//! boot-image tasks, and busy work that only preemption can interrupt.
#![no_std]

use sdk::abi::{exit, Counter};
use sdk::{println, sys, SyscallError, SyscallResult};

/// Counts failed checks; a test init returns `failures()` as its exit code.
pub struct Checker {
    failures: u64,
    /// Scenario name, printed with each check.
    pub name: &'static str,
}

impl Checker {
    /// A checker for scenario `name`.
    pub const fn new(name: &'static str) -> Self {
        Checker { failures: 0, name }
    }

    /// Records one expectation.
    pub fn check(&mut self, what: &str, ok: bool) {
        if ok {
            println!("{}: ok: {}", self.name, what);
        } else {
            self.failures += 1;
            println!("{}: FAILED: {}", self.name, what);
        }
    }

    /// Checks that a result is a specific error.
    pub fn expect_err<T: core::fmt::Debug>(&mut self, what: &str, got: SyscallResult<T>, want: SyscallError) {
        let ok = matches!(&got, Err(e) if *e == want);
        if ok {
            println!("{}: ok: {} -> {:?}", self.name, what, want);
        } else {
            self.failures += 1;
            println!("{}: FAILED: {}: wanted Err({:?}), got {:?}", self.name, what, want, got);
        }
    }

    /// Checks that a result is Ok and returns its value.
    pub fn expect_ok<T: core::fmt::Debug + Default>(&mut self, what: &str, got: SyscallResult<T>) -> T {
        match got {
            Ok(v) => {
                println!("{}: ok: {}", self.name, what);
                v
            }
            Err(e) => {
                self.failures += 1;
                println!("{}: FAILED: {}: {:?}", self.name, what, e);
                T::default()
            }
        }
    }

    /// Failures so far.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Prints the verdict and returns the exit code.
    pub fn finish(&self) -> u64 {
        if self.failures == 0 {
            println!("{}: PASS", self.name);
        } else {
            println!("{}: FAIL ({} checks failed)", self.name, self.failures);
        }
        self.failures
    }
}

/// Kernel counters that must return to their values once tasks are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    /// Free frames.
    pub frames: u64,
    /// Capability slots in use.
    pub cap_slots: u64,
    /// Live tasks.
    pub tasks: u64,
    /// Live threads.
    pub threads: u64,
}

/// Reads the resource counters.
pub fn resources() -> Resources {
    Resources {
        frames: sys::counter(Counter::FreeFrames),
        cap_slots: sys::counter(Counter::CapSlots),
        tasks: sys::counter(Counter::Tasks),
        threads: sys::counter(Counter::Threads),
    }
}

/// Spawns a boot-image task and returns its token.
pub fn spawn(c: &mut Checker, name: &str) -> u64 {
    match sys::task_spawn(name) {
        Ok(t) => t,
        Err(e) => {
            c.check(name, false);
            println!("{}: spawning '{}' failed: {:?}", c.name, name, e);
            0
        }
    }
}

/// Waits for a task, deletes its token, and checks how it ended.
pub fn wait_expect(c: &mut Checker, name: &str, token: u64, want: (u64, u64)) {
    let got = sys::task_wait(token);
    let _ = sys::cap_delete(token);
    let describe = |s: (u64, u64)| if s.0 == exit::EXITED { "exited" } else { "faulted" };
    match got {
        Ok(s) => {
            let ok = s == want;
            if ok {
                println!("{}: ok: '{}' {} with {}", c.name, name, describe(s), s.1);
            } else {
                println!(
                    "{}: FAILED: '{}' {} with {}, wanted {} with {}",
                    c.name,
                    name,
                    describe(s),
                    s.1,
                    describe(want),
                    want.1
                );
            }
            c.check_silent(ok);
        }
        Err(e) => {
            println!("{}: FAILED: waiting for '{}': {:?}", c.name, name, e);
            c.check_silent(false);
        }
    }
}

impl Checker {
    fn check_silent(&mut self, ok: bool) {
        if !ok {
            self.failures += 1;
        }
    }
}

/// Busy work the optimiser cannot remove: `n` rounds of arithmetic.
pub fn spin(n: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..n {
        x = core::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

/// Loads `pattern + i` into `xmm{i}` (both halves) for all sixteen vector
/// registers, spins `loops` times touching no vector register (so timer
/// preemption lands in the middle), and returns what the registers hold
/// afterwards. With the FPU/SSE state preserved, each equals what went in.
pub fn hold_vector_registers(pattern: u64, loops: u64) -> [u64; 32] {
    let mut out = [0u64; 32];
    let p = out.as_mut_ptr();
    // SAFETY: writes 16 × 16 bytes to `out` (256 bytes, exactly its size);
    // every vector register it changes is declared clobbered.
    unsafe {
        core::arch::asm!(
            "mov {t}, {p}",
            "movq xmm0, {t}", "pshufd xmm0, xmm0, 0x44", "inc {t}",
            "movq xmm1, {t}", "pshufd xmm1, xmm1, 0x44", "inc {t}",
            "movq xmm2, {t}", "pshufd xmm2, xmm2, 0x44", "inc {t}",
            "movq xmm3, {t}", "pshufd xmm3, xmm3, 0x44", "inc {t}",
            "movq xmm4, {t}", "pshufd xmm4, xmm4, 0x44", "inc {t}",
            "movq xmm5, {t}", "pshufd xmm5, xmm5, 0x44", "inc {t}",
            "movq xmm6, {t}", "pshufd xmm6, xmm6, 0x44", "inc {t}",
            "movq xmm7, {t}", "pshufd xmm7, xmm7, 0x44", "inc {t}",
            "movq xmm8, {t}", "pshufd xmm8, xmm8, 0x44", "inc {t}",
            "movq xmm9, {t}", "pshufd xmm9, xmm9, 0x44", "inc {t}",
            "movq xmm10, {t}", "pshufd xmm10, xmm10, 0x44", "inc {t}",
            "movq xmm11, {t}", "pshufd xmm11, xmm11, 0x44", "inc {t}",
            "movq xmm12, {t}", "pshufd xmm12, xmm12, 0x44", "inc {t}",
            "movq xmm13, {t}", "pshufd xmm13, xmm13, 0x44", "inc {t}",
            "movq xmm14, {t}", "pshufd xmm14, xmm14, 0x44", "inc {t}",
            "movq xmm15, {t}", "pshufd xmm15, xmm15, 0x44",
            "2:",
            "dec {n}",
            "jnz 2b",
            "movdqu [{o}], xmm0", "movdqu [{o} + 16], xmm1", "movdqu [{o} + 32], xmm2", "movdqu [{o} + 48], xmm3",
            "movdqu [{o} + 64], xmm4", "movdqu [{o} + 80], xmm5", "movdqu [{o} + 96], xmm6", "movdqu [{o} + 112], xmm7",
            "movdqu [{o} + 128], xmm8", "movdqu [{o} + 144], xmm9", "movdqu [{o} + 160], xmm10", "movdqu [{o} + 176], xmm11",
            "movdqu [{o} + 192], xmm12", "movdqu [{o} + 208], xmm13", "movdqu [{o} + 224], xmm14", "movdqu [{o} + 240], xmm15",
            p = in(reg) pattern,
            t = out(reg) _,
            n = inout(reg) loops.max(1) => _,
            o = in(reg) p,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nostack)
        );
    }
    out
}

/// True if `held` is what [`hold_vector_registers`] loaded for `pattern`.
pub fn vector_registers_intact(pattern: u64, held: &[u64; 32]) -> bool {
    held.chunks(2).enumerate().all(|(i, pair)| pair.iter().all(|&v| v == pattern.wrapping_add(i as u64)))
}

/// A busy task: `rounds` rounds of work that never yield, each holding
/// values in all vector registers across preemptions and checking them;
/// prints after each round. Exits 1 if a vector register changed.
pub fn busy(name: &str, rounds: u64, work: u64) -> u64 {
    println!("{}: start", name);
    let pattern = name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3));
    for r in 0..rounds {
        let held = hold_vector_registers(pattern, work);
        if !vector_registers_intact(pattern, &held) {
            println!("{}: FAILED: vector registers changed across preemption: {:x?}", name, held);
            return 1;
        }
        println!("{}: round {} (vector registers intact)", name, r);
    }
    println!("{}: done", name);
    0
}

// ----- helpers for the IPC scenarios -----

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use sdk::abi::map;
use sdk::syscall_api::{self as ipc, EndpointKind, Timeout};

/// Stack size of a helper thread started by [`start_thread`].
pub const THREAD_STACK: u64 = 32 * 1024;

/// A helper thread of this task: its token and its stack.
pub struct Worker {
    /// The thread token (it dies with the thread).
    pub token: u64,
    stack: u64,
}

/// Maps a stack and starts `entry(arg)` as a new thread of this task at
/// `priority`. On failure the check fails and the worker is already dead.
pub fn start_thread(c: &mut Checker, entry: extern "C" fn(u64) -> !, arg: u64, priority: u8) -> Worker {
    let stack = match sys::mem_map(THREAD_STACK, map::WRITE) {
        Ok(s) => s,
        Err(e) => {
            println!("{}: FAILED: mapping a thread stack: {:?}", c.name, e);
            c.check_silent(false);
            return Worker { token: 0, stack: 0 };
        }
    };
    match sys::thread_create(entry, stack + THREAD_STACK, arg, priority).and_then(|t| sys::thread_start(t).map(|()| t))
    {
        Ok(token) => Worker { token, stack },
        Err(e) => {
            println!("{}: FAILED: starting a thread: {:?}", c.name, e);
            c.check_silent(false);
            let _ = sys::mem_unmap(stack, THREAD_STACK);
            Worker { token: 0, stack: 0 }
        }
    }
}

impl Worker {
    /// Whether the thread still runs (its token still names it).
    pub fn alive(&self) -> bool {
        self.token != 0 && sys::cap_inspect(self.token).is_ok()
    }

    /// Waits until the thread has ended, then unmaps its stack. Threads of
    /// lower priority get to run too (the wait sleeps now and then).
    pub fn join(self) {
        let mut n = 0u64;
        while self.alive() {
            sys::yield_now();
            n += 1;
            if n.is_multiple_of(8) {
                sleep_us(10_000);
            }
        }
        if self.stack != 0 {
            let _ = sys::mem_unmap(self.stack, THREAD_STACK);
        }
    }
}

/// Blocks the calling thread for about `us` microseconds (a timed receive
/// on a private endpoint nobody sends to), so lower priorities run.
pub fn sleep_us(us: u64) {
    match ipc::sys_endpoint_create(EndpointKind::Sync, 0) {
        Ok(ep) => {
            let _ = ipc::sys_ipc_receive_timeout(ep, &mut [], Timeout::Micros(us));
            let _ = ipc::sys_endpoint_delete(ep);
        }
        Err(_) => spin_ticks(us.div_ceil(10_000)),
    }
}

/// Spins, without yielding, until `n` timer ticks have passed: threads of
/// the same priority run meanwhile only through preemption.
pub fn spin_ticks(n: u64) {
    let start = sys::counter(Counter::Ticks);
    while sys::counter(Counter::Ticks) < start + n {
        spin(1000);
    }
}

/// Lets the other threads of this priority run until they block: yields
/// many times, then spins across two timer ticks.
pub fn settle() {
    for _ in 0..20 {
        sys::yield_now();
    }
    spin_ticks(2);
}

/// Waits (yielding, now and then sleeping) until `flag` is set; false if
/// it is still clear after about `max_ticks` timer ticks.
pub fn wait_for(flag: &AtomicBool, max_ticks: u64) -> bool {
    let start = sys::counter(Counter::Ticks);
    let mut n = 0u64;
    while !flag.load(Ordering::Acquire) {
        if sys::counter(Counter::Ticks) > start + max_ticks {
            return false;
        }
        sys::yield_now();
        n += 1;
        if n.is_multiple_of(8) {
            sleep_us(10_000);
        }
    }
    true
}

/// Live IPC endpoints.
pub fn endpoints() -> u64 {
    sys::counter(Counter::Endpoints)
}

/// Checks that the resource counters and the endpoint count are back at
/// the values read at the start of a scenario.
pub fn check_clean(c: &mut Checker, before: Resources, endpoints_before: u64) {
    // Ended threads and tasks are reaped at the next kernel entry.
    sys::yield_now();
    let after = resources();
    if after != before {
        println!("{}: resources before {:?}, after {:?}", c.name, before, after);
    }
    c.check("frames, slots, tasks and threads returned to their start values", after == before);
    let eps = endpoints();
    if eps != endpoints_before {
        println!("{}: endpoints before {}, after {}", c.name, endpoints_before, eps);
    }
    c.check("endpoint count returned to its start value", eps == endpoints_before);
}

/// Byte `i` of the test pattern `seed`: every (seed, offset) gives a
/// different-looking byte, so shifted, truncated or mixed-up copies show.
pub fn pattern_byte(seed: u64, i: usize) -> u8 {
    let x = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x ^ (x >> 29) ^ (x >> 47)) as u8
}

/// Fills `buf` with the pattern `seed`.
pub fn fill_pattern(buf: &mut [u8], seed: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, i);
    }
}

/// The offset of the first byte of `buf` that differs from the pattern
/// `seed`, or `None` if all match.
pub fn pattern_mismatch(buf: &[u8], seed: u64) -> Option<usize> {
    buf.iter().enumerate().position(|(i, &b)| b != pattern_byte(seed, i))
}

/// FNV-1a over `bytes`.
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811C_9DC5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// What a [`Job`] thread does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum JobOp {
    /// Send `len` bytes of pattern `seed`.
    Send = 0,
    /// Call with `len` bytes of pattern `seed`; the reply goes into a
    /// buffer of `cap` bytes and should be pattern `seed + 1`.
    Call = 1,
    /// Receive into a buffer of `cap` bytes; the message should be pattern `seed`.
    Receive = 2,
}

/// One IPC operation for a helper thread ([`job_thread`]), and its outcome.
/// Buffers live on the helper's stack (at most 4096 bytes each).
pub struct Job {
    op: AtomicU64,
    ep: AtomicU64,
    len: AtomicU64,
    cap: AtomicU64,
    seed: AtomicU64,
    /// Set just before the operation's system call.
    pub started: AtomicBool,
    /// Set once the system call returned and the fields below are written.
    pub done: AtomicBool,
    result: AtomicU64,
    /// Badge received (receive).
    pub badge: AtomicU64,
    /// Whether the bytes received (receive, or a call's reply) matched the pattern.
    pub intact: AtomicBool,
}

/// Largest message or buffer of a [`Job`].
pub const JOB_MAX: usize = 4096;
const ERR_BIT: u64 = 1 << 63;

impl Job {
    /// An idle job.
    pub const fn new() -> Job {
        Job {
            op: AtomicU64::new(0),
            ep: AtomicU64::new(0),
            len: AtomicU64::new(0),
            cap: AtomicU64::new(0),
            seed: AtomicU64::new(0),
            started: AtomicBool::new(false),
            done: AtomicBool::new(false),
            result: AtomicU64::new(0),
            badge: AtomicU64::new(0),
            intact: AtomicBool::new(false),
        }
    }

    /// Describes the next operation and clears the outcome.
    pub fn set(&self, op: JobOp, ep: u64, len: usize, cap: usize, seed: u64) {
        self.op.store(op as u64, Ordering::Relaxed);
        self.ep.store(ep, Ordering::Relaxed);
        self.len.store(len.min(JOB_MAX) as u64, Ordering::Relaxed);
        self.cap.store(cap.min(JOB_MAX) as u64, Ordering::Relaxed);
        self.seed.store(seed, Ordering::Relaxed);
        self.started.store(false, Ordering::Relaxed);
        self.badge.store(0, Ordering::Relaxed);
        self.intact.store(false, Ordering::Relaxed);
        self.done.store(false, Ordering::Release);
    }

    /// The outcome: the length sent or received, or the error.
    pub fn result(&self) -> SyscallResult<usize> {
        let r = self.result.load(Ordering::Acquire);
        if r & ERR_BIT == 0 {
            Ok(r as usize)
        } else {
            Err(SyscallError::from_code(r & !ERR_BIT).unwrap_or(SyscallError::InvalidSyscall))
        }
    }

    /// Starts a thread at `priority` that runs this job once and ends.
    pub fn start(&'static self, c: &mut Checker, priority: u8) -> Worker {
        start_thread(c, job_thread, self as *const Job as u64, priority)
    }

    fn run(&self) {
        let mut msg = [0u8; JOB_MAX];
        let mut buf = [0u8; JOB_MAX];
        let ep = self.ep.load(Ordering::Relaxed);
        let len = self.len.load(Ordering::Relaxed) as usize;
        let cap = self.cap.load(Ordering::Relaxed) as usize;
        let seed = self.seed.load(Ordering::Relaxed);
        fill_pattern(&mut msg[..len], seed);
        self.started.store(true, Ordering::Release);
        let r = match self.op.load(Ordering::Relaxed) {
            0 => ipc::sys_ipc_send(ep, &msg[..len]).map(|()| len),
            1 => ipc::sys_ipc_call(ep, &msg[..len], &mut buf[..cap]).inspect(|&n| {
                self.intact.store(n <= cap && pattern_mismatch(&buf[..n], seed + 1).is_none(), Ordering::Relaxed)
            }),
            _ => ipc::sys_ipc_receive(ep, &mut buf[..cap]).map(|m| {
                self.badge.store(m.badge, Ordering::Relaxed);
                self.intact.store(m.len <= cap && pattern_mismatch(&buf[..m.len], seed).is_none(), Ordering::Relaxed);
                m.len
            }),
        };
        self.result.store(
            match r {
                Ok(n) => n as u64,
                Err(e) => ERR_BIT | e as u64,
            },
            Ordering::Relaxed,
        );
        self.done.store(true, Ordering::Release);
    }
}

impl Default for Job {
    fn default() -> Self {
        Self::new()
    }
}

/// Thread entry for [`Job::start`]: `arg` is the address of a `'static` [`Job`].
pub extern "C" fn job_thread(arg: u64) -> ! {
    // SAFETY: `Job::start` passes the address of a `'static` Job, whose
    // fields are atomics (shared access is sound).
    let job = unsafe { &*(arg as *const Job) };
    job.run();
    sys::thread_exit(0)
}

// ----- the "resend" scenario (`t-resend` and `resend-srv`) -----

/// Calls of the "resend" scenario.
pub const RESEND_ROUNDS: u64 = 72;
/// Size of each buffer region of the "resend" scenario: 18 pages.
pub const RESEND_REGION: usize = 72 * 1024;
const PAGE: usize = 4096;

/// Call `k` of the "resend" scenario, as both of its tasks compute it.
/// The calls alternate between two buffer pairs on each side (pair
/// `k % 2`); the message sits at the same offset in all four regions of
/// a call, so its whole pages are remapped both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResendRound {
    /// Offset of the message in its region (request, receive, reply).
    pub off: usize,
    /// Length of the request and of the reply.
    pub len: usize,
    /// Message bytes `xor.0..xor.1` the server XORs with `xor.2` in its
    /// receive buffer (a write into pages it shares with the client)
    /// before it replies from that buffer.
    pub xor: (usize, usize, u8),
}

/// Where call `k` stands in its pair's cycle of six uses
/// ([`resend_round`] and `t-resend` say what each does).
pub fn resend_phase(k: u64) -> u64 {
    (k / 2) % 6
}

/// Call `k` of the "resend" scenario. The shape changes every twelve
/// calls (each pair's cycle of six); the server writes one page of the
/// message in phase 2 and all of it in phase 4.
pub fn resend_round(k: u64) -> ResendRound {
    let (off, len) = match (k / 12) % 3 {
        0 => (0, 64 * 1024),
        1 => (100, 64 * 1024 - 200),
        _ => (4000, 40000),
    };
    let mut r = ResendRound { off, len, xor: (0, 0, 0) };
    let x = (k as u8).wrapping_mul(2) | 1;
    r.xor = match resend_phase(k) {
        2 => {
            let (a, b) = r.page(k);
            (a, b, x)
        }
        4 => (0, len, x),
        _ => (0, 0, 0),
    };
    r
}

impl ResendRound {
    /// Whole pages of the message (the pages a remap delivers).
    pub fn whole_pages(&self) -> usize {
        let first = self.off.next_multiple_of(PAGE);
        let last = (self.off + self.len) / PAGE * PAGE;
        last.saturating_sub(first) / PAGE
    }

    /// Message bytes of one whole page of the message, chosen by `n`.
    pub fn page(&self, n: u64) -> (usize, usize) {
        let first = self.off.next_multiple_of(PAGE) - self.off;
        let start = first + (n as usize * 5) % self.whole_pages().max(1) * PAGE;
        (start, start + PAGE)
    }

    /// Reply byte `j` for request byte `b`: the server's XOR applied.
    pub fn reply_byte(&self, b: u8, j: usize) -> u8 {
        let (from, to, x) = self.xor;
        if (from..to).contains(&j) {
            b ^ x
        } else {
            b
        }
    }
}

/// The first offset at which `a` and `b` differ (or at which the shorter ends).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

// ----- helpers for the IPC benchmark (`bench`, `bench-server`) -----

/// Reads the time-stamp counter. Under QEMU with `-icount shift=0` it
/// counts the guest instructions executed so far, exactly and repeatably.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u64, u64);
    // SAFETY: `rdtsc` only reads the counter into edx:eax (zero-extended).
    // No `nomem`: the compiler keeps memory accesses on their side of it.
    unsafe { core::arch::asm!("rdtsc", out("rax") lo, out("rdx") hi, options(nostack, preserves_flags)) };
    (hi << 32) | lo
}

/// Largest message of the benchmark, and the buffer regions it uses: room
/// for the largest message at any offset within a page.
pub const BENCH_MAX: usize = 64 * 1024;
/// Size of one benchmark buffer region (mapped with `mem_map`).
pub const BENCH_REGION: usize = BENCH_MAX + 2 * 4096;

/// How a benchmark server answers calls. The bench init passes it in the
/// badge of the endpoint token it gives the server, so a spawned server
/// needs nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeMode {
    /// Serve with a minimal assembly loop (for kernel-path figures) rather
    /// than with the SDK's `sys_ipc_reply_receive` (user-visible figures).
    pub asm: bool,
    /// Length of every reply.
    pub reply_len: usize,
    /// Offset within a page of the receive and reply buffers.
    pub offset: usize,
}

impl ServeMode {
    /// The mode as a badge.
    pub fn badge(self) -> u64 {
        u64::from(self.asm) | ((self.reply_len as u64 & ipc_abi::LEN_MASK) << 8) | ((self.offset as u64 & 0xFFF) << 40)
    }

    /// The mode a badge describes.
    pub fn from_badge(b: u64) -> ServeMode {
        ServeMode {
            asm: b & 1 != 0,
            reply_len: ((b >> 8) & ipc_abi::LEN_MASK) as usize,
            offset: ((b >> 40) & 0xFFF) as usize,
        }
    }
}

use sdk::abi::ipc as ipc_abi;

/// User instructions the assembly server loop of [`bench_serve`] executes
/// between the return of one `syscall` and the next `syscall` (`test`,
/// `jz`, four `mov`s). A round trip's kernel-path figure subtracts them.
pub const SERVE_LOOP_USER_INSNS: u64 = 6;

/// Serves calls on `ep` the way `mode` says until reply-and-receive fails
/// (the bench deletes the endpoint), and returns that error. Each request
/// is received into `recv` (its whole length is the capacity); each reply
/// is the first `mode.reply_len` bytes of `reply`.
pub fn bench_serve(ep: u64, mode: ServeMode, recv: &mut [u8], reply: &[u8]) -> SyscallError {
    let len = mode.reply_len.min(reply.len());
    if !mode.asm {
        let (mut token, mut n) = (0u64, 0usize);
        loop {
            match ipc::sys_ipc_reply_receive(token, &reply[..n], ep, recv) {
                Ok(m) => (token, n) = (m.reply, len),
                Err(e) => return e,
            }
        }
    }
    let op = ipc_abi::encode(sdk::abi::Sys::IpcReplyReceive as u64, 0, len as u64, recv.len() as u64);
    let status: u64;
    // SAFETY: the loop issues reply-and-receive system calls whose buffers
    // are `recv` (written, `recv.len()` bytes at most) and `reply` (read,
    // `len` bytes); rbx and rbp (message registers the kernel overwrites)
    // are saved and restored around it; every other register the kernel
    // writes is declared clobbered. The three pushed words are popped.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "push rax",
            "push rdi",
            "push r8",
            "xor esi, esi",
            "2:",
            "mov rax, [rsp + 16]",
            "mov rdi, [rsp + 8]",
            "mov r8, [rsp]",
            "mov rdx, -1",
            "syscall",
            "test rax, rax",
            "jz 2b",
            "add rsp, 24",
            "pop rbx",
            "pop rbp",
            inout("rax") op => status,
            inout("rdi") ep => _,
            inout("r8") reply.as_ptr() as u64 => _,
            in("r10") recv.as_mut_ptr() as u64,
            out("rsi") _,
            out("rdx") _,
            out("rcx") _,
            out("r11") _,
            out("r9") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    SyscallError::from_code(status).unwrap_or(SyscallError::InvalidSyscall)
}
