//! A server of the "ipc-lifecycle" scenario that dies in the middle of a
//! call: it receives one call on the endpoint it is given and, without
//! replying, exits (request "exit": exit code 0) or faults (request
//! "fault": reads address 0). Anything else exits with 1.
#![no_std]
#![no_main]

use sdk::println;
use sdk::syscall_api::sys_ipc_receive;

sdk::entry!(main);

fn main() -> u64 {
    let (caps, n) = sdk::startup_caps();
    if n != 1 {
        println!("ipc-dying-server: FAILED: wanted one endpoint, got {}", n);
        return 1;
    }
    let mut buf = [0u8; 64];
    let m = match sys_ipc_receive(caps[0], &mut buf) {
        Ok(m) => m,
        Err(e) => {
            println!("ipc-dying-server: FAILED: receive: {:?}", e);
            return 1;
        }
    };
    if m.reply == 0 {
        println!("ipc-dying-server: FAILED: the message is not a call");
        return 1;
    }
    match &buf[..m.len] {
        b"exit" => {
            println!("ipc-dying-server: holding a call, exiting without a reply");
            0
        }
        b"fault" => {
            println!("ipc-dying-server: holding a call, faulting without a reply");
            // SAFETY: not safe at all: reading address 0 faults on purpose,
            // which ends this task.
            unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) }
        }
        _ => {
            println!("ipc-dying-server: FAILED: unexpected request");
            1
        }
    }
}
