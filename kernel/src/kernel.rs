//! The kernel's state and its scheduler: tasks (address space, capability
//! table, threads), threads (a kernel stack holding the saved user frame),
//! the ready queues, and how a trap ends — by resuming the current thread or
//! switching to another. Everything runs with interrupts off on one CPU and
//! to completion: a blocked thread keeps no kernel stack state besides its
//! saved frame, and whoever wakes it writes its syscall results there.

use crate::memory::Frames;
use abi::{kind, Error};
use alloc::string::String;
use alloc::vec::Vec;
use arch_x86_64::cpu::{self, exit_code};
use arch_x86_64::multiboot::BootInfo;
use arch_x86_64::paging::{self, FrameSource, PHYS_OFFSET};
use arch_x86_64::trap::{self, TrapFrame, FRAME_SIZE, SYSCALL_VECTOR};
use arch_x86_64::{print, println};
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel_core::cap::{CapSpace, ObjectRef};
use kernel_core::elfcheck;
use kernel_core::image::Image;
use kernel_core::ipc::{FastPartner, Ipc, Wake};
use kernel_core::manifest::{self, TaskSpec};
use kernel_core::sched::ReadyQueues;
use spin::Mutex;

/// The thread running now: the kernel's own record of it
/// ([`Kernel::current`]) and what fault reports, which must not take
/// locks, print. Written only with the kernel lock held, so a switch
/// records the new thread with one store.
pub static CURRENT_THREAD: AtomicUsize = AtomicUsize::new(IDLE);
/// Its task (`usize::MAX` for the idle thread).
pub static CURRENT_TASK: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Frames per kernel stack (16 KiB).
const KSTACK_FRAMES: usize = 4;
const PAGE: u64 = 4096;
/// Thread id of the idle thread.
pub const IDLE: usize = 0;
/// Capability slots per task.
const CAP_SLOTS: usize = 256;
/// The task id whose capability table the IPC engine uses for capabilities
/// in flight.
pub const HOLDER_TASK: usize = 0;
/// Most asynchronous queue slots of all endpoints together: each queued
/// message's record takes about 200 bytes of kernel heap.
pub const MAX_QUEUE_SLOTS: usize = 8192;
/// Most task records alive at once (dead ones still named by a capability
/// included), so that the kernel heap cannot run out.
pub const MAX_TASKS: usize = 64;
/// Threads per task.
pub const MAX_THREADS_PER_TASK: usize = 64;
// Every thread id (the idle thread's and those of the tasks) fits the IPC
// engine's range, so `Ipc::add_thread` never refuses one.
const _: () = assert!(1 + MAX_TASKS * MAX_THREADS_PER_TASK < kernel_core::ipc::MAX_THREADS);

/// What a blocked thread waits for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wait {
    /// The end of a task.
    TaskEnd(usize),
}

/// A thread's scheduling state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ThreadState {
    /// Created, not yet started.
    Created,
    /// In the ready queues.
    Ready,
    /// Started and in no ready queue: on the CPU (the current thread), or
    /// blocked in IPC — which of the two only the IPC engine's wait says
    /// ([`IpcThread::wait`](kernel_core::ipc::IpcThread)). So the IPC fast
    /// paths, which hand the CPU from one active thread to another, change
    /// no kernel state of either.
    Active,
    /// Waiting for something outside IPC.
    Blocked(Wait),
    /// Ended; its stack is freed at the next kernel entry.
    Dead,
}

/// A thread.
pub struct Thread {
    /// Owning task (`None` for idle).
    pub task: Option<usize>,
    /// Priority, 0..=31.
    pub priority: u8,
    /// Scheduling state.
    pub state: ThreadState,
    /// Physical address of the kernel stack's first frame.
    pub kstack: u64,
    /// Kernel address of the saved frame while not running.
    pub frame: u64,
}

impl Thread {
    fn kstack_top(&self) -> u64 {
        PHYS_OFFSET + self.kstack + KSTACK_FRAMES as u64 * PAGE
    }
}

/// How a task ended: (kind, value) as [`abi::exit`] describes.
pub type ExitStatus = (u64, u64);

/// A task.
pub struct Task {
    /// Name from the manifest.
    pub name: String,
    /// PML4 physical address.
    pub space: u64,
    /// Highest priority its threads may have.
    pub priority: u8,
    /// Live threads.
    pub threads: Vec<usize>,
    /// Next address for an anonymous mapping.
    pub map_next: u64,
    /// `Some` once ended.
    pub exit: Option<ExitStatus>,
    /// Threads waiting for the end.
    pub waiters: Vec<usize>,
    /// The init task: its end ends the system.
    pub init: bool,
    /// Frames of asynchronous-queue storage charged to this task (the
    /// creator of each endpoint), at most [`QUEUE_QUOTA`].
    pub queue_frames: usize,
}

