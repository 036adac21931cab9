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
