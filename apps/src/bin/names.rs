//! The demo's name service: servers register an endpoint under a name
//! (`register NAME` with the endpoint capability attached); clients look a
//! name up (`lookup NAME`) and get the capability in the reply. `quit` ends
//! the service. It is given its own endpoint at spawn.
#![no_std]
#![no_main]

use sdk::println;
use sdk::syscall_api::{sys_ipc_reply, sys_ipc_reply_caps, sys_ipc_reply_receive, Message};

sdk::entry!(main);

const SLOTS: usize = 8;

struct Entry {
    name: [u8; 24],
    len: usize,
    token: u64,
}

fn main() -> u64 {
    let (caps, n) = sdk::startup_caps();
    if n < 1 {
        println!("names: no endpoint given");
        return 1;
    }
    let ep = caps[0];
    let mut table: [Option<Entry>; SLOTS] = [const { None }; SLOTS];
    let mut buf = [0u8; 64];
    let mut reply = 0;
    let mut answer: &[u8] = b"";
    println!("names: serving");
    loop {
        let m: Message = match sys_ipc_reply_receive(reply, answer, ep, &mut buf) {
            Ok(m) => m,
            Err(e) => {
                println!("names: receive failed: {:?}", e);
                return 2;
            }
        };
        reply = m.reply;
        let req = &buf[..m.len];
        answer = b"error";
        if let Some(name) = req.strip_prefix(b"register ") {
            let free = table.iter().position(Option::is_none);
            if let (Some(i), true, true) = (free, m.ncaps == 1, name.len() <= 24) {
                let mut e = Entry { name: [0; 24], len: name.len(), token: m.caps[0] };
                e.name[..name.len()].copy_from_slice(name);
                table[i] = Some(e);
                println!("names: registered '{}'", core::str::from_utf8(name).unwrap_or("?"));
                answer = b"ok";
            }
        } else if let Some(name) = req.strip_prefix(b"lookup ") {
            let found = table.iter().flatten().find(|e| &e.name[..e.len] == name).map(|e| e.token);
            if let Some(token) = found {
                // The capability travels in the reply; then wait afresh.
                if sys_ipc_reply_caps(reply, b"ok", &[token]).is_err() {
                    println!("names: reply failed");
                }
                reply = 0;
                answer = b"";
            } else {
                answer = b"none";
            }
        } else if req == b"quit" {
            let _ = sys_ipc_reply(reply, b"bye");
            println!("names: quitting");
            return 0;
        }
    }
}
