//! Trap entry and exit. Every way into the kernel — an exception, the timer,
//! or the `syscall` instruction — builds the same [`TrapFrame`] at the top of
//! the running thread's kernel stack (FPU/SSE state included) and calls the
//! kernel's `iris_trap`, which returns the frame to resume: the same one, or
//! another thread's (that is a context switch). The exit path restores that
//! frame and returns with `iretq`.
//!
//! The stubs are assembly because no compiler-generated code may run before
//! the user's registers are saved.

use core::arch::global_asm;

/// Vector number recorded for the `syscall` instruction.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// Saved state of a thread that is not running (or of the one that just
/// entered the kernel). Field order is the push order of the entry stubs.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct TrapFrame {
    /// FXSAVE image of the x87/SSE state.
    pub fx: [u8; 512],
    #[allow(missing_docs)]
    pub r15: u64,
    #[allow(missing_docs)]
    pub r14: u64,
    #[allow(missing_docs)]
    pub r13: u64,
    #[allow(missing_docs)]
    pub r12: u64,
    #[allow(missing_docs)]
    pub r11: u64,
    #[allow(missing_docs)]
    pub r10: u64,
    #[allow(missing_docs)]
    pub r9: u64,
    #[allow(missing_docs)]
    pub r8: u64,
    #[allow(missing_docs)]
    pub rbp: u64,
    #[allow(missing_docs)]
    pub rdi: u64,
    #[allow(missing_docs)]
    pub rsi: u64,
    #[allow(missing_docs)]
    pub rdx: u64,
    #[allow(missing_docs)]
    pub rcx: u64,
    #[allow(missing_docs)]
    pub rbx: u64,
    #[allow(missing_docs)]
    pub rax: u64,
    /// Exception/interrupt vector, or [`SYSCALL_VECTOR`]. The stubs write
    /// it for an exception or interrupt; a syscall entry leaves it alone,
    /// because the slot of a thread running in user mode always holds
    /// [`SYSCALL_VECTOR`] (the exit with `iretq` writes it, the others
    /// resume frames that already hold it). So neither the lean entry nor
    /// a fast-path switch writes it, and a frame saved by either is whole
    /// enough for the general exit to choose SYSRET.
    pub vector: u64,
    /// The CPU's error code (0 where it gives none).
    pub error: u64,
    #[allow(missing_docs)]
    pub rip: u64,
    #[allow(missing_docs)]
    pub cs: u64,
    #[allow(missing_docs)]
    pub rflags: u64,
    #[allow(missing_docs)]
    pub rsp: u64,
    #[allow(missing_docs)]
    pub ss: u64,
}

/// Bytes a trap frame takes on a kernel stack.
pub const FRAME_SIZE: u64 = core::mem::size_of::<TrapFrame>() as u64;
const _: () = assert!(FRAME_SIZE == 688);

impl TrapFrame {
    /// A zeroed frame with the default FPU state (all exceptions masked).
    pub fn empty() -> TrapFrame {
        let mut fx = [0u8; 512];
        fx[0] = 0x7F; // FCW = 0x037F
        fx[1] = 0x03;
        fx[24] = 0x80; // MXCSR = 0x1F80
        fx[25] = 0x1F;
        TrapFrame {
            fx,
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rbp: 0,
            rdi: 0,
            rsi: 0,
            rdx: 0,
            rcx: 0,
            rbx: 0,
            rax: 0,
            vector: 0,
            error: 0,
            rip: 0,
            cs: 0,
            rflags: 0,
            rsp: 0,
            ss: 0,
        }
    }

    /// A frame that starts user code at `entry` with stack `rsp` and `arg`
    /// in `rdi`, interrupts enabled.
    pub fn user(entry: u64, rsp: u64, arg: u64) -> TrapFrame {
        let mut f = TrapFrame::empty();
        f.rip = entry;
        f.rsp = rsp;
        f.rdi = arg;
        f.cs = crate::cpu::USER_CS;
        f.ss = crate::cpu::USER_SS;
        f.rflags = 0x202;
        f
    }

    /// A frame that runs kernel code `entry` on stack `rsp` with interrupts
    /// enabled (the idle thread).
    pub fn kernel(entry: u64, rsp: u64) -> TrapFrame {
        let mut f = TrapFrame::empty();
        f.rip = entry;
        f.rsp = rsp;
        f.cs = crate::cpu::KERNEL_CS;
        f.ss = crate::cpu::KERNEL_SS;
        f.rflags = 0x202;
        f
    }

