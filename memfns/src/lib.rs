//! The C memory functions the compiler's generated code calls. Freestanding
//! binaries built for `x86_64-unknown-linux-gnu` expect the C library to
//! supply them; Iris's kernel and tasks have none, so they link this crate.
//! Copies and fills use `rep movsq`/`rep stosq` for the bulk, so a copy is
//! not one instruction per byte, and `rep movsb` only for the tail.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;

/// Copies `n` bytes from `src` to `dst` (no overlap).
///
/// # Safety
/// The C contract: both ranges valid for `n` bytes and not overlapping.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid for `n` bytes; the
    // direction flag is clear per the ABI.
    unsafe {
        asm!(
            "rep movsq",
            "mov rcx, {tail}",
            "rep movsb",
            inout("rcx") n / 8 => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            tail = in(reg) n % 8,
            options(nostack, preserves_flags)
        );
    }
    dst
}

/// Copies `n` bytes from `src` to `dst`; the ranges may overlap.
///
/// # Safety
/// The C contract: both ranges valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // Forward copy is safe: dst is below src or past its end.
        // SAFETY: forwarded contract.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: copy backwards from the last byte with the direction flag set,
    // restoring it afterwards; ranges valid per the caller.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dst.add(n).wrapping_sub(1) => _,
            inout("rsi") src.add(n).wrapping_sub(1) => _,
            options(nostack)
        );
    }
    dst
}

/// Fills `n` bytes at `dst` with the low byte of `c`.
///
/// # Safety
/// The C contract: the range valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    let byte = c as u8 as u64;
    let pattern = byte * 0x0101_0101_0101_0101;
    // SAFETY: the caller guarantees the range is valid for `n` bytes.
    unsafe {
        asm!(
            "rep stosq",
            "mov rcx, {tail}",
            "rep stosb",
            inout("rcx") n / 8 => _,
            inout("rdi") dst => _,
            in("rax") pattern,
            tail = in(reg) n % 8,
            options(nostack, preserves_flags)
        );
    }
    dst
}

/// Compares `n` bytes; returns <0, 0 or >0 like C's `memcmp`.
///
/// # Safety
/// The C contract: both ranges valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n` and both ranges are valid for `n` bytes.
        let (x, y) = unsafe { (a.add(i).read(), b.add(i).read()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Like `memcmp` but only equal / not equal.
///
/// # Safety
/// The C contract: both ranges valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { memcmp(a, b, n) }
}

/// The unwinding personality routine that the precompiled `alloc` refers
/// to. Iris binaries are built with `panic = "abort"`, so nothing unwinds
/// and this is never called; it exists only to satisfy the linker.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Resumes unwinding — referenced from the precompiled `alloc`'s landing
/// pads. Nothing unwinds in Iris binaries (`panic = "abort"`), so it is never
/// reached; should it be, it stops rather than run on.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
