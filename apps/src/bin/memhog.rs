//! Uses memory and threads and leaves some of both behind at exit, so the
//! frames scenario can check that task teardown returns everything.
#![no_std]
#![no_main]

use sdk::abi::map;
use sdk::{println, sys};

sdk::entry!(main);

extern "C" fn sleeper(_: u64) -> ! {
    loop {
        sys::yield_now();
    }
}

fn main() -> u64 {
    // Map, touch and unmap a few regions.
    for round in 1..=4u64 {
        let len = round * 64 * 1024;
        let Ok(a) = sys::mem_map(len, map::WRITE) else { return 1 };
        // SAFETY: `a` is a fresh writable mapping of `len` bytes.
        let bytes = unsafe { core::slice::from_raw_parts_mut(a as *mut u8, len as usize) };
        if bytes.iter().any(|&b| b != 0) {
            println!("memhog: fresh memory was not zeroed");
            return 2;
        }
        bytes.fill(round as u8);
        if sys::mem_unmap(a, len).is_err() {
            return 3;
        }
    }
    // Leave 1 MiB mapped and two threads alive: exit must reclaim them.
    let Ok(keep) = sys::mem_map(1 << 20, map::WRITE) else { return 4 };
    for i in 0..2 {
        let Ok(t) = sys::thread_create(sleeper, keep + (i + 1) * 65536, i, 1) else { return 5 };
        if sys::thread_start(t).is_err() {
            return 6;
        }
    }
    println!("memhog: exiting with 1 MiB mapped and 2 threads running");
    sys::task_exit(0)
}
