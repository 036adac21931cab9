//! The COM1 serial console (polled, no interrupts). Writes take no lock, so
//! a fault report can always be printed, even from inside a fault.

use core::fmt;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3F8;

/// Sets COM1 to 115200 baud, 8N1, FIFO on.
pub fn init() {
    for (off, val) in [(1u16, 0x00u8), (3, 0x80), (0, 0x01), (1, 0x00), (3, 0x03), (2, 0xC7), (4, 0x0B)] {
        // SAFETY: COM1's registers are standard PC I/O ports; programming
        // them has no effect on memory.
        unsafe { Port::new(COM1 + off).write(val) };
    }
}

/// Writes bytes to COM1, turning `\n` into `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

fn put(b: u8) {
    let mut lsr: Port<u8> = Port::new(COM1 + 5);
    let mut thr: Port<u8> = Port::new(COM1);
    // SAFETY: reading the line-status register and writing the transmit
    // register of COM1 are side-effect-free for memory.
    unsafe {
        let mut spins = 0u32;
        while lsr.read() & 0x20 == 0 && spins < 100_000 {
            spins += 1;
        }
        thr.write(b);
    }
}

/// A `fmt::Write` sink for the console.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::serial::Console, format_args!($($arg)*));
    }};
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{ $crate::print!($($arg)*); $crate::print!("\n"); }};
}
