//! The QEMU scenarios: each test boots one system of `xtask::scenarios`
//! under QEMU (TCG) with a time limit, then checks the serial log and the
//! exit status. The user tasks of each scenario check syscall results
//! themselves and print `ok:`/`FAILED:` lines; init's exit code (hence
//! QEMU's status) is the number of failures.

use tests::{boot, boot_with};
use xtask::RunOptions;

/// 1. Boot banner, memory, each task started, the demo runs, clean shutdown
///    with status 0.
#[test]
fn boot_banner_and_clean_shutdown() {
    let b = boot("demo");
    b.expect_status(0).no_line("FAILED").no_line("KERNEL");
    b.line("Iris 0.1.0");
    b.line("[iris] memory: ");
    b.line("[iris] started task 'init'");
    b.line("[iris] started task 'hello'");
    b.line("hello: hello from a user task");
    b.line("threads: 3 workers added up to 6000");
    // The IPC demo: a name service hands out the key-value server's endpoint.
    b.line("kv: registered with the name service");
    b.line("client 1: 5 values stored and read back, 0 failures");
    b.line("client 2: 5 values stored and read back, 0 failures");
    b.line("init: endpoint 'kv': 20 messages, 240 bytes, 20 calls");
    b.line("init: ok: every frame and capability slot came back");
    b.before("[iris] task 'init' (task 1) exited with code 0", "[iris] init ended");
}

/// 2. Preemption: two busy tasks of equal priority that never yield both
///    make progress (their rounds interleave) and keep their FPU/SSE state
///    across preemption; a higher-priority task runs before a lower one that
///    was ready first; two threads of one task advance alternately.
#[test]
fn preemption_and_priorities() {
    let b = boot("sched");
    b.expect_status(0).no_line("FAILED");
    // Each busy task printed a round before the other finished.
    b.before("busy-a: round 0", "busy-b: done");
    b.before("busy-b: round 0", "busy-a: done");
    let (a_last, b_first) = (b.last_line("busy-a: round"), b.line("busy-b: round"));
    let (b_last, a_first) = (b.last_line("busy-b: round"), b.line("busy-a: round"));
    b.check(b_first < a_last && a_first < b_last, "busy-a and busy-b rounds do not interleave");
    // prio-low was spawned first but prio-high ran to completion before it.
    b.before("started task 'prio-low'", "started task 'prio-high'");
    b.before("prio-high: done", "prio-low: start");
    b.line("sched: ok: both threads of one task advanced while the other was unfinished");
    // Every round held values in all 16 vector registers across preemption.
    b.line("busy-a: round 7 (vector registers intact)");
    b.line("busy-b: round 7 (vector registers intact)");
    b.line("sched: PASS");
}

/// 3. A task reading address 0, one writing kernel memory and one executing
///    a privileged instruction are each ended with a report; a bystander
///    keeps running and exits normally.
#[test]
fn user_faults_end_only_the_faulting_task() {
    let b = boot("faults");
    b.expect_status(0).no_line("FAILED").no_line("KERNEL").no_line("still alive");
    let null = b.line("fault in task 'fault-null'");
    b.check(
        b.run
            .log
            .lines()
            .nth(null)
            .is_some_and(|l| l.contains("#PF page fault") && l.contains("cr2 0x0") && l.contains("rip 0x")),
        "null read report lacks #PF / cr2 0x0 / rip",
    );
    let kw = b.line("fault in task 'fault-kwrite'");
    b.check(
        b.run.log.lines().nth(kw).is_some_and(|l| l.contains("#PF page fault") && l.contains("cr2 0xffffffff80106000")),
        "kernel write report lacks #PF / cr2",
    );
    let pv = b.line("fault in task 'fault-priv'");
    b.check(
        b.run.log.lines().nth(pv).is_some_and(|l| l.contains("#GP general protection") && l.contains("error 0x0")),
        "privileged instruction report lacks #GP",
    );
    // The bystander ran before and after the faults and finished.
    b.check(b.line("bystander: start") < null.max(kw).max(pv), "bystander did not start before the faults");
    b.check(b.last_line("bystander: round") > null.max(kw).max(pv), "bystander did not keep running after the faults");
    b.line("faults: ok: 'fault-null' faulted with 14");
    b.line("faults: ok: 'fault-kwrite' faulted with 14");
    b.line("faults: ok: 'fault-priv' faulted with 13");
    b.line("faults: ok: 'bystander' exited with 0");
    b.line("faults: PASS");
}

/// 4. Unknown syscall numbers, user pointers into kernel space and unmapped
///    buffers (and other hostile arguments) get error codes, not a crash.
#[test]
fn hostile_syscall_arguments_get_errors() {
    let b = boot("badsys");
    b.expect_status(0).no_line("FAILED").no_line("KERNEL");
    b.line("badsys: ok: unknown syscall number 999 -> InvalidSyscall");
    b.line("badsys: ok: console write from kernel memory -> InvalidArgument");
    b.line("badsys: ok: console write from an unmapped buffer -> InvalidArgument");
    b.line("badsys: still alive");
    b.line("badsys: PASS");
}

