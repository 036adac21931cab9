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

/// A busy task: `rounds` rounds of work, printing after each; never yields.
pub fn busy(name: &str, rounds: u64, work: u64) -> u64 {
    println!("{}: start", name);
    for r in 0..rounds {
        spin(work);
        println!("{}: round {}", name, r);
    }
    println!("{}: done", name);
    0
}
