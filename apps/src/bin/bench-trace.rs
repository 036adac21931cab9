//! Init of the instruction-trace image of `cargo xtask bench --trace` (a
//! tool for finding where the kernel's instructions go; not a benchmark).
//! It starts one assembly `bench-server` per call operation, warms every
//! operation up, prints `trace: ready` and sleeps for a second — meanwhile
//! xtask switches on QEMU's per-instruction execution log — then runs each
//! operation [`RUNS`] times through one assembly routine whose `syscall`
//! instruction (`bench_trace_at`) and the instruction after it
//! (`bench_trace_after`) xtask finds by symbol, and prints `trace: end`.
//! xtask then counts, for the cheapest run of each operation, every
//! instruction from that `syscall` to the return, by kernel function.
#![no_std]
#![no_main]

use apps::{ServeMode, BENCH_REGION};
use sdk::abi::{ipc as ipc_abi, map, rights, Sys};
use sdk::syscall_api::{sys_endpoint_create, EndpointKind};
use sdk::{println, sys};

sdk::entry!(main);

/// Runs of each operation in the traced part (xtask reads the same number).
const RUNS: usize = 8;

core::arch::global_asm!(
    ".globl bench_trace_syscall",
    ".globl bench_trace_at",
    ".globl bench_trace_after",
    "bench_trace_syscall:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rax, rdi",
    "mov rdi, rsi",
    "mov r10, rdx",
    "mov r8, rcx",
    "mov rdx, -1",
    "bench_trace_at:",
    "syscall",
    "bench_trace_after:",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
);

extern "C" {
    /// One system call with `rax`, `rdi`, `r10` (receive buffer), `r8`
    /// (MR0) and an unlimited timeout; returns the status. Preserves the
    /// callee-saved registers (the kernel writes rbx, rbp and r12–r15 as
    /// message registers).
    fn bench_trace_syscall(rax: u64, rdi: u64, r10: u64, r8: u64) -> u64;
}

fn syscall(rax: u64, rdi: u64, r10: u64, r8: u64) -> u64 {
    // SAFETY: the routine follows the C ABI (callee-saved registers
    // restored); the buffers it passes are this task's live mappings.
    unsafe { bench_trace_syscall(rax, rdi, r10, r8) }
}

/// A bench-server in assembly mode replying `reply_len` bytes from buffers
/// at page offset `offset`; returns the endpoint.
fn server(reply_len: usize, offset: usize) -> u64 {
    let ep = sys_endpoint_create(EndpointKind::Sync, 0).unwrap_or(0);
    let mode = ServeMode { asm: true, reply_len, offset };
    let given = sys::cap_mint(ep, rights::READ | rights::GRANT, mode.badge()).unwrap_or(0);
    if sys::task_spawn_with("bench-server", &[given]).is_err() {
        println!("trace: FAILED: spawning bench-server");
    }
    ep
}

/// Writes `v` into the first byte of every page of the first `len` bytes
/// at `addr`: a page still shared copy-on-write from an earlier remap takes
/// a fault and a private copy (as the benchmark's `-fresh` rows do).
fn touch_pages(addr: u64, len: usize, v: u8) {
    for page in (0..len).step_by(4096) {
        // SAFETY: `addr` is one of this task's writable mappings of
        // `BENCH_REGION` bytes, and `len` never exceeds it.
        unsafe { core::ptr::write_volatile((addr as usize + page) as *mut u8, v) };
    }
}

fn main() -> u64 {
    let (Ok(send), Ok(reply)) =
        (sys::mem_map(BENCH_REGION as u64, map::WRITE), sys::mem_map(BENCH_REGION as u64, map::WRITE))
    else {
        println!("trace: FAILED: no memory");
        return 1;
    };
    let call = |len: usize| ipc_abi::encode(Sys::IpcCall as u64, 0, len as u64, len as u64);
    // In the order xtask names them: (rax, endpoint, bytes of each buffer
    // to rewrite before each call — the `-fresh` operations).
    let ops = [
        (Sys::Counter as u64, u64::MAX, 0),
        (call(0), server(0, 0), 0),
        (call(64), server(64, 0), 0),
        (call(4096), server(4096, 64), 0),
        (call(65536), server(65536, 64), 0),
        (call(65536), server(65536, 0), 0),
        (call(16384), server(16384, 0), 16384),
        (call(65536), server(65536, 0), 65536),
    ];
    let mut v = 0u8;
    let mut run = |(rax, rdi, fresh): (u64, u64, usize)| {
        v = v.wrapping_add(1);
        touch_pages(send, fresh, v);
        touch_pages(reply, fresh, v);
        syscall(rax, rdi, reply, send);
    };
    for _ in 0..4 {
        for op in ops {
            run(op);
        }
    }
    println!("trace: ready");
    apps::sleep_us(1_000_000);
    for op in ops {
        for _ in 0..RUNS {
            run(op);
        }
    }
    println!("trace: end");
    0
}
