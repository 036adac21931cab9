//! Several threads of one task share memory: each adds to a shared counter
//! and the main thread waits until all are done.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use sdk::{abi, println, sys};

sdk::entry!(main);

static TOTAL: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
const WORKERS: u64 = 3;
const STACK: u64 = 16 * 1024;

extern "C" fn worker(n: u64) -> ! {
    for _ in 0..1000 {
        TOTAL.fetch_add(n, Ordering::Relaxed);
    }
    println!("threads: worker {} done", n);
    DONE.fetch_add(1, Ordering::Release);
    sys::thread_exit(0)
}

fn main() -> u64 {
    for n in 1..=WORKERS {
        let stack = match sys::mem_map(STACK, abi::map::WRITE) {
            Ok(s) => s,
            Err(e) => {
                println!("threads: no stack: {:?}", e);
                return 1;
            }
        };
        match sys::thread_create(worker, stack + STACK, n, 5).and_then(sys::thread_start) {
            Ok(()) => {}
            Err(e) => {
                println!("threads: thread {} failed: {:?}", n, e);
                return 1;
            }
        }
    }
    while DONE.load(Ordering::Acquire) < WORKERS {
        sys::yield_now();
    }
    let total = TOTAL.load(Ordering::Relaxed);
    println!("threads: {} workers added up to {}", WORKERS, total);
    if total == 1000 * (1 + 2 + 3) {
        0
    } else {
        1
    }
}