/// Most frames of queue storage one task may have charged to it (16 MiB).
pub const QUEUE_QUOTA: usize = 4096;

/// The whole kernel state.
pub struct Kernel {
    /// Physical frames.
    pub frames: Frames,
    /// The kernel's own PML4.
    pub kernel_space: u64,
    /// Every task's capabilities.
    pub caps: CapSpace,
    /// The IPC engine.
    pub ipc: Ipc,
    /// Storage of asynchronous endpoint queues.
    pub queues: Vec<Option<crate::ipc::QueueStore>>,
    /// A thread to run next without going through the ready queues (the
    /// partner of a fast-path IPC).
    direct: Option<usize>,
    /// IPC messages at least this long may be remapped (`noremap` on the
    /// command line: never; `remap_min=<bytes>`: from that length).
    pub remap_min: usize,
    /// Asynchronous queue slots of all endpoints (at most [`MAX_QUEUE_SLOTS`]).
    pub queue_slots: usize,
    /// Tasks by id (dead ones stay while a capability names them).
    pub tasks: Vec<Option<Task>>,
    /// Threads by id; 0 is idle.
    pub threads: Vec<Option<Thread>>,
    ready: ReadyQueues,
    /// The current thread blocked in IPC during this kernel entry (it stays
    /// [`ThreadState::Active`]; dispatching must run another).
    ipc_blocked: bool,
    resched: bool,
    zombies: Vec<usize>,
    dead_spaces: Vec<u64>,
    /// The boot image.
    pub image: Image<'static>,
    /// The system description.
    pub specs: Vec<TaskSpec>,
    /// Timer ticks.
    pub ticks: u64,
    /// Context switches.
    pub switches: u64,
    /// `selftest=kernel-fault` on the command line: fault on the first tick.
    selftest_fault: bool,
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// Brings the system up and returns the first frame to resume.
pub fn boot(info: &BootInfo) -> Result<u64, &'static str> {
    let (mut frames, ram_end) = Frames::from_boot(info);
    let kernel_space = paging::init_kernel_space(ram_end, &mut frames).ok_or("no memory for kernel page tables")?;
    cpu::init();
    let total = frames.bits.total_frames();
    println!(
        "[iris] memory: {} MiB usable in {} ranges, {} of {} frames free",
        total * 4 / 1024,
        info.ram_count,
        frames.bits.free_frames(),
        total
    );
    if info.module_count == 0 {
        return Err("no boot image (pass it as the first multiboot module)");
    }
    let m = info.modules[0];
    let image = match Image::parse(paging::phys_slice(m.start, m.end)) {
        Ok(i) => i,
        Err(e) => {
            println!("[iris] boot image refused: {e}");
            return Err("unusable boot image");
        }
    };
    let manifest_text = image.get("manifest").ok_or("boot image has no manifest")?;
    let specs = match core::str::from_utf8(manifest_text).map_err(|_| "manifest is not UTF-8").map(manifest::parse) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            println!("[iris] manifest refused: {e}");
            return Err("unusable manifest");
        }
        Err(e) => return Err(e),
    };
    println!("[iris] boot image: {} files, {} tasks in the manifest", image.len(), specs.len());

    let mut k = Kernel {
        frames,
        kernel_space,
        caps: CapSpace::new(CAP_SLOTS),
        ipc: Ipc::new(HOLDER_TASK),
        queues: Vec::new(),
        direct: None,
        remap_min: crate::ipc::REMAP_MIN,
        queue_slots: 0,
        tasks: Vec::new(),
        threads: Vec::new(),
        ready: ReadyQueues::new(),
        ipc_blocked: false,
        resched: false,
        zombies: Vec::new(),
        dead_spaces: Vec::new(),
        image,
        specs,
        ticks: 0,
        switches: 0,
        selftest_fault: info.cmdline().split(' ').any(|w| w == "selftest=kernel-fault"),
    };
    if !info.cmdline().is_empty() {
        println!("[iris] command line: {}", info.cmdline());
    }
    // Task 0 is the kernel's: its capability table holds capabilities in
    // flight in asynchronous queues.
    k.tasks.push(None);
    k.caps.add_task(HOLDER_TASK).map_err(|_| "capability space")?;
    let fast = crate::ipc::FASTPATH_BUILT && !info.cmdline().split(' ').any(|w| w == "nofastpath");
    crate::fastpath::enable(fast);
    for w in info.cmdline().split(' ') {
        if w == "noremap" {
            k.remap_min = usize::MAX;
        } else if let Some(n) = w.strip_prefix("remap_min=") {
            // Bytes; a message remaps only whole pages, so any value is safe.
            match n.parse() {
                Ok(n) => k.remap_min = n,
                Err(_) => println!("[iris] ignored on the command line: {w} (a number of bytes)"),
            }
        }
    }
    print!("[iris] IPC fast path {}, ", if fast { "on" } else { "off" });
    if k.remap_min == usize::MAX {
        println!("remap off");
    } else {
        println!("remap of messages from {} bytes", k.remap_min);
    }
    let idle_stack = k.frames.alloc_contiguous(KSTACK_FRAMES).ok_or("no memory for the idle stack")?;
    let top = PHYS_OFFSET + idle_stack + KSTACK_FRAMES as u64 * PAGE;
    let frame_at = top - FRAME_SIZE;
    trap::write_frame(frame_at, &TrapFrame::kernel(cpu::idle_loop as *const () as u64, top));
    k.threads.push(Some(Thread {
        task: None,
        priority: 0,
        state: ThreadState::Active,
        kstack: idle_stack,
        frame: frame_at,
    }));

    let boot_tasks: Vec<String> = k.specs.iter().filter(|s| s.boot).map(|s| s.name.clone()).collect();
    let mut init_started = false;
    for name in boot_tasks {
        match k.spawn(&name) {
            Ok(t) => init_started |= k.task(t).is_some_and(|t| t.init),
            Err(e) => println!("[iris] task '{name}' not started: {e:?}"),
        }
    }
    if !init_started {
        return Err("the init task could not be started");
    }
    println!("[iris] {} frames free after starting boot tasks", k.frames.bits.free_frames());
    let first = k.dispatch();
    *KERNEL.lock() = Some(k);
    Ok(first)
}

