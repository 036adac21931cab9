//! The demo system's init task: starts a name service, a key-value server
//! and two clients that find the server through the name service; also a
//! hello task and a multi-threaded task. It waits for all of them, prints
//! each endpoint's IPC counters and checks that every frame and capability
//! slot came back.
#![no_std]
#![no_main]

use sdk::abi::{exit, rights, Counter};
use sdk::syscall_api::{
    sys_endpoint_create, sys_endpoint_delete, sys_endpoint_stats, sys_ipc_call, sys_ipc_call_caps, EndpointKind,
    Timeout,
};
use sdk::{println, sys};

sdk::entry!(main);

fn main() -> u64 {
    println!("init: Iris demo system starting");
    let before = apps::resources();
    let mut c = apps::Checker::new("init");
    for name in ["hello", "threads"] {
        let t = apps::spawn(&mut c, name);
        apps::wait_expect(&mut c, name, t, (exit::EXITED, 0));
    }

    let names_ep = c.expect_ok("create the name-service endpoint", sys_endpoint_create(EndpointKind::Sync, 256));
    let names = c.expect_ok("start the name service", sys::task_spawn_with("names", &[names_ep]));
    let kv = c.expect_ok("start the key-value server", sys::task_spawn_with("kv", &[names_ep]));
    let mut clients = [0u64; 2];
    for (i, slot) in clients.iter_mut().enumerate() {
        // Each client's token carries its own badge: its identity.
        let tok =
            c.expect_ok("mint a client token", sys::cap_mint(names_ep, rights::WRITE | rights::GRANT, i as u64 + 1));
        *slot = c.expect_ok("start a client", sys::task_spawn_with("kv-client", &[tok]));
        let _ = sys::cap_delete(tok);
    }
    for t in clients {
        apps::wait_expect(&mut c, "kv-client", t, (exit::EXITED, 0));
    }

    // Counters of both endpoints, then stop the servers.
    let mut out = [0u8; 16];
    let kv_ep = match sys_ipc_call_caps(names_ep, b"lookup kv", &[], &mut out, Timeout::Never) {
        Ok(m) if m.ncaps == 1 => m.caps[0],
        _ => 0,
    };
    c.check("the name service knows the key-value server", kv_ep != 0);
    for (label, ep) in [("names", names_ep), ("kv", kv_ep)] {
        if let Ok((msgs, bytes, calls)) = sys_endpoint_stats(ep) {
            println!("init: endpoint '{}': {} messages, {} bytes, {} calls", label, msgs, bytes, calls);
        }
    }
    c.check("kv said bye", sys_ipc_call(kv_ep, b"quit", &mut out).is_ok_and(|n| &out[..n] == b"bye"));
    apps::wait_expect(&mut c, "kv", kv, (exit::EXITED, 0));
    c.check("names said bye", sys_ipc_call(names_ep, b"quit", &mut out).is_ok_and(|n| &out[..n] == b"bye"));
    apps::wait_expect(&mut c, "names", names, (exit::EXITED, 0));
    let _ = sys::cap_delete(kv_ep);
    c.expect_ok("delete the name-service endpoint", sys_endpoint_delete(names_ep));

    let after = apps::resources();
    println!(
        "init: {} timer ticks, {} context switches; free frames {} before, {} after; {} endpoints left",
        sys::counter(Counter::Ticks),
        sys::counter(Counter::Switches),
        before.frames,
        after.frames,
        sys::counter(Counter::Endpoints)
    );
    c.check("every frame and capability slot came back", before == after);
    c.finish()
}
