//! A demo client: finds the key-value server through the name service,
//! stores a few values under keys of its own and reads them back. Its
//! identity is the badge on the name-service token it was given.
#![no_std]
#![no_main]

use sdk::syscall_api::{sys_ipc_call, sys_ipc_call_caps, Timeout};
use sdk::{println, sys};

sdk::entry!(main);

fn main() -> u64 {
    let (caps, n) = sdk::startup_caps();
    if n < 1 {
        return 1;
    }
    let names = caps[0];
    let me = sys::cap_inspect(names).map(|c| c.2).unwrap_or(0);
    let mut out = [0u8; 64];
    let kv = match sys_ipc_call_caps(names, b"lookup kv", &[], &mut out, Timeout::Never) {
        Ok(m) if m.ncaps == 1 => m.caps[0],
        r => {
            println!("client {}: lookup failed: {:?}", me, r);
            return 2;
        }
    };
    let mut failures = 0;
    for i in 0..5u8 {
        let mut req = [0u8; 64];
        let put = fmt(&mut req, &[b"put c", &[b'0' + me as u8], b"k", &[b'0' + i], b" value-", &[b'a' + i]]);
        match sys_ipc_call(kv, put, &mut out) {
            Ok(n) if &out[..n] == b"stored" => {}
            r => {
                println!("client {}: put failed: {:?}", me, r);
                failures += 1;
            }
        }
    }
    for i in 0..5u8 {
        let mut req = [0u8; 64];
        let get = fmt(&mut req, &[b"get c", &[b'0' + me as u8], b"k", &[b'0' + i]]);
        let want = [b'v', b'a', b'l', b'u', b'e', b'-', b'a' + i];
        match sys_ipc_call(kv, get, &mut out) {
            Ok(n) if out[..n] == want => {}
            r => {
                println!("client {}: get returned {:?}", me, r.map(|n| &out[..n]));
                failures += 1;
            }
        }
    }
    let _ = sys::cap_delete(kv);
    println!("client {}: 5 values stored and read back, {} failures", me, failures);
    failures
}

fn fmt<'a>(buf: &'a mut [u8], parts: &[&[u8]]) -> &'a [u8] {
    let mut n = 0;
    for p in parts {
        buf[n..n + p.len()].copy_from_slice(p);
        n += p.len();
    }
    &buf[..n]
}