/// Handles one trap and returns the frame to resume.
pub fn trap(frame: &mut TrapFrame) -> u64 {
    let mut guard = KERNEL.lock();
    let Some(k) = guard.as_mut() else {
        println!("[iris] trap before the kernel was ready");
        cpu::exit_qemu(exit_code::KERNEL_FAULT);
    };
    k.reap();
    let cur = k.current();
    if let Some(t) = k.thread_mut(cur) {
        t.frame = frame as *mut TrapFrame as u64;
    }
    match frame.vector {
        SYSCALL_VECTOR => {
            // (The lean path already tried the IPC fast paths; a call it
            // declined takes the general path, which ends the same way.)
            crate::syscall::handle(k, cur, frame);
            if k.caps.has_removed() {
                k.after_cap_changes();
            }
            return k.end_syscall();
        }
        cpu::TIMER_VECTOR => {
            cpu::end_of_interrupt();
            k.ticks += 1;
            k.resched = true;
            k.ipc.expire(k.ticks);
            if k.selftest_fault {
                println!("[iris] self-test: faulting in kernel mode on purpose");
                cpu::selftest_kernel_fault();
            }
        }
        v if v < 32 => k.user_fault(cur, frame),
        _ => {} // spurious or masked interrupt
    }
    // Capabilities removed on the way (capabilities in flight delivered,
    // …): act on them now, so the log never grows.
    if k.caps.has_removed() {
        k.after_cap_changes();
    }
    k.apply_wakes();
    k.dispatch()
}

/// Runs `f` on the kernel state (the lean syscall path's way in; the
/// general path holds it through [`trap`]); `none` before boot finished.
/// The lock is never held when a syscall enters (one CPU, interrupts off in
/// the kernel), so it is only tried.
#[inline(always)]
pub fn with_kernel<R>(none: R, f: impl FnOnce(&mut Kernel) -> R) -> R {
    match KERNEL.try_lock().as_mut().and_then(|g| g.as_mut()) {
        Some(k) => f(k),
        None => none,
    }
}

/// Result of a kernel-internal operation.
pub type KResult<T> = Result<T, Error>;

impl Kernel {
    /// The IPC engine, the capability space and the engine's view of user
    /// memory, borrowed together.
    pub fn ipc_parts(&mut self) -> (&mut Ipc, &mut CapSpace, crate::ipc::KernelEnv<'_>) {
        let env =
            crate::ipc::KernelEnv { frames: &mut self.frames, queues: &mut self.queues, remap_min: self.remap_min };
        (&mut self.ipc, &mut self.caps, env)
    }

    /// The running thread's id.
    #[inline(always)]
    pub fn current(&self) -> usize {
        CURRENT_THREAD.load(Ordering::Relaxed)
    }

    /// A thread by id.
    pub fn thread(&self, id: usize) -> Option<&Thread> {
        self.threads.get(id).and_then(Option::as_ref)
    }

