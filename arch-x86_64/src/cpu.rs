//! Descriptor tables and CPU set-up: GDT with a TSS, the IDT pointing at the
//! trap stubs, the legacy PIC and PIT (the timer), the SYSCALL MSRs, the
//! per-CPU block the SYSCALL entry reads through `gs`, and the ways to stop
//! QEMU.
//!
//! The GDT order is fixed by SYSRET/STAR: kernel code 0x08, kernel data 0x10,
//! user data 0x18, user code 0x20, TSS 0x28.

use core::ptr::addr_of;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// Kernel code selector.
pub const KERNEL_CS: u64 = 0x08;
/// Kernel data selector.
pub const KERNEL_SS: u64 = 0x10;
/// User data selector (RPL 3).
pub const USER_SS: u64 = 0x18 | 3;
/// User code selector (RPL 3).
pub const USER_CS: u64 = 0x20 | 3;
const TSS_SEL: u16 = 0x28;

/// First IDT vector of the remapped PIC's interrupts.
pub const IRQ_BASE: u8 = 32;
/// The timer's vector.
pub const TIMER_VECTOR: u64 = IRQ_BASE as u64;
/// Timer frequency in Hz.
pub const TIMER_HZ: u32 = 100;

/// The per-CPU block. `syscall_entry` uses `user_rsp` at `gs:0` as scratch
/// and loads `frame` from `gs:8`. Kept explicit so SMP is an array away.
#[repr(C)]
pub struct PerCpu {
    /// The user stack pointer during syscall entry.
    pub user_rsp: AtomicU64,
    /// Where the running thread's trap frame lies: the top of its kernel
    /// stack minus the frame's size.
    pub frame: AtomicU64,
}

/// CPU 0's block.
pub static CPU0: PerCpu = PerCpu { user_rsp: AtomicU64::new(0), frame: AtomicU64::new(0) };

#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

static mut TSS: Tss =
    Tss { reserved0: 0, rsp: [0; 3], reserved1: 0, ist: [0; 7], reserved2: 0, reserved3: 0, iomap_base: 104 };
static mut GDT: [u64; 7] =
    [0, 0x00AF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF, 0x00CF_F200_0000_FFFF, 0x00AF_FA00_0000_FFFF, 0, 0];

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut FAULT_STACK: Stack = Stack([0; 16384]);

#[derive(Clone, Copy)]
#[repr(C)]
struct IdtEntry {
    low: u64,
    high: u64,
}
static mut IDT: [IdtEntry; 256] = [IdtEntry { low: 0, high: 0 }; 256];

#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

/// Sets the stack the CPU switches to on an interrupt from user mode, and the
/// one the SYSCALL entry loads.
pub fn set_kernel_stack(top: u64) {
    CPU0.frame.store(top - crate::trap::FRAME_SIZE, Ordering::Relaxed);
    // SAFETY: single CPU, interrupts are off in the kernel, so nothing else
    // touches the TSS now; the field is written unaligned as the layout is packed.
    unsafe { core::ptr::addr_of_mut!(TSS.rsp[0]).write_unaligned(top) };
}

fn idt_entry(handler: u64, ist: u8, user_callable: bool) -> IdtEntry {
    let dpl: u64 = if user_callable { 3 } else { 0 };
    let low = (handler & 0xFFFF)
        | (KERNEL_CS << 16)
        | (u64::from(ist) << 32)
        | ((0x8E | (dpl << 5)) << 40)
        | ((handler >> 16) & 0xFFFF) << 48;
    IdtEntry { low, high: handler >> 32 }
}

