//! Scenario "badsys": hostile syscall arguments get error codes, never a
//! crash: an unknown syscall number, user pointers into kernel space, an
//! unmapped buffer, overflowing lengths, bad flags and bad tokens.
#![no_std]
#![no_main]

use sdk::abi::{map, Error, Sys};
use sdk::sys;

sdk::entry!(main);

extern "C" fn never(_: u64) -> ! {
    sys::thread_exit(0)
}

fn main() -> u64 {
    let mut c = apps::Checker::new("badsys");
    let before = apps::resources();
    let kernel = 0xFFFF_FFFF_8010_0000u64;
    let unmapped = 0x0000_1000_0000u64;
    c.expect_err("unknown syscall number 999", sys::syscall(999, [0; 6]), Error::InvalidSyscall);
    c.expect_err("unknown syscall number u64::MAX", sys::syscall(u64::MAX, [0; 6]), Error::InvalidSyscall);
    let cw = Sys::ConsoleWrite as u64;
    c.expect_err(
        "console write from kernel memory",
        sys::syscall(cw, [kernel, 16, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    c.expect_err(
        "console write from an unmapped buffer",
        sys::syscall(cw, [unmapped, 16, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    c.expect_err(
        "console write wrapping the address space",
        sys::syscall(cw, [u64::MAX - 4, 16, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    c.expect_err(
        "console write straddling into kernel space",
        sys::syscall(cw, [0x7FFF_FFFF_FFF8, 16, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    c.expect_err("console write too long", sys::syscall(cw, [0x400000, 1 << 20, 0, 0, 0, 0]), Error::InvalidArgument);
    let spawn = Sys::TaskSpawn as u64;
    c.expect_err(
        "spawn with a kernel-space name",
        sys::syscall(spawn, [kernel, 5, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    c.expect_err("spawn of an unknown task", sys::task_spawn("no-such-task"), Error::NotFound);
    c.expect_err("map zero bytes", sys::mem_map(0, map::WRITE), Error::InvalidArgument);
    c.expect_err("map writable and executable", sys::mem_map(4096, map::WRITE | map::EXECUTE), Error::InvalidArgument);
    c.expect_err("map with unknown flags", sys::mem_map(4096, 0x80), Error::InvalidArgument);
    c.expect_err("map more than the limit", sys::mem_map(map::MAX_LEN + 1, map::WRITE), Error::InvalidArgument);
    c.expect_err("unmap memory never mapped", sys::mem_unmap(0x0000_4000_0000_0000, 4096), Error::InvalidArgument);
    c.expect_err("unmap the program's own code", sys::mem_unmap(0x400000, 4096), Error::InvalidArgument);
    c.expect_err(
        "thread entry in kernel space",
        sys::syscall(Sys::ThreadCreate as u64, [kernel, 0x1000_0000, 0, 1, 0, 0]),
        Error::InvalidArgument,
    );
    c.expect_err(
        "thread priority above the task's",
        sys::thread_create(never, 0x1000_0000, 0, 31),
        Error::InvalidArgument,
    );
    c.expect_err("wait with a never-issued token", sys::task_wait(0x1234_5678), Error::NotFound);
    c.expect_err("revoke a never-issued token", sys::cap_revoke(7), Error::NotFound);
    c.expect_err("unknown counter", sys::syscall(Sys::Counter as u64, [99, 0, 0, 0, 0, 0]), Error::InvalidArgument);
    // The task still works after all that.
    c.expect_ok("console write of a good buffer", sys::console_write(b"badsys: still alive\n"));
    let after = apps::resources();
    c.check("frames, slots, tasks and threads unchanged", before == after);
    c.finish()
}