    /// A thread by id, mutable.
    pub fn thread_mut(&mut self, id: usize) -> Option<&mut Thread> {
        self.threads.get_mut(id).and_then(Option::as_mut)
    }

    /// A task by id.
    pub fn task(&self, id: usize) -> Option<&Task> {
        self.tasks.get(id).and_then(Option::as_ref)
    }

    /// A task by id, mutable.
    pub fn task_mut(&mut self, id: usize) -> Option<&mut Task> {
        self.tasks.get_mut(id).and_then(Option::as_mut)
    }

    /// The running thread's task (user threads only call syscalls).
    pub fn current_task(&self) -> usize {
        self.task_of(self.current())
    }

    /// Thread `t`'s task (`usize::MAX` for the idle thread or none).
    pub fn task_of(&self, t: usize) -> usize {
        self.thread(t).and_then(|t| t.task).unwrap_or(usize::MAX)
    }

    /// Asks for a reschedule at the end of this trap (yield).
    pub fn request_resched(&mut self) {
        self.resched = true;
    }

    fn free_slot<T>(v: &mut Vec<Option<T>>, from: usize) -> usize {
        match v.iter().skip(from).position(Option::is_none) {
            Some(i) => i + from,
            None => {
                v.push(None);
                v.len() - 1
            }
        }
    }

    /// Creates a thread of `task` (not started) whose first frame is `frame`.
    pub fn new_thread(&mut self, task: usize, priority: u8, frame: &TrapFrame) -> KResult<usize> {
        let kstack = self.frames.alloc_contiguous(KSTACK_FRAMES).ok_or(Error::OutOfMemory)?;
        let id = Self::free_slot(&mut self.threads, 1);
        let t = Thread { task: Some(task), priority, state: ThreadState::Created, kstack, frame: 0 };
        let at = t.kstack_top() - FRAME_SIZE;
        trap::write_frame(at, frame);
        self.threads[id] = Some(Thread { frame: at, ..t });
        let space = self.task(task).map_or(0, |t| t.space);
        self.ipc.add_thread(id, task, space, priority);
        // (A user thread's frame stays where it is: it enters the kernel
        // only from user mode, always at the top of its kernel stack.)
        self.ipc.set_frame(id, at);
        if let Some(task) = self.task_mut(task) {
            task.threads.push(id);
        }
        Ok(id)
    }

    /// Makes a thread ready.
    pub fn make_ready(&mut self, id: usize) {
        if let Some(t) = self.thread_mut(id) {
            t.state = ThreadState::Ready;
            let p = t.priority;
            self.ready.push_back(id, p);
        }
    }

    /// The running thread blocked in IPC: the engine holds its wait, its
    /// state stays [`ThreadState::Active`], and the next dispatch runs
    /// another thread.
    pub fn blocked_in_ipc(&mut self) {
        self.ipc_blocked = true;
    }

    /// Blocks the running thread (outside IPC: a thread blocked in IPC
    /// stays [`ThreadState::Active`], the engine holds its wait).
    pub fn block_current(&mut self, why: Wait) {
        let cur = self.current();
        if let Some(t) = self.thread_mut(cur) {
            t.state = ThreadState::Blocked(why);
        }
    }

    /// Writes syscall results into a (not running) thread's saved frame.
    pub fn set_result(&mut self, id: usize, result: KResult<[u64; 3]>) {
        if let Some(t) = self.thread(id) {
            trap::with_frame(t.frame, |f| write_result(f, result));
        }
    }

    /// Starts a task of the boot image by name; returns its id.
    pub fn spawn(&mut self, name: &str) -> KResult<usize> {
        let spec = self.specs.iter().find(|s| s.name == name).cloned().ok_or(Error::NotFound)?;
        let Some(elf) = self.image.get(name) else {
            println!("[iris] refused task '{name}': no file of that name in the boot image");
            return Err(Error::NotFound);
        };
        // Task records, capability tables and their objects live on the
        // kernel heap: a bounded number of tasks keeps it from running out.
        if self.tasks.iter().flatten().count() >= MAX_TASKS {
            return Err(Error::OutOfMemory);
        }
        let plan = match elfcheck::check(elf) {
            Ok(p) => p,
            Err(e) => {
                println!("[iris] refused task '{name}': {e}");
                return Err(Error::InvalidArgument);
            }
        };
        let space = paging::new_space(self.kernel_space, &mut self.frames).ok_or(Error::OutOfMemory)?;
        if let Err(e) = self.load(space, elf, &plan) {
            paging::destroy_space(space, &mut self.frames);
            return Err(e);
        }
        let id = Self::free_slot(&mut self.tasks, 1);
        self.tasks[id] = Some(Task {
            name: String::from(name),
            space,
            priority: spec.priority,
            threads: Vec::new(),
            map_next: abi::USER_MAP_BASE,
            exit: None,
            waiters: Vec::new(),
            init: spec.init,
            queue_frames: 0,
        });
        let frame = TrapFrame::user(plan.entry, abi::USER_STACK_TOP - 8, 0);
        let created =
            self.caps.add_task(id).map_err(Error::from).and_then(|_| self.new_thread(id, spec.priority, &frame));
        match created {
            Ok(thread) => {
                self.make_ready(thread);
                println!(
                    "[iris] started task '{name}' (task {id}, priority {}, entry {:#x})",
                    spec.priority, plan.entry
                );
                Ok(id)
            }
            Err(e) => {
                let _ = self.caps.remove_task(id);
                self.tasks[id] = None;
                paging::destroy_space(space, &mut self.frames);
                Err(e)
            }
        }
    }

