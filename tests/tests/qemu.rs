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
    // The bystander was running before the faults and kept running after them.
    b.check(
        b.line("[iris] started task 'bystander'") < null.min(kw).min(pv),
        "bystander was not running before the faults",
    );
    b.check(b.last_line("bystander: round") > null.max(kw).max(pv), "bystander did not keep running after the faults");
    b.line("faults: ok: 'fault-null' faulted with 14");
    b.line("faults: ok: 'fault-kwrite' faulted with 14");
    b.line("faults: ok: 'fault-priv' faulted with 13");
    b.line("faults: ok: 'bystander' exited with 0");
    // The SDK's panic handler reports and ends the task with code 101.
    b.line("panic: panicked at");
    b.line("panicker: deliberate panic with value 7");
    b.line("faults: ok: 'panicker' exited with 101");
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

/// Every IPC error code, triggered through the syscalls: InvalidArgument
/// (empty send, over the endpoint's maximum, unmapped / read-only / kernel
/// buffers on either side, call on an async endpoint, bad endpoint
/// parameters, malformed capability counts), PermissionDenied (missing
/// READ / WRITE / GRANT, wrong kind of token, reply-token misuse),
/// NotFound (never issued, revoked parent, deleted endpoint, reply token
/// used twice or forged), WouldBlock, Timeout (after at least 30 ms), BufferTooSmall
/// for long and short messages and replies (the message stays pending and
/// a bigger buffer then gets it intact), OutOfMemory with a full table
/// (for a passed capability; a call still arrives).
#[test]
fn ipc_every_error_code() {
    let b = boot("ipc-errors");
    b.no_line("FAILED").no_line("KERNEL").expect_status(0);
    for line in [
        "send of an empty message -> InvalidArgument",
        "send of 129 bytes to a 128-byte endpoint -> InvalidArgument",
        "send of 200 bytes from an unmapped buffer -> InvalidArgument",
        "receive of 200 bytes into an unmapped buffer -> InvalidArgument",
        "receive of 200 bytes into a read-only buffer -> InvalidArgument",
        "the blocked receiver got InvalidArgument",
        "call on an async endpoint -> InvalidArgument",
        "send with a READ-only token -> PermissionDenied",
        "receive with a WRITE-only token -> PermissionDenied",
        "send with a thread token -> PermissionDenied",
        "send with a task token -> PermissionDenied",
        "send a capability through a token without GRANT -> PermissionDenied",
        "send a capability that lacks GRANT -> PermissionDenied",
        "pass the reply token on in a message -> PermissionDenied",
        "revoke through the reply token -> PermissionDenied",
        "pass the reply token to a new task -> PermissionDenied",
        "delete a forged reply token -> NotFound",
        "reply with a forged reply token -> NotFound",
        "send with a never-issued token -> NotFound",
        "send through the revoked child -> NotFound",
        "send on the deleted endpoint -> NotFound",
        "reply a second time with the used token -> NotFound",
        "non-blocking send with no receiver -> WouldBlock",
        "non-blocking receive with nothing queued (async) -> WouldBlock",
        "non-blocking send to a full queue -> WouldBlock",
        "timed send with no receiver -> Timeout",
        "timed receive with no sender -> Timeout",
        "timed send to a full queue -> Timeout",
        "receive of 200 bytes into 100 (async) -> BufferTooSmall",
        "needed_size reports 300",
        "a 512-byte buffer then receives it intact",
        "receive of a 40-byte (short) message into 16 bytes (async) -> BufferTooSmall",
        "receive of a 48-byte (short) message into 16 bytes (sync) -> BufferTooSmall",
        "reply of 100 bytes into the caller's 16 -> BufferTooSmall",
        "reply of 40 (short) bytes into the caller's 16 -> BufferTooSmall",
        "reply-and-receive of 40 (short) bytes into 16 -> BufferTooSmall, nothing received",
        "receive of a message with a capability into a full table -> OutOfMemory",
        "receive of a call into a full table (a reply right takes no slot)",
        "endpoint count returned to its start value",
    ] {
        b.line(&format!("ipc-errors: ok: {line}"));
    }
    b.line("ipc-errors: PASS");
}

