//! Everything in Iris that touches x86-64 hardware: boot, descriptor tables,
//! trap and SYSCALL entry, paging, the serial console, the timer. All of the
//! kernel's `unsafe` lives here, each block with a `SAFETY:` note; the kernel
//! proper (`kernel`, `kernel-core`) is safe code.
//!
//! The kernel binary provides two symbols this crate calls: `iris_main`
//! (after boot) and `iris_trap` (on every trap).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod boot;
pub mod cpu;
pub mod multiboot;
pub mod paging;
pub mod serial;
pub mod trap;

pub use trap::TrapFrame;

extern "Rust" {
    fn iris_main(info: multiboot::BootInfo) -> !;
}

/// First Rust code: called by the boot assembly with the multiboot magic
/// and info address.
extern "C" fn arch_entry(magic: u32, mbi: u32) -> ! {
    serial::init();
    match multiboot::parse(magic, u64::from(mbi)) {
        // SAFETY: `iris_main` is defined by the kernel binary with exactly
        // this signature.
        Ok(info) => unsafe { iris_main(info) },
        Err(why) => {
            println!("[iris] cannot boot: {why}");
            cpu::exit_qemu(cpu::exit_code::KERNEL_FAULT)
        }
    }
}

/// Size of the kernel heap.
pub const HEAP_SIZE: usize = 16 << 20;

#[repr(C, align(4096))]
struct HeapArea([core::mem::MaybeUninit<u8>; HEAP_SIZE]);
static mut HEAP_AREA: HeapArea = HeapArea([core::mem::MaybeUninit::uninit(); HEAP_SIZE]);
static HEAP_TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The memory for the kernel heap, handed out once (it lives in the kernel
/// image's bss); `None` on a second call.
pub fn take_heap_area() -> Option<&'static mut [core::mem::MaybeUninit<u8>]> {
    if HEAP_TAKEN.swap(true, core::sync::atomic::Ordering::AcqRel) {
        return None;
    }
    // SAFETY: the flag above makes this the only reference ever created to
    // HEAP_AREA.
    Some(unsafe { &mut (*core::ptr::addr_of_mut!(HEAP_AREA)).0 })
}
extern crate memfns;