    fn load(&mut self, space: u64, elf: &[u8], plan: &elfcheck::LoadPlan) -> KResult<()> {
        for seg in &plan.segments {
            let mut bits = 0;
            if seg.writable {
                bits |= paging::flags::WRITE;
            }
            if !seg.executable {
                bits |= paging::flags::NO_EXECUTE;
            }
            let first = seg.vaddr & !(PAGE - 1);
            let mut va = first;
            while va < seg.vaddr + seg.mem_size {
                let frame = self.frames.alloc_zeroed().ok_or(Error::OutOfMemory)?;
                // File bytes that land in this page.
                let file_start = seg.vaddr.max(va);
                let file_end = (seg.vaddr + seg.file_size).min(va + PAGE);
                if file_start < file_end {
                    let off = (seg.file_offset + (file_start - seg.vaddr)) as usize;
                    let len = (file_end - file_start) as usize;
                    if let Some(bytes) = elf.get(off..off + len) {
                        paging::write_phys(frame, (file_start - va) as usize, bytes);
                    }
                }
                if paging::map_user(space, va, frame, bits, &mut self.frames).is_err() {
                    self.frames.free_frame(frame);
                    return Err(Error::OutOfMemory);
                }
                va += PAGE;
            }
        }
        let mut va = abi::USER_STACK_TOP - abi::USER_STACK_SIZE;
        while va < abi::USER_STACK_TOP {
            let frame = self.frames.alloc_zeroed().ok_or(Error::OutOfMemory)?;
            if paging::map_user(space, va, frame, paging::flags::WRITE | paging::flags::NO_EXECUTE, &mut self.frames)
                .is_err()
            {
                self.frames.free_frame(frame);
                return Err(Error::OutOfMemory);
            }
            va += PAGE;
        }
        Ok(())
    }

    /// Ends one thread; the task ends with its last thread.
    pub fn end_thread(&mut self, id: usize, status: ExitStatus) {
        let Some(task) = self.thread(id).and_then(|t| t.task) else { return };
        self.retire_thread(id);
        let Some(t) = self.task_mut(task) else { return };
        t.threads.retain(|&x| x != id);
        let remaining = t.threads.clone();
        // Threads created but never started cannot run: the task ends with
        // its last thread that could.
        if remaining.iter().all(|&r| self.thread(r).is_none_or(|x| x.state == ThreadState::Created)) {
            self.end_task(task, status);
        }
    }

    fn retire_thread(&mut self, id: usize) {
        let Some(t) = self.thread_mut(id) else { return };
        let (state, prio) = (t.state, t.priority);
        t.state = ThreadState::Dead;
        match state {
            ThreadState::Ready => {
                self.ready.remove(id, prio);
            }
            ThreadState::Blocked(Wait::TaskEnd(other)) => {
                if let Some(o) = self.task_mut(other) {
                    o.waiters.retain(|&w| w != id);
                }
            }
            _ => {}
        }
        self.ipc.remove_thread(id);
        if self.direct == Some(id) {
            self.direct = None;
        }
        self.caps.remove_object(ObjectRef { kind: kind::THREAD, id: id as u64 });
        self.zombies.push(id);
    }

