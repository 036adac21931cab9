//! Scenario "caps": capability copy, mint, delete and revoke through
//! syscalls. Rights are enforced, derived tokens stop working after revoke
//! while the holder's original keeps working, and deleted tokens are stale.
#![no_std]
#![no_main]

use sdk::abi::{exit, kind, rights, Error};
use sdk::sys;

sdk::entry!(main);

/// Set once the main thread has checked the started thread; until then it
/// stays alive (a preemption between the checks must not let it end).
static RELEASE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

extern "C" fn quit(code: u64) -> ! {
    while !RELEASE.load(core::sync::atomic::Ordering::Acquire) {
        sys::yield_now();
    }
    sys::thread_exit(code)
}

fn main() -> u64 {
    let mut c = apps::Checker::new("caps");
    let before = apps::resources();
    let stack = c.expect_ok("map a stack", sys::mem_map(16384, sdk::abi::map::WRITE));
    let t = c.expect_ok("create a thread", sys::thread_create(quit, stack + 16384, 0, 10));
    c.check("thread token carries all rights", sys::cap_inspect(t) == Ok((kind::THREAD, rights::ALL, 0)));

    let m = c.expect_ok("mint READ|GRANT with badge 7", sys::cap_mint(t, rights::READ | rights::GRANT, 7));
    c.check(
        "minted token has the fewer rights and the badge",
        sys::cap_inspect(m) == Ok((kind::THREAD, rights::READ | rights::GRANT, 7)),
    );
    c.expect_err("start through a token without EXECUTE", sys::thread_start(m), Error::PermissionDenied);
    c.expect_err("revoke through a token without REVOKE", sys::cap_revoke(m), Error::PermissionDenied);
    let widened = c.expect_ok("mint ALL from the READ|GRANT token", sys::cap_mint(m, rights::ALL, 8));
    c.check(
        "rights never grow: minting intersects",
        sys::cap_inspect(widened).map(|x| x.1) == Ok(rights::READ | rights::GRANT),
    );
    let copy = c.expect_ok("copy the minted token", sys::cap_copy(m));
    c.check(
        "the copy keeps rights and badge",
        sys::cap_inspect(copy) == Ok((kind::THREAD, rights::READ | rights::GRANT, 7)),
    );
    let no_grant = c.expect_ok("mint READ only", sys::cap_mint(t, rights::READ, 0));
    c.expect_err("copy without GRANT", sys::cap_copy(no_grant), Error::PermissionDenied);
    c.expect_err("mint without GRANT", sys::cap_mint(no_grant, rights::READ, 1), Error::PermissionDenied);
    c.expect_err("a thread token where a task token is needed", sys::task_wait(t), Error::PermissionDenied);

    let removed = c.expect_ok("revoke the original", sys::cap_revoke(t));
    c.check("revoke removed the four derived tokens", removed == 4);
    for (what, tok) in [("minted", m), ("widened", widened), ("copy", copy), ("no-grant", no_grant)] {
        c.check(what, sys::cap_inspect(tok) == Err(Error::NotFound));
    }
    c.expect_err("start through a revoked token", sys::thread_start(m), Error::NotFound);
    c.check("the original still works", sys::cap_inspect(t) == Ok((kind::THREAD, rights::ALL, 0)));

    let d = c.expect_ok("copy the original", sys::cap_copy(t));
    c.expect_ok("delete the copy", sys::cap_delete(d));
    c.expect_err("the deleted token is stale", sys::cap_inspect(d), Error::NotFound);
    c.expect_err("deleting twice", sys::cap_delete(d), Error::NotFound);
    let again = c.expect_ok("a new copy reuses the slot", sys::cap_copy(t));
    c.check(
        "with a new generation, so the old token stays dead",
        again != d && sys::cap_inspect(d) == Err(Error::NotFound),
    );
    c.expect_ok("delete the new copy", sys::cap_delete(again));

    c.expect_ok("start through the original", sys::thread_start(t));
    c.expect_err("starting twice", sys::thread_start(t), Error::InvalidState);
    RELEASE.store(true, core::sync::atomic::Ordering::Release);

    // Task tokens: rights enforced on wait.
    let child = apps::spawn(&mut c, "hello");
    let blind = c.expect_ok("mint a task token without READ", sys::cap_mint(child, rights::GRANT, 0));
    c.expect_err("wait without READ", sys::task_wait(blind), Error::PermissionDenied);
    c.expect_ok("delete it", sys::cap_delete(blind));
    apps::wait_expect(&mut c, "hello", child, (exit::EXITED, 0));

    // Give the started thread time to end, then check that its tokens died with it.
    while sys::cap_inspect(t).is_ok() {
        sys::yield_now();
    }
    c.check("a thread's token dies with the thread", sys::cap_inspect(t) == Err(Error::NotFound));
    c.expect_ok("unmap the stack", sys::mem_unmap(stack, 16384));
    let after = apps::resources();
    c.check("frames, slots, tasks and threads returned to their start values", before == after);
    c.finish()
}