/// Synchronous endpoints are a rendezvous: a sender thread stays blocked
/// across 200 yields and 5 timer ticks until a receiver takes its message
/// (and the reverse for a receiver waiting first); a caller stays blocked
/// past delivery until the reply; short and long messages arrive intact
/// with the badge; blocked senders are served by priority, FIFO within one.
#[test]
fn ipc_sync_rendezvous_blocks_until_partner() {
    let b = boot("ipc-rendezvous");
    b.no_line("FAILED").expect_status(0);
    let blocked =
        "ipc-rendezvous: ok: the sender stays blocked across 200 yields and 5 timer ticks while nobody receives";
    let n = b.run.log.lines().filter(|l| l.contains(blocked)).count();
    b.check(n == 2, "the sender was not seen blocked for both message sizes");
    b.line("ipc-rendezvous: ok: the receiver stays blocked across 200 yields and 5 timer ticks while nobody sends");
    b.line("ipc-rendezvous: ok: the caller stays blocked after its request was taken");
    b.line("ipc-rendezvous: ok: the lower-priority caller got the reply");
    b.line("ipc-rendezvous: ok: priority 6 first (in arrival order), then priority 3");
    b.line("ipc-rendezvous: ok: the endpoint counted every message, byte and call");
    b.line("ipc-rendezvous: ok: endpoint count returned to its start value");
    b.line("ipc-rendezvous: PASS");
}

/// Asynchronous endpoints are bounded FIFO queues: with room for 4 the
/// fifth non-blocking send gets WouldBlock, a timed one Timeout, a blocking
/// one waits until a receive makes room; all come out in order and intact.
/// A 8 x 64 KiB queue takes 128 frames and deleting it (with messages and a
/// capability queued) gives every frame and slot back.
#[test]
fn ipc_async_bounded_queue() {
    let b = boot("ipc-async");
    b.no_line("FAILED").expect_status(0);
    b.line("ipc-async: ok: the fifth non-blocking send to the full queue -> WouldBlock");
    b.line("ipc-async: ok: a timed send (30 ms) to the full queue -> Timeout");
    b.line("ipc-async: ok: the blocking send stays blocked across 200 yields and 5 ticks while the queue is full");
    b.line("ipc-async: ok: then the blocked send completes");
    let fifo =
        b.run.log.lines().filter(|l| l.contains("ipc-async: ok: the next message in FIFO order, intact")).count();
    b.check(fifo == 4, "not all queued messages came out in order");
    b.line("ipc-async: ok: 150 messages through the queue in rounds of 3 stay in order and intact");
    b.line("ipc-async: ok: revoking the sender's original reaches the queued copy");
    b.line("ipc-async: 8 x 64 KiB queue took 128 frames");
    b.line("ipc-async: ok: every frame came back");
    b.line("ipc-async: ok: the queued capability was dropped: slots are back");
    b.line("ipc-async: PASS");
}

