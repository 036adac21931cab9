//! Support for the QEMU scenario tests: boot a system, with a time limit,
//! and check its serial log and exit status; a failure shows the log's tail.

use std::time::Duration;
use xtask::{RunOptions, RunResult};

/// Time limit for one scenario under TCG.
pub const LIMIT: Duration = Duration::from_secs(180);

/// A finished boot of a system.
pub struct Boot {
    /// Name of the system.
    pub system: &'static str,
    /// What QEMU returned.
    pub run: RunResult,
}

/// Builds (once per test process) and boots `system`; panics with the exact
/// reason if QEMU is missing or the build fails.
pub fn boot(system: &'static str) -> Boot {
    boot_with(system, RunOptions::default())
}

/// Like [`boot`], with QEMU options (for example a kernel command line).
pub fn boot_with(system: &'static str, opts: RunOptions) -> Boot {
    if let Err(e) = xtask::ensure_qemu() {
        panic!("{e}");
    }
    let built = xtask::built().unwrap_or_else(|e| panic!("build failed: {e}"));
    let image = xtask::scenarios::image(&built, system).unwrap_or_else(|e| panic!("image: {e}"));
    let run = xtask::run_captured(&built, &image, &opts, LIMIT).unwrap_or_else(|e| panic!("{e}"));
    Boot { system, run }
}

impl Boot {
    fn fail(&self, why: &str) -> ! {
        let lines: Vec<&str> = self.run.log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!(
            "system '{}': {why}\nQEMU status {:?} ({}){}\n--- last {} lines of the serial log ---\n{tail}\n---",
            self.system,
            self.run.status,
            xtask::describe_status(self.run.status),
            if self.run.timed_out { ", killed at the time limit" } else { "" },
            lines.len().min(60)
        );
    }

    /// Asserts QEMU exited with `status`.
    pub fn expect_status(&self, status: i32) -> &Self {
        if self.run.status != Some(status) {
            self.fail(&format!("expected QEMU exit status {status}"));
        }
        self
    }

    /// Asserts the log has a line containing `text`; returns its index.
    pub fn line(&self, text: &str) -> usize {
        match self.run.log.lines().position(|l| l.contains(text)) {
            Some(i) => i,
            None => self.fail(&format!("no line containing {text:?}")),
        }
    }

    /// Index of the last line containing `text`.
    pub fn last_line(&self, text: &str) -> usize {
        match self.run.log.lines().collect::<Vec<_>>().iter().rposition(|l| l.contains(text)) {
            Some(i) => i,
            None => self.fail(&format!("no line containing {text:?}")),
        }
    }

    /// Asserts no line contains `text`.
    pub fn no_line(&self, text: &str) -> &Self {
        if let Some(l) = self.run.log.lines().find(|l| l.contains(text)) {
            self.fail(&format!("unexpected line {l:?}"));
        }
        self
    }

    /// Asserts that the first line with `a` comes before the first with `b`.
    pub fn before(&self, a: &str, b: &str) -> &Self {
        if self.line(a) >= self.line(b) {
            self.fail(&format!("{a:?} should come before {b:?}"));
        }
        self
    }

    /// Asserts a condition with a message.
    pub fn check(&self, ok: bool, why: &str) -> &Self {
        if !ok {
            self.fail(why);
        }
        self
    }
}
