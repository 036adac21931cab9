//! Scenario "ipc-stress": three sender tasks exchange 100,002 messages of
//! mixed sizes with a receiver task — two senders on a synchronous endpoint
//! (one sending, one calling), one on an asynchronous endpoint with a queue
//! of 8 — each sender identified by the badge of its token. The receiver
//! (`ipc-stress-rx`, two threads per endpoint) checks every message and
//! that each arrived exactly once; the endpoint counters agree; everything
//! is freed afterwards.
#![no_std]
#![no_main]

use apps::Checker;
use sdk::abi::{exit, rights, Counter};
use sdk::syscall_api::*;
use sdk::{println, sys};

sdk::entry!(main);

/// Messages per sender (as ipc-stress-tx and ipc-stress-rx).
const PER_SENDER: u64 = 33_334;
const TOTAL: u64 = 3 * PER_SENDER;

fn main() -> u64 {
    let mut c = Checker::new("ipc-stress");
    let before = apps::resources();
    let eps_before = apps::endpoints();
    let sync = c.expect_ok("create a sync endpoint (2 KiB maximum)", sys_endpoint_create(EndpointKind::Sync, 2048));
    let aq = c.expect_ok("create an async endpoint (8 x 2 KiB)", sys_endpoint_create(EndpointKind::Async(8), 2048));
    let rx_tokens = [
        c.expect_ok("mint the receiver's sync token", sys::cap_mint(sync, rights::READ | rights::GRANT, 0)),
        c.expect_ok("mint the receiver's async token", sys::cap_mint(aq, rights::READ | rights::GRANT, 0)),
    ];
    let tx_tokens = [
        c.expect_ok("mint sender 1's token (sync, badge 1)", sys::cap_mint(sync, rights::WRITE | rights::GRANT, 1)),
        c.expect_ok("mint sender 2's token (sync, badge 2)", sys::cap_mint(sync, rights::WRITE | rights::GRANT, 2)),
        c.expect_ok("mint sender 3's token (async, badge 3)", sys::cap_mint(aq, rights::WRITE | rights::GRANT, 3)),
    ];
    let t0 = sys::counter(Counter::Ticks);
    let rx = match sys::task_spawn_with("ipc-stress-rx", &rx_tokens) {
        Ok(t) => t,
        Err(e) => {
            println!("ipc-stress: FAILED: spawning the receiver: {:?}", e);
            return 1;
        }
    };
    let mut txs = [0u64; 3];
    for (t, &tok) in txs.iter_mut().zip(&tx_tokens) {
        *t = sys::task_spawn_with("ipc-stress-tx", &[tok]).unwrap_or(0);
        c.check("spawn a sender", *t != 0);
    }
    for tok in rx_tokens.iter().chain(&tx_tokens) {
        c.expect_ok("delete this task's copy of a token given away", sys::cap_delete(*tok));
    }
    for t in txs.into_iter().filter(|&t| t != 0) {
        apps::wait_expect(&mut c, "ipc-stress-tx", t, (exit::EXITED, 0));
    }
    // The queue may still hold the last messages: wait until all are delivered.
    let (mut delivered, mut last, mut idle) = (0, 0, 0);
    while idle < 300 {
        let (s, a) = (sys_endpoint_stats(sync), sys_endpoint_stats(aq));
        delivered = s.map_or(0, |s| s.0) + a.map_or(0, |a| a.0);
        if delivered >= TOTAL {
            break;
        }
        idle = if delivered == last { idle + 1 } else { 0 };
        last = delivered;
        apps::sleep_us(10_000);
    }
    let ticks = sys::counter(Counter::Ticks) - t0;
    let s = sys_endpoint_stats(sync).unwrap_or_default();
    let a = sys_endpoint_stats(aq).unwrap_or_default();
    println!(
        "ipc-stress: {} messages delivered ({} calls, {} bytes) in {}.{:02} s ({} timer ticks)",
        delivered,
        s.2 + a.2,
        s.1 + a.1,
        ticks / 100,
        ticks % 100,
        ticks
    );
    c.check("at least 100,000 messages were delivered", delivered == TOTAL && TOTAL >= 100_000);
    c.check("the sync endpoint delivered 2 x 33,334, half of them calls", (s.0, s.2) == (2 * PER_SENDER, PER_SENDER));
    c.check("the async endpoint delivered 33,334", (a.0, a.2) == (PER_SENDER, 0));
    c.expect_ok("delete the sync endpoint (the receiver's threads end)", sys_endpoint_delete(sync));
    c.expect_ok("delete the async endpoint", sys_endpoint_delete(aq));
    apps::wait_expect(&mut c, "ipc-stress-rx", rx, (exit::EXITED, 0));
    apps::check_clean(&mut c, before, eps_before);
    c.finish()
}
