//! Server task of the IPC benchmark (the "bench" system). It is started by
//! `bench` with one endpoint token whose badge says how to serve
//! ([`apps::ServeMode`]): with the SDK's reply-and-receive loop (for the
//! user-visible figures) or with a minimal assembly loop (for the
//! kernel-path figures), replying a fixed number of bytes, with its receive
//! and reply buffers at a given offset within a page (which selects copy or
//! remap for large messages). It serves until the bench deletes the
//! endpoint, then exits with 0 (any other error: 1).
#![no_std]
#![no_main]

use apps::{bench_serve, ServeMode, BENCH_MAX, BENCH_REGION};
use sdk::abi::map;
use sdk::{println, sys, SyscallError};

sdk::entry!(main);

fn region() -> Option<&'static mut [u8]> {
    let a = sys::mem_map(BENCH_REGION as u64, map::WRITE).ok()?;
    // SAFETY: a fresh writable mapping of BENCH_REGION bytes, used only
    // through this slice for the life of the task.
    Some(unsafe { core::slice::from_raw_parts_mut(a as *mut u8, BENCH_REGION) })
}

fn main() -> u64 {
    let (caps, n) = sdk::startup_caps();
    if n != 1 {
        println!("bench-server: FAILED: started with {} capabilities, wanted 1", n);
        return 1;
    }
    let ep = caps[0];
    let mode = match sys::cap_inspect(ep) {
        Ok((_, _, badge)) => ServeMode::from_badge(badge),
        Err(e) => {
            println!("bench-server: FAILED: inspecting the endpoint token: {:?}", e);
            return 1;
        }
    };
    let (Some(recv), Some(out)) = (region(), region()) else {
        println!("bench-server: FAILED: no memory for the buffers");
        return 1;
    };
    let off = mode.offset % 4096;
    match bench_serve(ep, mode, &mut recv[off..off + BENCH_MAX], &out[off..off + BENCH_MAX]) {
        // The bench deleted the endpoint: the phase is over.
        SyscallError::NotFound => 0,
        e => {
            println!("bench-server: FAILED: reply-and-receive: {:?}", e);
            1
        }
    }
}
