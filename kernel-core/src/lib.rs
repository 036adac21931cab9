//! Iris kernel logic that needs no hardware: everything here is plain data
//! and algorithms, tested with `cargo test` on the host. The `kernel` crate
//! joins it to the x86-64 hardware.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;
pub mod cap;
pub mod elfcheck;
pub mod frames;
pub mod image;
pub mod ipc;
pub mod manifest;
pub mod sched;
pub mod tqueue;