    /// Ends a task: all its threads, its capabilities and (at the next
    /// kernel entry) its memory. Wakes whoever waits for it.
    pub fn end_task(&mut self, id: usize, status: ExitStatus) {
        let Some(task) = self.task_mut(id) else { return };
        if task.exit.is_some() {
            return;
        }
        task.exit = Some(status);
        let name = task.name.clone();
        let threads = core::mem::take(&mut task.threads);
        let waiters = core::mem::take(&mut task.waiters);
        let (space, init) = (task.space, task.init);
        for t in threads {
            self.retire_thread(t);
        }
        // After its threads are gone (their own calls then lead nowhere):
        // the reply rights it holds end their callers' calls.
        self.ipc.drop_replies_of(id);
        let _ = self.caps.remove_task(id);
        self.after_cap_changes();
        self.dead_spaces.push(space);
        for w in waiters {
            self.set_result(w, Ok([status.0, status.1, 0]));
            self.make_ready(w);
        }
        match status {
            (abi::exit::EXITED, code) => println!("[iris] task '{name}' (task {id}) exited with code {code}"),
            (_, vector) => println!("[iris] task '{name}' (task {id}) ended by {}", trap::vector_name(vector)),
        }
        if init {
            self.shutdown(status);
        }
        self.prune_tasks();
    }

    /// Finishes threads the IPC engine completed outside a syscall (a
    /// timeout): writes their results and makes them ready. (A syscall ends
    /// through [`Kernel::end_syscall`].)
    #[inline(always)]
    pub fn apply_wakes(&mut self) {
        if self.ipc.has_wakes() {
            self.wake_threads(false);
        }
    }

    /// Ends a syscall on the general path: wakes the threads the IPC
    /// engine completed and picks the thread to run. What
    /// [`Kernel::wake_threads`] (direct) and [`Kernel::dispatch`] do, with
    /// the usual case of an IPC taken in one step: the running thread
    /// blocked in IPC and woke exactly one partner, which runs next.
    #[inline(always)]
    fn end_syscall(&mut self) -> u64 {
        if self.ipc.has_wakes() {
            if self.ipc_blocked && self.direct.is_none() {
                if let Some(frame) = self.switch_to_woken() {
                    return frame;
                }
            }
            self.wake_threads(true);
        }
        self.dispatch()
    }

    /// If the IPC engine woke exactly one thread, one that blocked in IPC
    /// and may run now (no higher priority is ready), writes its result
    /// (unless the engine delivered it already: [`Wake::Delivered`]) and
    /// switches to it: what [`Kernel::wake_threads`] and
    /// [`Kernel::dispatch`] do for it, with one look-up of its record.
    /// `None` (nothing changed) for any other case. The running thread
    /// blocked in IPC and no fast-path partner is pending.
    #[inline(never)]
    fn switch_to_woken(&mut self) -> Option<u64> {
        let cur = self.current();
        let Kernel { ipc, threads, tasks, ready, kernel_space, .. } = self;
        let &(t, ref w) = ipc.single_wake()?;
        let th = threads.get_mut(t).and_then(Option::as_mut)?;
        // (An IPC wake is for a thread blocked in IPC: active and not on
        // the CPU.)
        if th.state != ThreadState::Active || t == cur || ready.highest().is_some_and(|p| p > th.priority) {
            return None;
        }
        if *w != Wake::Delivered {
            trap::with_frame(th.frame, |f| crate::ipc::write_wake(f, w));
        }
        ipc.clear_wakes();
        let frame = enter(th, tasks, *kernel_space);
        self.ipc_blocked = false;
        self.resched = false;
        self.switches += 1;
        CURRENT_THREAD.store(t, Ordering::Relaxed);
        Some(frame)
    }

    #[inline(never)]
    fn wake_threads(&mut self, direct: bool) {
        let n = self.ipc.wake_count();
        let cur = self.current();
        let direct = direct && n == 1 && self.direct.is_none() && self.ipc_blocked;
        let Kernel { ipc, threads, ready, direct: next, .. } = self;
        ipc.drain_wakes(|t, w| {
            let Some(th) = threads.get_mut(t).and_then(Option::as_mut) else { return };
            // (An IPC wake is for a thread blocked in IPC: active and not
            // on the CPU.)
            if th.state != ThreadState::Active || t == cur {
                return;
            }
            if *w != Wake::Delivered {
                trap::with_frame(th.frame, |f| crate::ipc::write_wake(f, w));
            }
            if direct {
                *next = Some(t);
            } else {
                th.state = ThreadState::Ready;
                ready.push_back(t, th.priority);
            }
        });
    }

    /// Destroys an endpoint (waiters woken with `NotFound`) and refunds its
    /// queue storage to the task that created it.
    pub fn destroy_endpoint(&mut self, id: usize) {
        let owner = self.ipc.endpoint(id).map(|e| e.owner);
        if let Some(kernel_core::ipc::EndpointKind::Async(n)) = self.ipc.endpoint(id).map(|e| e.kind) {
            self.queue_slots = self.queue_slots.saturating_sub(n);
        }
        let frames = crate::ipc::queue_frames(&self.queues, id);
        let (ipc, caps, mut env) = self.ipc_parts();
        ipc.destroy_endpoint(caps, &mut env, id);
        if let Some(t) = owner.and_then(|o| self.task_mut(o)) {
            t.queue_frames = t.queue_frames.saturating_sub(frames);
        }
    }