/// Calls of 0 to 65536 bytes between two tasks, from and into unaligned
/// and page-aligned buffers (same page offset on both sides and not): the
/// echo server checks every byte and its canaries, the client checks the
/// transformed reply byte for byte, its canaries, that its request buffer
/// stayed unwritten and that earlier buffers stay private while the other
/// side reuses its own. Same-offset messages of 16 KiB or more were
/// remapped (the kernel's counter moved). The same with the fast path off,
/// with remapping off (then nothing is remapped), and with remapping from
/// one page on (`remap_min=4096`: the 4 and 8 KiB messages are remapped
/// too, so more pages than by default).
#[test]
fn ipc_transfer_every_size_intact() {
    let mut counts = Vec::new();
    for cmdline in [None, Some("nofastpath"), Some("noremap"), Some("remap_min=4096")] {
        let opts = RunOptions { cmdline: cmdline.map(String::from), ..Default::default() };
        let b = boot_with("ipc-transfer", opts);
        b.no_line("FAILED").no_line("WRONG").no_line("KERNEL").expect_status(0);
        let intact =
            b.run.log.lines().filter(|l| l.starts_with("ipc-transfer: call with") && l.ends_with("reply intact"));
        b.check(intact.count() == 36, "not every call came back intact");
        b.line("ipc-transfer: call with 65536 bytes, request at page offset 0, reply at 0: reply intact");
        b.line("ipc-transfer: call with 65535 bytes, request at page offset 4093, reply at 2051: reply intact");
        b.line("ipc-echo: served 36 calls, 482120 bytes; 0 failures");
        b.line("ipc-transfer: ok: 'ipc-echo' exited with 0");
        let i = b.line(" pages remapped, ");
        let remapped: u64 = b
            .run
            .log
            .lines()
            .nth(i)
            .and_then(|l| l.strip_prefix("ipc-transfer: "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        let want_remap = cmdline != Some("noremap");
        b.check(
            if want_remap { remapped > 0 && remapped != u64::MAX } else { remapped == 0 },
            &format!("{remapped} pages remapped with command line {cmdline:?}"),
        );
        if cmdline == Some("remap_min=4096") {
            b.line("[iris] IPC fast path on, remap of messages from 4096 bytes");
        }
        b.line("ipc-transfer: ok: endpoint count returned to its start value");
        b.line("ipc-transfer: PASS");
        counts.push(remapped);
    }
    // Each run sends the same messages; with the lower threshold the
    // same-offset ones from 4 KiB to 16 KiB are remapped as well.
    assert!(counts[3] > counts[0], "remap_min=4096 remapped {} pages, the default {}", counts[3], counts[0]);
}

/// The same buffers sent again and again between two tasks by remap, with
/// writes on both sides in between (`t-resend`, `resend-srv`): 72 calls of
/// 40–64 KiB, alternating between two buffer pairs, in a cycle that makes
/// the kernel meet every kind of remap destination — pages it already
/// maps exactly as the remap would leave them (settled), pages one side
/// rewrote since, a mix of both within one message. Every reply is the
/// request as sent with the server's writes, byte for byte; neither
/// side's later writes reach the other side's buffers (both keep shadow
/// copies and compare); the receive buffers keep their bytes around the
/// messages. The kernel counts every whole page as remapped, the writes
/// took copy-on-write copies, and every frame comes back. With `noremap`
/// nothing is remapped or shared and the results are the same.
#[test]
fn ipc_resend_remapped_buffers_stay_private() {
    for cmdline in [None, Some("noremap")] {
        let opts = RunOptions { cmdline: cmdline.map(String::from), ..Default::default() };
        let b = boot_with("resend", opts);
        b.no_line("FAILED").no_line("KERNEL").expect_status(0);
        for line in [
            "every call returned the whole reply",
            "every reply is the request as sent, with the server's writes",
            "every reply buffer kept its bytes around the reply",
            "after every call the request buffer holds only the client's writes",
            "after every call the other pair's buffers hold only the client's writes and replies",
            "'resend-srv' exited with 0",
            "frames, slots, tasks and threads returned to their start values",
            "endpoint count returned to its start value",
        ] {
            b.line(&format!("resend: ok: {line}"));
        }
        b.line("resend-srv: served 72 calls; 0 failures");
        // "resend: 72 calls: <remapped> pages remapped of <whole> whole pages sent, <cow> copy-on-write copies"
        let i = b.line("resend: 72 calls: ");
        let numbers: Vec<u64> = b
            .run
            .log
            .lines()
            .nth(i)
            .unwrap_or("")
            .split(' ')
            .filter_map(|w| w.trim_end_matches(',').parse().ok())
            .collect();
        let [_, remapped, whole, cow] = numbers[..] else { panic!("malformed counter line: {numbers:?}") };
        let remap = cmdline.is_none();
        b.check(whole > 0, "no whole pages sent");
        b.check(
            if remap { remapped == whole && cow > 0 } else { remapped == 0 && cow == 0 },
            &format!("{remapped} of {whole} pages remapped, {cow} copy-on-write copies, command line {cmdline:?}"),
        );
        b.line("resend: PASS");
    }
}

/// A short message's eight message registers arrive exactly as the sender
/// loaded them, past its length too, on calls and replies; `r10` survives.
/// Through the fast path (registers passed in the CPU) and the general path.
#[test]
fn ipc_message_registers_travel_whole() {
    for cmdline in [None, Some("nofastpath")] {
        let opts = RunOptions { cmdline: cmdline.map(String::from), ..Default::default() };
        let b = boot_with("ipc-regs", opts);
        b.no_line("FAILED").no_line("KERNEL").expect_status(0);
        b.line("ipc-regs: PASS");
    }
}

/// IPC waits end cleanly when the other side or the endpoint goes away:
/// revoking a parent token wakes waiters on derived tokens with NotFound; a
/// server that exits or faults holding a call, or deletes the reply token,
/// leaves the caller with PeerGone; deleting an endpoint (or its last
/// token) wakes every waiting receiver, sender and caller with NotFound; a
/// dying client leaves no ghost sender or receiver, and a reply to it gets
/// PeerGone and is used up.
#[test]
fn ipc_lifecycle_waits_end_cleanly() {
    let b = boot("ipc-lifecycle");
    b.no_line("FAILED").no_line("KERNEL").expect_status(0);
    b.line("ipc-lifecycle: ok: the blocked receiver wakes with NotFound");
    b.line("ipc-lifecycle: ok: the blocked sender wakes with NotFound");
    b.line("ipc-lifecycle: call to a server that will exit: Err(PeerGone)");
    b.line("ipc-lifecycle: call to a server that will fault: Err(PeerGone)");
    b.line("ipc-lifecycle: ok: 'ipc-dying-server' faulted with 14");
    b.line("ipc-lifecycle: ok: the caller wakes with PeerGone");
    b.line("ipc-lifecycle: ok: the first receiver wakes with NotFound");
    b.line("ipc-lifecycle: ok: the second receiver wakes with NotFound");
    b.line("ipc-lifecycle: ok: the long sender wakes with NotFound");
    b.line("ipc-lifecycle: ok: the caller wakes with NotFound");
    b.line("ipc-dying-client: dying with a sender, a receiver and a caller blocked: true");
    b.line("ipc-lifecycle: ok: the dead client's blocked receiver is gone -> WouldBlock");
    b.line("ipc-lifecycle: ok: a reply to the dead caller -> PeerGone");
    b.line("ipc-lifecycle: ok: the dead caller's reply token does not answer the new call");
    b.line("ipc-lifecycle: ok: the receiver wakes with NotFound");
    b.line("ipc-lifecycle: ok: endpoint count returned to its start value");
    b.line("ipc-lifecycle: PASS");
}

/// 100,002 messages of mixed sizes from three sender tasks (sync send, sync
/// call, async queue of 8) to a receiver task with two threads per
/// endpoint: every message arrives exactly once, intact and with its
/// sender's badge; the endpoint counters agree; all resources come back.
/// The same with the fast path off.
#[test]
fn ipc_stress_100k_messages_exactly_once() {
    for cmdline in [None, Some("nofastpath")] {
        stress(cmdline);
    }
}

fn stress(cmdline: Option<&str>) {
    let b = boot_with("ipc-stress", RunOptions { cmdline: cmdline.map(String::from), ..Default::default() });
    b.no_line("FAILED").no_line("KERNEL").expect_status(0);
    b.line("ipc-stress-rx: received 100002 messages (33334 calls, ");
    b.line("from 3 senders: 0 duplicates, 0 bad, 0 missing");
    let i = b.line("ipc-stress: 100002 messages delivered");
    let ticks: u64 = b
        .run
        .log
        .lines()
        .nth(i)
        .and_then(|l| l.rsplit('(').next())
        .and_then(|w| w.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    b.check(ticks < 100 * 100, &format!("the exchange took {ticks} timer ticks, over 100 s"));
    b.line("ipc-stress: ok: the sync endpoint delivered 2 x 33,334, half of them calls");
    b.line("ipc-stress-rx: PASS");
    b.line("ipc-stress: ok: frames, slots, tasks and threads returned to their start values");
    b.line("ipc-stress: PASS");
}

/// 150,000 calls in a row, each consuming a reply right: all succeed and
/// the kernel stays within its memory (a used-up right leaves nothing).
#[test]
fn ipc_long_run_of_calls_leaves_nothing_behind() {
    let b = boot("ipc-longrun");
    b.expect_status(0).no_line("FAILED").no_line("KERNEL");
    b.line("longrun: 150000 calls, 0 bad");
    b.line("longrun: PASS");
}

/// What a task can make the kernel keep on its heap is bounded — task
/// records, queue slots, capability slots — and running into a bound gives
/// `OutOfMemory`, never a kernel crash; everything comes back afterwards.
#[test]
fn kernel_heap_bounds_refuse_instead_of_crashing() {
    let b = boot("limits");
    b.expect_status(0).no_line("FAILED").no_line("KERNEL");
    b.line("limits: ok: the 64th task record is refused with OutOfMemory");
    b.line("limits: ok: one more queue slot beyond 8,192 -> OutOfMemory");
    b.line("limits: ok: a full capability table refuses with OutOfMemory");
    b.line("limits: PASS");
}
