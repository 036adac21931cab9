//! The Iris kernel binary: joins the hardware layer (`arch-x86_64`) to the
//! kernel logic. `iris_main` boots the system described by the boot image;
//! `iris_trap` handles every entry into the kernel.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod fastpath;
mod ipc;
mod kernel;
mod memory;
mod syscall;

use arch_x86_64::cpu::{self, exit_code};
use arch_x86_64::multiboot::BootInfo;
use arch_x86_64::{println, TrapFrame};
use core::sync::atomic::Ordering;
use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Boot entry, called by `arch-x86_64` once long mode and the serial port
/// are up.
// SAFETY: the one symbol the arch crate's boot code calls; its signature
// matches the declaration there.
#[allow(unsafe_code)]
#[no_mangle]
pub fn iris_main(info: BootInfo) -> ! {
    println!("Iris {} — a capability microkernel for x86-64", env!("CARGO_PKG_VERSION"));
    if let Some(area) = arch_x86_64::take_heap_area() {
        HEAP.lock().init_from_slice(area);
    }
    match kernel::boot(&info) {
        Ok(frame) => arch_x86_64::trap::resume(frame),
        Err(why) => {
            println!("[iris] boot failed: {why}");
            cpu::exit_qemu(exit_code::KERNEL_FAULT)
        }
    }
}

/// Every trap, interrupt and syscall; returns the frame to resume.
// SAFETY: the one symbol the arch crate's trap entry calls; its signature
// matches the declaration there.
#[allow(unsafe_code)]
#[no_mangle]
pub fn iris_trap(frame: &mut TrapFrame) -> u64 {
    if frame.vector < 32 && !frame.from_user() {
        kernel_fault(frame);
    }
    kernel::trap(frame)
}

/// Every syscall, first: the lean path (see `fastpath`). Returns the frame
/// to resume with the lean exit, or 0 for the general path.
// SAFETY: the one symbol the arch crate's syscall entry calls, with the
// C calling convention; the entry passes the frame it is building on the
// running thread's kernel stack, valid and unaliased until we return.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn iris_syscall_fast(frame: &mut TrapFrame) -> u64 {
    fastpath::syscall(frame)
}

fn kernel_fault(frame: &TrapFrame) -> ! {
    let cr2 = if frame.vector == 14 { cpu::fault_address() } else { 0 };
    println!(
        "[iris] KERNEL FAULT: {} (vector {}), error {:#x}, rip {:#x}, rsp {:#x}, cr2 {:#x}, thread {}, task {}",
        arch_x86_64::trap::vector_name(frame.vector),
        frame.vector,
        frame.error,
        frame.rip,
        frame.rsp,
        cr2,
        kernel::CURRENT_THREAD.load(Ordering::Relaxed),
        TaskLabel(kernel::CURRENT_TASK.load(Ordering::Relaxed))
    );
    cpu::exit_qemu(exit_code::KERNEL_FAULT)
}

/// A task id in a report: "none (idle)" for the idle thread.
struct TaskLabel(usize);

impl core::fmt::Display for TaskLabel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 == usize::MAX {
            f.write_str("none (idle)")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!(
        "[iris] KERNEL PANIC: {info} (thread {}, task {})",
        kernel::CURRENT_THREAD.load(Ordering::Relaxed),
        TaskLabel(kernel::CURRENT_TASK.load(Ordering::Relaxed))
    );
    cpu::exit_qemu(exit_code::KERNEL_FAULT)
}