    /// Acts on capabilities that went away: endpoints no capability names
    /// any more, waits whose token died, dead tasks no longer named. (Reply
    /// rights are not capabilities: see `Ipc::drop_reply`.)
    pub fn after_cap_changes(&mut self) {
        let removed = self.caps.take_removed();
        if removed.is_empty() {
            return;
        }
        for o in removed {
            let id = o.id as usize;
            if o.kind == kind::ENDPOINT && self.ipc.endpoint(id).is_some() && self.caps.objects_referenced(o) == 0 {
                self.destroy_endpoint(id);
            }
        }
        self.ipc.recheck_tokens(&self.caps);
        // Destroying endpoints may have dropped capabilities in flight.
        let _ = self.caps.take_removed();
        self.prune_tasks();
    }

    /// Sets the start registers of a new task's main thread: the number of
    /// capabilities it was given and their tokens.
    pub fn set_start_args(&mut self, task: usize, n: u64, caps: [u64; abi::SPAWN_CAPS]) {
        if let Some(&main) = self.task(task).and_then(|t| t.threads.first()) {
            if let Some(t) = self.thread(main) {
                trap::with_frame(t.frame, |f| {
                    f.rdi = n;
                    [f.rsi, f.rdx, f.rcx, f.r8] = caps;
                });
            }
        }
    }

    /// Drops records of dead tasks that no capability names any more.
    pub fn prune_tasks(&mut self) {
        for id in 0..self.tasks.len() {
            let dead = self.task(id).is_some_and(|t| t.exit.is_some());
            if dead && self.caps.objects_referenced(ObjectRef { kind: kind::TASK, id: id as u64 }) == 0 {
                self.tasks[id] = None;
            }
        }
    }

    fn shutdown(&mut self, status: ExitStatus) -> ! {
        self.reap_all_but_current();
        println!(
            "[iris] init ended; {} frames free of {}; shutting down",
            self.frames.bits.free_frames(),
            self.frames.bits.total_frames()
        );
        if status == (abi::exit::EXITED, 0) {
            cpu::power_off()
        }
        cpu::exit_qemu(exit_code::INIT_FAILED)
    }

    fn reap_all_but_current(&mut self) {
        let cur = self.current();
        let zombies = core::mem::take(&mut self.zombies);
        for z in zombies {
            if z == cur {
                self.zombies.push(z);
            } else if let Some(t) = self.threads.get_mut(z).and_then(Option::take) {
                for i in 0..KSTACK_FRAMES as u64 {
                    self.frames.free_frame(t.kstack + i * PAGE);
                }
            }
        }
    }

    /// Frees what dead threads and tasks left: called at each kernel entry,
    /// when no dead thread's stack or address space is in use.
    fn reap(&mut self) {
        if self.zombies.is_empty() && self.dead_spaces.is_empty() {
            return;
        }
        self.reap_all_but_current();
        paging::activate(self.current_space());
        for space in core::mem::take(&mut self.dead_spaces) {
            paging::destroy_space(space, &mut self.frames);
        }
    }

    fn current_space(&self) -> u64 {
        self.space_of(self.current())
    }

    /// The address space thread `t` runs in (the kernel's for the idle
    /// thread or a thread of an ended task).
    fn space_of(&self, t: usize) -> u64 {
        self.thread(t)
            .and_then(|t| t.task)
            .and_then(|t| self.task(t))
            .filter(|t| t.exit.is_none())
            .map_or(self.kernel_space, |t| t.space)
    }

    /// A CPU exception in user mode (thread `cur`, the current one): a
    /// write to a copy-on-write page gets its private copy and the task goes
    /// on; anything else is reported and ends the task.
    fn user_fault(&mut self, cur: usize, frame: &TrapFrame) {
        let task = self.task_of(cur);
        const PRESENT_WRITE_USER: u64 = 0b111;
        if frame.vector == 14 && frame.error & PRESENT_WRITE_USER == PRESENT_WRITE_USER {
            let space = self.space_of(cur);
            if crate::memory::break_cow(&mut self.frames, space, cpu::fault_address()) {
                return;
            }
        }
        let name = self.task(task).map(|t| t.name.as_str()).unwrap_or("?");
        print!(
            "[iris] fault in task '{name}' (task {task}, thread {cur}): {} (vector {}), error {:#x}, rip {:#x}, rsp {:#x}",
            trap::vector_name(frame.vector),
            frame.vector,
            frame.error,
            frame.rip,
            frame.rsp
        );
        if frame.vector == 14 {
            print!(", cr2 {:#x}", cpu::fault_address());
        }
        println!(" — task ended");
        self.end_task(task, (abi::exit::FAULTED, frame.vector));
    }

