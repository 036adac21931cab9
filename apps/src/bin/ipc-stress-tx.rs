//! A sender of the "ipc-stress" scenario. Its one capability is a send
//! token whose badge is its sender id (1–3). It sends `PER_SENDER`
//! messages of mixed sizes — mostly 12–64 bytes (registers), one in 16 up
//! to 2 KiB (copied) — each carrying its sequence number, its sender id, a
//! pattern and a checksum. Sender 2 calls instead of sending and checks
//! each reply (the sequence number and checksum echoed). Exit code: the
//! number of failures.
#![no_std]
#![no_main]

use sdk::println;
use sdk::syscall_api::{sys_ipc_call, sys_ipc_send};

sdk::entry!(main);

/// Messages per sender (ipc-stress-rx and t-ipc-stress use the same number).
const PER_SENDER: u32 = 33_334;
/// The sender that calls.
const CALLER: u8 = 2;

/// A well-mixed hash of (sender, sequence number).
fn mix(id: u8, seq: u32) -> u64 {
    let mut z = (u64::from(id) << 32 | u64::from(seq)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Length of message `seq` of sender `id`: 12–64 bytes, or one in 16 65–2048.
fn length(id: u8, seq: u32) -> usize {
    let h = mix(id, seq);
    if h.is_multiple_of(16) {
        65 + ((h >> 8) % (2048 - 65 + 1)) as usize
    } else {
        12 + ((h >> 8) % 53) as usize
    }
}

/// Builds message `seq` of sender `id` into `buf`; returns its length.
fn build(buf: &mut [u8; 2048], id: u8, seq: u32) -> usize {
    let len = length(id, seq);
    buf[..4].copy_from_slice(&seq.to_le_bytes());
    buf[4] = id;
    apps::fill_pattern(&mut buf[5..len - 4], mix(id, seq));
    let sum = apps::checksum(&buf[..len - 4]);
    buf[len - 4..len].copy_from_slice(&sum.to_le_bytes());
    len
}

fn main() -> u64 {
    let (caps, n) = sdk::startup_caps();
    let id = match (n, sdk::sys::cap_inspect(caps[0])) {
        (1, Ok((_, _, badge))) if (1..=3).contains(&badge) => badge as u8,
        r => {
            println!("ipc-stress-tx: FAILED: wanted one token badged 1-3, got {:?}", r);
            return 1;
        }
    };
    let tok = caps[0];
    let mut msg = [0u8; 2048];
    let mut ack = [0u8; 16];
    let (mut failures, mut bytes) = (0u64, 0u64);
    for seq in 0..PER_SENDER {
        let len = build(&mut msg, id, seq);
        bytes += len as u64;
        let r = if id == CALLER {
            sys_ipc_call(tok, &msg[..len], &mut ack).map(|n| {
                let want_sum = u32::from_le_bytes([msg[len - 4], msg[len - 3], msg[len - 2], msg[len - 1]]);
                let ok = n == 8 && ack[..4] == seq.to_le_bytes() && ack[4..8] == want_sum.to_le_bytes();
                if !ok && failures < 10 {
                    println!("ipc-stress-tx {}: FAILED: reply to message {}: {:x?}", id, seq, &ack[..n.min(16)]);
                }
                ok
            })
        } else {
            sys_ipc_send(tok, &msg[..len]).map(|()| true)
        };
        match r {
            Ok(true) => {}
            Ok(false) => failures += 1,
            Err(e) => {
                println!("ipc-stress-tx {}: FAILED: message {}: {:?}", id, seq, e);
                failures += 1;
                if failures > 10 {
                    break;
                }
            }
        }
    }
    println!(
        "ipc-stress-tx {}: {} {} messages, {} bytes, {} failures",
        id,
        if id == CALLER { "called with" } else { "sent" },
        PER_SENDER,
        bytes,
        failures
    );
    failures
}
