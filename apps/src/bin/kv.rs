//! The demo's key-value server: creates its endpoint, registers it with the
//! name service, and answers `put KEY VALUE`, `get KEY` and `quit` calls.
#![no_std]
#![no_main]

use sdk::println;
use sdk::syscall_api::{
    sys_endpoint_create, sys_ipc_call_caps, sys_ipc_reply, sys_ipc_reply_receive, EndpointKind, Timeout,
};

sdk::entry!(main);

const SLOTS: usize = 16;

#[derive(Clone, Copy)]
struct Pair {
    key: [u8; 16],
    klen: usize,
    value: [u8; 32],
    vlen: usize,
}

fn main() -> u64 {
    let (caps, n) = sdk::startup_caps();
    if n < 1 {
        println!("kv: no name service given");
        return 1;
    }
    let names = caps[0];
    let Ok(ep) = sys_endpoint_create(EndpointKind::Sync, 256) else { return 2 };
    let mut out = [0u8; 8];
    match sys_ipc_call_caps(names, b"register kv", &[ep], &mut out, Timeout::Never) {
        Ok(m) if &out[..m.len] == b"ok" => println!("kv: registered with the name service"),
        r => {
            println!("kv: registration failed: {:?}", r);
            return 3;
        }
    }
    let mut store: [Option<Pair>; SLOTS] = [None; SLOTS];
    let mut buf = [0u8; 256];
    let mut answer = [0u8; 64];
    let mut alen = 0;
    let mut reply = 0;
    loop {
        let m = match sys_ipc_reply_receive(reply, &answer[..alen], ep, &mut buf) {
            Ok(m) => m,
            Err(e) => {
                println!("kv: receive failed: {:?}", e);
                return 4;
            }
        };
        reply = m.reply;
        let req = &buf[..m.len];
        alen = 0;
        let mut say = |s: &[u8]| {
            answer[..s.len()].copy_from_slice(s);
            alen = s.len();
        };
        if let Some(rest) = req.strip_prefix(b"put ") {
            let mut parts = rest.splitn(2, |&b| b == b' ');
            let (Some(k), Some(v)) = (parts.next(), parts.next()) else {
                say(b"bad request");
                continue;
            };
            let slot = store.iter().position(|p| p.is_some_and(|p| &p.key[..p.klen] == k));
            let slot = slot.or_else(|| store.iter().position(Option::is_none));
            match slot {
                Some(i) if k.len() <= 16 && v.len() <= 32 => {
                    let mut p = Pair { key: [0; 16], klen: k.len(), value: [0; 32], vlen: v.len() };
                    p.key[..k.len()].copy_from_slice(k);
                    p.value[..v.len()].copy_from_slice(v);
                    store[i] = Some(p);
                    say(b"stored");
                }
                _ => say(b"full"),
            }
        } else if let Some(k) = req.strip_prefix(b"get ") {
            match store.iter().flatten().find(|p| &p.key[..p.klen] == k) {
                Some(p) => {
                    let v = p.value;
                    say(&v[..p.vlen]);
                }
                None => say(b"missing"),
            }
        } else if req == b"quit" {
            let _ = sys_ipc_reply(reply, b"bye");
            println!("kv: quitting");
            return 0;
        } else {
            say(b"bad request");
        }
    }
}