    /// Picks the thread to run next and returns its frame.
    pub fn dispatch(&mut self) -> u64 {
        // A fast-path partner runs next unless a higher priority is ready
        // (the caller has blocked, so it does not compete).
        let blocked = core::mem::take(&mut self.ipc_blocked);
        if let Some(d) = self.direct.take() {
            let dp = self.thread(d).map_or(0, |t| t.priority);
            if self.ready.highest().is_none_or(|p| p <= dp) {
                self.resched = false;
                return self.switch_to(d);
            }
            self.make_ready(d);
        }
        let cur = self.current();
        let cur_prio = self.thread(cur).map_or(0, |t| t.priority);
        let cur_runs = cur != IDLE && !blocked && self.thread(cur).is_some_and(|t| t.state == ThreadState::Active);
        let switch = match (cur_runs, self.ready.highest()) {
            (false, _) => true,
            (true, None) => false,
            (true, Some(p)) => p > cur_prio || (self.resched && p == cur_prio),
        };
        let yielded = self.resched;
        self.resched = false;
        if !switch {
            return self.thread(cur).map_or(0, |t| t.frame);
        }
        if cur_runs {
            if let Some(t) = self.thread_mut(cur) {
                t.state = ThreadState::Ready;
            }
            if yielded {
                self.ready.push_back(cur, cur_prio);
            } else {
                self.ready.push_front(cur, cur_prio);
            }
        }
        let next = self.ready.pop_highest().unwrap_or(IDLE);
        self.switch_to(next)
    }

    /// The highest priority of a ready thread.
    pub fn ready_highest(&self) -> Option<u8> {
        self.ready.highest()
    }

    /// Ends a fast-path IPC on the lean path: the running thread blocks in
    /// IPC and `p`, which the engine just took out of its wait, runs now
    /// with `regs` in its saved rax, rdi, rsi, rdx, r8 and r9. Returns its
    /// frame.
    #[inline(always)]
    pub fn fast_switch(&mut self, p: &FastPartner, regs: [u64; 6]) -> u64 {
        // (Both threads stay active: the engine's waits say which one runs.)
        let frame = p.frame;
        paging::activate(p.space);
        cpu::set_kernel_stack(frame + FRAME_SIZE);
        CURRENT_THREAD.store(p.thread, Ordering::Relaxed);
        CURRENT_TASK.store(p.task, Ordering::Relaxed);
        self.switches += 1;
        trap::with_frame(frame, |pf| {
            [pf.rax, pf.rdi, pf.rsi, pf.rdx, pf.r8, pf.r9] = regs;
        });
        frame
    }

    fn switch_to(&mut self, next: usize) -> u64 {
        if next != self.current() {
            self.switches += 1;
        }
        CURRENT_THREAD.store(next, Ordering::Relaxed);
        let Kernel { threads, tasks, kernel_space, .. } = self;
        let Some(t) = threads.get_mut(next).and_then(Option::as_mut) else {
            CURRENT_TASK.store(usize::MAX, Ordering::Relaxed);
            return 0;
        };
        enter(t, tasks, *kernel_space)
    }
}

/// Makes `t` the thread on the CPU (the caller records it as current):
/// its state, task, kernel stack and address space (one look-up of its
/// task: `current_task` and `current_space` in one). Returns its frame.
#[inline(always)]
fn enter(t: &mut Thread, tasks: &[Option<Task>], kernel_space: u64) -> u64 {
    t.state = ThreadState::Active;
    let (top, frame, task) = (t.kstack_top(), t.frame, t.task);
    CURRENT_TASK.store(task.unwrap_or(usize::MAX), Ordering::Relaxed);
    let space = task
        .and_then(|t| tasks.get(t).and_then(Option::as_ref))
        .filter(|t| t.exit.is_none())
        .map_or(kernel_space, |t| t.space);
    cpu::set_kernel_stack(top);
    paging::activate(space);
    frame
}

/// Writes a syscall's outcome into a frame: status in rax, results in rdi,
/// rsi, rdx.
pub fn write_result(f: &mut TrapFrame, result: KResult<[u64; 3]>) {
    match result {
        Ok([a, b, c]) => {
            f.rax = 0;
            f.rdi = a;
            f.rsi = b;
            f.rdx = c;
        }
        Err(e) => f.rax = e as u64,
    }
}
