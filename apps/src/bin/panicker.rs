//! Panics: the SDK's panic handler must print the message and end the task
//! with exit code 101 (`abi::exit::PANIC_CODE`).
#![no_std]
#![no_main]

sdk::entry!(main);

fn main() -> u64 {
    let v = core::hint::black_box(7u64);
    if v == 7 {
        panic!("panicker: deliberate panic with value {}", v);
    }
    0
}
