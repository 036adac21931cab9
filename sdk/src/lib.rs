//! The Iris user-space runtime: the program entry (`entry!`), a panic
//! handler that reports and ends the task, console printing, and safe
//! wrappers for every system call (see [`sys`]). The register convention is
//! in the `abi` crate and `docs/abi.md`.
//!
//! ```no_run
//! #![no_std]
//! #![no_main]
//! sdk::entry!(main);
//! fn main() -> u64 {
//!     sdk::println!("hello from a task");
//!     0
//! }
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate memfns;

pub mod sys;
pub mod syscall_api;

pub use abi;
pub use sys::{SyscallError, SyscallResult};

/// Defines the task's `_start`: records the capabilities the task was
/// given at spawn (see [`startup_caps`]), runs `$main` (a `fn() -> u64`) and
/// ends the task with its return value as the exit code.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        pub extern "C" fn _start(n: u64, c0: u64, c1: u64, c2: u64, c3: u64) -> ! {
            $crate::set_startup_caps(n, [c0, c1, c2, c3]);
            let f: fn() -> u64 = $main;
            $crate::sys::task_exit(f())
        }
    };
}

static STARTUP_N: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static STARTUP: [core::sync::atomic::AtomicU64; 4] = [const { core::sync::atomic::AtomicU64::new(0) }; 4];

#[doc(hidden)]
pub fn set_startup_caps(n: u64, caps: [u64; 4]) {
    use core::sync::atomic::Ordering::Relaxed;
    STARTUP_N.store(n.min(4), Relaxed);
    for (slot, c) in STARTUP.iter().zip(caps) {
        slot.store(c, Relaxed);
    }
}

/// The capabilities this task was given by whoever spawned it (see
/// [`sys::task_spawn_with`]), as tokens in its own table.
pub fn startup_caps() -> ([u64; 4], usize) {
    use core::sync::atomic::Ordering::Relaxed;
    let n = STARTUP_N.load(Relaxed) as usize;
    let mut out = [0; 4];
    for (o, s) in out.iter_mut().zip(STARTUP.iter()).take(n) {
        *o = s.load(Relaxed);
    }
    (out, n)
}

/// Console output for `print!`.
pub struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sys::console_write(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

/// A line buffer so that one `println!` reaches the console in one write
/// (lines of different tasks do not interleave mid-line).
pub struct LineBuffer {
    buf: [u8; 256],
    len: usize,
}

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> Self {
        LineBuffer { buf: [0; 256], len: 0 }
    }
    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        let _ = sys::console_write(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Write for LineBuffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let mut b = $crate::LineBuffer::new();
        let _ = core::fmt::Write::write_fmt(&mut b, format_args!($($arg)*));
        b.flush();
    }};
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        let mut b = $crate::LineBuffer::new();
        let _ = core::fmt::Write::write_fmt(&mut b, format_args!($($arg)*));
        let _ = core::fmt::Write::write_str(&mut b, "\n");
        b.flush();
    }};
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic: {}", info);
    sys::task_exit(abi::exit::PANIC_CODE)
}