    /// True if the trap came from user mode.
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// Stores a frame at a kernel address (the top of a new thread's stack).
pub fn write_frame(at: u64, frame: &TrapFrame) {
    assert!(at.is_multiple_of(16) && crate::paging::is_direct_mapped(at, FRAME_SIZE), "frame outside kernel stacks");
    // SAFETY: `at` is 16-aligned and inside the direct map (checked), where
    // the kernel keeps thread stacks; the caller owns that stack.
    unsafe { core::ptr::write(at as *mut TrapFrame, frame.clone()) };
}

/// Gives mutable access to the saved frame of a thread that is not running.
#[inline(always)]
pub fn with_frame<R>(at: u64, f: impl FnOnce(&mut TrapFrame) -> R) -> R {
    struct Call<F>(F);
    impl<R, F: FnOnce(&mut TrapFrame) -> R> FrameOp for Call<F> {
        type Output = R;
        #[inline(always)]
        fn apply(self, f: &mut TrapFrame) -> R {
            (self.0)(f)
        }
    }
    apply_to_frame(at, Call(f))
}

/// Something done to the saved frame of a thread that is not running
/// ([`apply_to_frame`]): what [`with_frame`] takes as a closure, for a
/// caller that needs it compiled in place at every use (an implementation
/// can be `#[inline(always)]`, a closure cannot).
pub trait FrameOp {
    /// What it returns.
    type Output;
    /// Does it to `f`.
    fn apply(self, f: &mut TrapFrame) -> Self::Output;
}

/// Applies `op` to the saved frame at `at` of a thread that is not running
/// (what [`with_frame`] does with a closure).
#[inline(always)]
pub fn apply_to_frame<O: FrameOp>(at: u64, op: O) -> O::Output {
    // Frames live on kernel stacks in the direct map. An address with bit
    // 63 set is never user memory: user addresses end at bit 47, and
    // below the kernel half (the direct map's base) such an address is
    // non-canonical, so any access faults. (Two tests, of the sign and
    // of the low bits, instead of a 64-bit mask and compare.)
    const _: () = assert!(crate::paging::PHYS_OFFSET >> 63 == 1 && abi::USER_END <= 1 << 47);
    assert!((at as i64) < 0, "frame outside the kernel half");
    assert!(at.is_multiple_of(16), "misaligned frame");
    // SAFETY: `at` is a frame the kernel itself stored (checked to be
    // aligned and not user memory); the thread owning it is not running, so
    // nothing else refers to it during `op`.
    op.apply(unsafe { &mut *(at as *mut TrapFrame) })
}

extern "Rust" {
    fn iris_trap(frame: &mut TrapFrame) -> u64;
}

#[no_mangle]
extern "C" fn trap_dispatch(frame: *mut TrapFrame) -> u64 {
    // SAFETY: the entry stub passes the frame it just built on this stack;
    // it is valid and unaliased until we return.
    let frame = unsafe { &mut *frame };
    // SAFETY: `iris_trap` is defined by the kernel binary with exactly this
    // signature.
    let next = unsafe { iris_trap(frame) };
    next | u64::from(sysret_allowed(next))
}

/// True if the frame at `at` can be resumed with SYSRET: it was saved by
/// the SYSCALL entry and returns to user mode at a canonical user address
/// (SYSRET to a non-canonical `rip` would fault in kernel mode).
fn sysret_allowed(at: u64) -> bool {
    with_frame(at, |f| f.vector == SYSCALL_VECTOR && f.cs == crate::cpu::USER_CS && f.rip < abi::USER_END)
}

/// Starts running the thread whose frame is at `frame` (never returns).
pub fn resume(frame: u64) -> ! {
    // SAFETY: `frame` is a complete TrapFrame prepared by the kernel; the
    // exit path restores it and leaves with iretq.
    unsafe {
        core::arch::asm!("mov rsp, {}", "jmp trap_return", in(reg) frame, options(noreturn));
    }
}

global_asm!(
    r#"
    /* Restores the general registers in the reverse of isr_common's order. */
    .macro POP_GPRS
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    .endm

    .macro ISR_NOERR n
isr_stub_\n:
    pushq $0
    pushq $\n
    jmp isr_common
    .endm
    .macro ISR_ERR n
isr_stub_\n:
    pushq $\n
    jmp isr_common
    .endm

    .section .text
    .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    ISR_NOERR \n
    .endr
    .irp n, 8,10,11,12,13,14,17,21,29,30
    ISR_ERR \n
    .endr
    .irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
    ISR_NOERR \n
    .endr

    /* The lean syscall entry. It builds only part of the frame at the
       top of the running thread's kernel stack: rip, rflags, rsp, the
       FPU/SSE state and the registers compiled code may
       clobber (rax, rdi, rsi, rdx, r8, r9, r10). rbx, rbp and r12-r15 stay
       in the CPU: compiled code preserves them. The kernel's
       `iris_syscall_fast` either finishes the syscall (a fast-path IPC or a
       query) and returns the frame to resume, or returns 0 and the entry
       completes the frame for the general path. */
    .global syscall_entry
syscall_entry:
    swapgs
    mov %rsp, %gs:0
    mov %gs:8, %rsp
    mov %rcx, {rip}(%rsp)
    mov %r11, {rflags}(%rsp)
    mov %gs:0, %rcx
    swapgs
    mov %rcx, {ursp}(%rsp)
    mov %rax, {rax}(%rsp)
    mov %rdi, {rdi}(%rsp)
    mov %rsi, {rsi}(%rsp)
    mov %rdx, {rdx}(%rsp)
    mov %r8, {r8}(%rsp)
    mov %r9, {r9}(%rsp)
    mov %r10, {r10}(%rsp)
    fxsave64 (%rsp)
    mov %rsp, %rdi
    call iris_syscall_fast
    test %rax, %rax
    jz syscall_general

    /* The lean exit: resume the frame returned. Its rax, rdi, rsi, rdx,
       r8, r9 and r10 were written by the kernel (results, or what the
       entry saved); rbx, rbp and r12-r15 are still in the CPU — the
       caller's own, or a fast-path sender's message registers passing
       through. rip came from a `syscall`, so it is canonical (no user page
       below USER_END's last page is executable: see `docs/abi.md`). */
    mov %rax, %rsp
    fxrstor64 (%rsp)
    mov {rax}(%rsp), %rax
    mov {rdi}(%rsp), %rdi
    mov {rsi}(%rsp), %rsi
    mov {rdx}(%rsp), %rdx
    mov {r8}(%rsp), %r8
    mov {r9}(%rsp), %r9
    mov {r10}(%rsp), %r10
    mov {rip}(%rsp), %rcx
    mov {rflags}(%rsp), %r11
    mov {ursp}(%rsp), %rsp
    sysretq

    /* The general path: complete the frame as isr_common would have
       built it (its vector already says SYSCALL: see TrapFrame::vector),
       then go on from there. */
syscall_general:
    mov %rbx, {rbx}(%rsp)
    mov %rbp, {rbp}(%rsp)
    mov %r12, {r12}(%rsp)
    mov %r13, {r13}(%rsp)
    mov %r14, {r14}(%rsp)
    mov %r15, {r15}(%rsp)
    mov {rip}(%rsp), %rcx
    mov %rcx, {rcx}(%rsp)
    mov {rflags}(%rsp), %r11
    mov %r11, {r11}(%rsp)
    movq $0, {error}(%rsp)
    movq ${ucs}, {cs}(%rsp)
    movq ${uss}, {ss}(%rsp)
    jmp isr_framed

isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    sub $512, %rsp
    fxsave64 (%rsp)
isr_framed:
    mov %rsp, %rdi
    cld
    call trap_dispatch
    /* Bit 0 of the returned frame address asks for the SYSRET exit. */
    test $1, %al
    jnz sysret_exit
    mov %rax, %rsp

    .global trap_return
trap_return:
    /* The thread's next entry may be a syscall, which leaves the vector
       as it finds it (see TrapFrame::vector). */
    movq ${sysvec}, {vector}(%rsp)
    fxrstor64 (%rsp)
    add $512, %rsp
    POP_GPRS
    add $16, %rsp
    iretq

    /* Return to a thread that entered by `syscall`: restore the registers,
       then rip from rcx and rflags from r11 as SYSRET wants. Interrupts stay
       off until SYSRET; an NMI uses its own stack (IST). */
sysret_exit:
    lea -1(%rax), %rsp
    fxrstor64 (%rsp)
    add $512, %rsp
    POP_GPRS
    mov 16(%rsp), %rcx
    mov 32(%rsp), %r11
    mov 40(%rsp), %rsp
    sysretq

    .section .rodata
    .balign 8
    .global isr_stub_table
isr_stub_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
    .quad isr_stub_\n
    .endr
"#,
    sysvec = const SYSCALL_VECTOR,
    rip = const core::mem::offset_of!(TrapFrame, rip),
    rflags = const core::mem::offset_of!(TrapFrame, rflags),
    ursp = const core::mem::offset_of!(TrapFrame, rsp),
    vector = const core::mem::offset_of!(TrapFrame, vector),
    error = const core::mem::offset_of!(TrapFrame, error),
    cs = const core::mem::offset_of!(TrapFrame, cs),
    ss = const core::mem::offset_of!(TrapFrame, ss),
    rax = const core::mem::offset_of!(TrapFrame, rax),
    rbx = const core::mem::offset_of!(TrapFrame, rbx),
    rcx = const core::mem::offset_of!(TrapFrame, rcx),
    rdx = const core::mem::offset_of!(TrapFrame, rdx),
    rsi = const core::mem::offset_of!(TrapFrame, rsi),
    rdi = const core::mem::offset_of!(TrapFrame, rdi),
    rbp = const core::mem::offset_of!(TrapFrame, rbp),
    r8 = const core::mem::offset_of!(TrapFrame, r8),
    r9 = const core::mem::offset_of!(TrapFrame, r9),
    r10 = const core::mem::offset_of!(TrapFrame, r10),
    r11 = const core::mem::offset_of!(TrapFrame, r11),
    r12 = const core::mem::offset_of!(TrapFrame, r12),
    r13 = const core::mem::offset_of!(TrapFrame, r13),
    r14 = const core::mem::offset_of!(TrapFrame, r14),
    r15 = const core::mem::offset_of!(TrapFrame, r15),
    ucs = const crate::cpu::USER_CS,
    uss = const crate::cpu::USER_SS,
    options(att_syntax)
);

/// Human name of a CPU exception vector.
pub fn vector_name(v: u64) -> &'static str {
    match v {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        _ => "reserved exception",
    }
}