/// Loads the GDT, TSS and IDT; sets up the PIC, the PIT at [`TIMER_HZ`] and
/// the SYSCALL MSRs. Interrupts stay disabled.
pub fn init() {
    // SAFETY: runs once on the boot CPU with interrupts off, before any user
    // code; the tables are statics that live forever, and the selectors
    // loaded match the descriptors written just before.
    unsafe {
        let fault_top = addr_of!(FAULT_STACK) as u64 + 16384;
        core::ptr::addr_of_mut!(TSS.ist[0]).write_unaligned(fault_top);
        let tss = addr_of!(TSS) as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        GDT[5] = (limit & 0xFFFF) | ((tss & 0xFF_FFFF) << 16) | (0x89 << 40) | (((tss >> 24) & 0xFF) << 56);
        GDT[6] = tss >> 32;
        let gdtr = TablePointer { limit: (7 * 8 - 1) as u16, base: addr_of!(GDT) as u64 };
        core::arch::asm!(
            "lgdt [{g}]",
            "push {cs}",
            "lea {t}, [rip + 2f]",
            "push {t}",
            "retfq",
            "2:",
            "mov {t:e}, {ds}",
            "mov ds, {t:e}",
            "mov es, {t:e}",
            "mov ss, {t:e}",
            "ltr {tss:x}",
            g = in(reg) &gdtr,
            cs = in(reg) KERNEL_CS,
            ds = const KERNEL_SS,
            tss = in(reg) TSS_SEL,
            t = out(reg) _,
        );

        let stubs = addr_of!(isr_stub_table);
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for (v, entry) in idt.iter_mut().enumerate().take(48) {
            // Double fault, NMI and machine check run on their own stack.
            let ist = if matches!(v, 2 | 8 | 18) { 1 } else { 0 };
            *entry = idt_entry(stubs.add(v).read(), ist, false);
        }
        let idtr = TablePointer { limit: (256 * 16 - 1) as u16, base: addr_of!(IDT) as u64 };
        core::arch::asm!("lidt [{}]", in(reg) &idtr);

        // PIC: remap to 32..47, mask everything but the timer.
        let mut cmd1: Port<u8> = Port::new(0x20);
        let mut dat1: Port<u8> = Port::new(0x21);
        let mut cmd2: Port<u8> = Port::new(0xA0);
        let mut dat2: Port<u8> = Port::new(0xA1);
        cmd1.write(0x11);
        cmd2.write(0x11);
        dat1.write(IRQ_BASE);
        dat2.write(IRQ_BASE + 8);
        dat1.write(4);
        dat2.write(2);
        dat1.write(1);
        dat2.write(1);
        dat1.write(0xFE);
        dat2.write(0xFF);

        // PIT channel 0, rate generator.
        let divisor = 1_193_182 / TIMER_HZ;
        Port::<u8>::new(0x43).write(0x34);
        Port::<u8>::new(0x40).write((divisor & 0xFF) as u8);
        Port::<u8>::new(0x40).write((divisor >> 8) as u8);

        // SYSCALL: enable, selectors, entry, flags to clear (TF, DF, IF, IOPL, AC, NT).
        let mut efer = Msr::new(0xC000_0080);
        efer.write(efer.read() | 1);
        Msr::new(0xC000_0081).write((0x10u64 << 48) | (KERNEL_CS << 32));
        Msr::new(0xC000_0082).write(syscall_entry as *const () as u64);
        Msr::new(0xC000_0084).write(0x4_7700);
        Msr::new(0xC000_0101).write(0); // GS base (user's)
        Msr::new(0xC000_0102).write(addr_of!(CPU0) as u64); // kernel GS base
    }
}

extern "C" {
    static isr_stub_table: u64;
    fn syscall_entry();
}

/// Acknowledges the timer interrupt at the PIC.
pub fn end_of_interrupt() {
    // SAFETY: writing EOI to the master PIC's command port only ends the
    // interrupt being served.
    unsafe { Port::<u8>::new(0x20).write(0x20) };
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn fault_address() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Halts until the next interrupt, with interrupts enabled; used by the idle
/// thread's loop.
pub fn idle_loop() -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// QEMU exit codes the kernel produces through `isa-debug-exit`
/// (QEMU's own exit status is `code * 2 + 1`).
pub mod exit_code {
    /// The init task failed (nonzero exit or fault): QEMU exits with 3.
    pub const INIT_FAILED: u32 = 1;
    /// The kernel faulted or panicked: QEMU exits with 99.
    pub const KERNEL_FAULT: u32 = 0x31;
}

/// Stops the machine with a failure code via `isa-debug-exit` (port 0xf4).
pub fn exit_qemu(code: u32) -> ! {
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit device; on other machines
    // the write is ignored and we halt below.
    unsafe { Port::<u32>::new(0xF4).write(code) };
    halt_forever()
}

/// Powers the machine off through ACPI (QEMU then exits with status 0).
/// The PIIX4 power-management I/O block is placed at 0x600 and enabled
/// here, so this does not depend on what the firmware set up.
pub fn power_off() -> ! {
    const PM_BASE: u32 = 0x600;
    // PCI configuration address of the PIIX4 PM function (bus 0, device 1,
    // function 3), register `reg`.
    let cfg = |reg: u32| 0x8000_0000 | (1 << 11) | (3 << 8) | reg;
    // SAFETY: ports 0xCF8/0xCFC are the PCI configuration mechanism; on a
    // PC with a PIIX4 (QEMU's `pc` machine) this sets the PM I/O base
    // (register 0x40) and enables that I/O space (register 0x80, bit 0).
    // Writing SLP_EN with sleep type 0 to PM1a_CNT (base + 4) is a soft
    // power-off. Elsewhere these writes are ignored and we fall through.
    unsafe {
        let mut addr: Port<u32> = Port::new(0xCF8);
        let mut data: Port<u32> = Port::new(0xCFC);
        addr.write(cfg(0x40));
        data.write(PM_BASE | 1);
        addr.write(cfg(0x80));
        let misc = data.read();
        addr.write(cfg(0x80));
        data.write(misc | 1);
        Port::<u16>::new((PM_BASE + 4) as u16).write(0x2000);
    }
    // QEMU acts on the request from its main loop, after this CPU stops.
    halt_forever()
}

/// Halts forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Deliberately faults in kernel mode (a read of an unmapped kernel
/// address), to test the kernel-fault report. Used only when the kernel
/// command line asks for `selftest=kernel-fault`.
pub fn selftest_kernel_fault() {
    // SAFETY: not sound on purpose — the read targets an unmapped address in
    // the kernel half, so it raises a page fault, which the kernel reports
    // before stopping the machine; it never returns a value.
    let v = unsafe { core::ptr::read_volatile(0xFFFF_FFFF_0000_0000 as *const u64) };
    core::hint::black_box(v);
}
