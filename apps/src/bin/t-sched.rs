//! Scenario "sched": two busy tasks of equal priority both make progress
//! (the log shows their rounds interleaved, which only preemption allows);
//! of two ready tasks the higher-priority one runs first; two threads of one
//! task that never yield both advance while the other is unfinished.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use sdk::abi::{exit, map, Counter};
use sdk::{println, sys};

sdk::entry!(main);

static COUNT: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static SEEN: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
const LIMIT_TICKS: u64 = 3000;

/// Counts up; notes each time the other thread's count changed under it.
/// Never yields: the other thread can only advance through preemption.
extern "C" fn counter_thread(me: u64) -> ! {
    let (me, other) = (me as usize, 1 - me as usize);
    let start = sys::counter(Counter::Ticks);
    let mut last = COUNT[other].load(Ordering::Relaxed);
    // Run until both threads have seen the other advance three times: with
    // no yields, that can only happen through preemption.
    while SEEN[0].load(Ordering::Relaxed) < 3 || SEEN[1].load(Ordering::Relaxed) < 3 {
        COUNT[me].fetch_add(1, Ordering::Relaxed);
        apps::spin(1000);
        let now = COUNT[other].load(Ordering::Relaxed);
        if now != last {
            SEEN[me].fetch_add(1, Ordering::Relaxed);
            last = now;
        }
        if COUNT[me].load(Ordering::Relaxed).is_multiple_of(256) && sys::counter(Counter::Ticks) > start + LIMIT_TICKS {
            break;
        }
    }
    sys::thread_exit(0)
}

fn main() -> u64 {
    let mut c = apps::Checker::new("sched");
    let before = apps::resources();

    let a = apps::spawn(&mut c, "busy-a");
    let b = apps::spawn(&mut c, "busy-b");
    apps::wait_expect(&mut c, "busy-a", a, (exit::EXITED, 0));
    apps::wait_expect(&mut c, "busy-b", b, (exit::EXITED, 0));

    let low = apps::spawn(&mut c, "prio-low");
    let high = apps::spawn(&mut c, "prio-high");
    apps::wait_expect(&mut c, "prio-low", low, (exit::EXITED, 0));
    apps::wait_expect(&mut c, "prio-high", high, (exit::EXITED, 0));

    // Two threads at this task's own priority; the main thread yields.
    let stack = c.expect_ok("map thread stacks", sys::mem_map(2 * 16384, map::WRITE));
    let mut tokens = [0; 2];
    for i in 0..2u64 {
        let t = c.expect_ok("create thread", sys::thread_create(counter_thread, stack + (i + 1) * 16384, i, 20));
        c.expect_ok("start thread", sys::thread_start(t));
        tokens[i as usize] = t;
    }
    // A thread's token dies with the thread: wait until both are gone.
    while tokens.iter().any(|&t| sys::cap_inspect(t).is_ok()) {
        sys::yield_now();
    }
    let seen = [SEEN[0].load(Ordering::Relaxed), SEEN[1].load(Ordering::Relaxed)];
    println!("sched: threads saw each other advance {} and {} times", seen[0], seen[1]);
    c.check("both threads of one task advanced while the other was unfinished", seen[0] >= 3 && seen[1] >= 3);
    c.expect_ok("unmap thread stacks", sys::mem_unmap(stack, 2 * 16384));
    c.check("timer ticks counted", sys::counter(Counter::Ticks) > 0);

    let after = apps::resources();
    c.check("frames, slots, tasks and threads returned to their start values", before == after);
    c.finish()
}