/// 5. Capability copy, mint, delete and revoke: rights enforced, derived
///    tokens dead after revoke, the original keeps working.
#[test]
fn capabilities_copy_mint_revoke() {
    let b = boot("caps");
    b.expect_status(0).no_line("FAILED");
    b.line("caps: ok: start through a token without EXECUTE -> PermissionDenied");
    b.line("caps: ok: revoke removed the four derived tokens");
    b.line("caps: ok: start through a revoked token -> NotFound");
    b.line("caps: ok: the original still works");
    b.line("caps: ok: with a new generation, so the old token stays dead");
    b.line("caps: PASS");
}

/// 6. Hostile ELF files in the boot image are refused with a clear message
///    and the rest of the system boots.
#[test]
fn hostile_elf_refused_rest_boots() {
    let b = boot("hostile");
    b.expect_status(0).no_line("FAILED").no_line("KERNEL");
    for (name, why) in [
        ("bad-kaddr", "lies outside user space"),
        ("bad-pastend", "runs past the end"),
        ("bad-overlap", "share a page"),
        ("bad-huge", "reaches into the memory-map area"),
        ("bad-trunc", "not a valid ELF file"),
        ("bad-wx", "both writable and executable"),
        ("bad-machine", "not an x86-64 executable"),
    ] {
        let i = b.line(&format!("[iris] refused task '{name}': "));
        b.check(
            b.run.log.lines().nth(i).is_some_and(|l| l.contains(why)),
            &format!("{name}: refusal does not say {why:?}"),
        );
    }
    // Refused while the boot tasks were being started, and init still ran.
    b.before("[iris] refused task 'bad-kaddr'", "frames free after starting boot tasks");
    b.line("[iris] started task 't-hostile'");
    b.line("hello: hello from a user task");
    b.line("hostile: PASS");
}

/// 7. After tasks that map memory, run threads, fault and exit have ended,
///    free frames, capability slots, tasks and threads return exactly to
///    their earlier values (three rounds).
#[test]
fn frames_return_after_tasks_exit() {
    let b = boot("frames");
    b.expect_status(0).no_line("FAILED");
    b.line("memhog: exiting with 1 MiB mapped and 2 threads running");
    let rounds =
        b.run.log.lines().filter(|l| l.contains("frames: ok: every frame, slot, task and thread came back")).count();
    b.check(rounds == 3, "not all three rounds returned every resource");
    b.line("frames: PASS");
}

/// A CPU exception in kernel mode prints the fault report and stops QEMU
/// with its own status (99) — never a hang or a silent triple fault. The
/// kernel command line `selftest=kernel-fault` makes the kernel fault on
/// purpose on its first timer tick, inside the trap handler.
#[test]
fn kernel_fault_is_reported_with_a_distinct_status() {
    let opts = RunOptions { cmdline: Some("selftest=kernel-fault".into()), ..Default::default() };
    let b = boot_with("demo", opts);
    b.expect_status(xtask::EXIT_KERNEL_FAULT);
    let i = b.line("[iris] KERNEL FAULT: #PF page fault");
    b.check(
        b.run.log.lines().nth(i).is_some_and(|l| l.contains("cr2 0xffffffff00000000") && l.contains("rip 0x")),
        "kernel fault report lacks cr2 / rip",
    );
}

/// Large IPC messages whose buffers share their page offset are delivered
/// by remapping whole pages copy-on-write (the kernel's counter shows 15–16
/// pages per 64 KiB message); unaligned pairs are copied. Either way the
/// receiver sees exactly the message, later writes on either side stay
/// private, and every frame comes back. With `noremap` nothing is remapped
/// and the results are the same.
#[test]
fn large_messages_remap_copy_on_write() {
    for (cmdline, remap) in [(None, true), (Some("noremap"), false)] {
        let opts = RunOptions { cmdline: cmdline.map(String::from), ..Default::default() };
        let b = boot_with("remap", opts);
        b.expect_status(0).no_line("FAILED");
        for round in 0..4 {
            let i = b.line(&format!("remap: round {round}: "));
            let count: u64 = b
                .run
                .log
                .lines()
                .nth(i)
                .and_then(|l| l.split(": ").nth(2))
                .and_then(|w| w.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(u64::MAX);
            let want_remap = remap && round < 2;
            b.check(
                if want_remap { (15..=16).contains(&count) } else { count == 0 },
                &format!("round {round}: {count} pages remapped"),
            );
        }
        b.line("remap: PASS");
    }
}
