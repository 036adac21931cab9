//! The first instructions: a multiboot1 header (with the address fields, so
//! QEMU's `-kernel` and GRUB accept the image), a 32-bit entry that builds
//! boot page tables (the first GiB mapped both at 0 and at the kernel's
//! higher-half base), enables SSE, long mode and no-execute, and jumps to
//! Rust at its higher-half address on a boot stack.
//!
//! This is assembly because no Rust code can run before long mode and SSE
//! are on (the precompiled `core` uses SSE registers).

use core::arch::global_asm;

/// Size of the boot stack (the idle thread keeps using it).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00010003
    .section .multiboot, "a"
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header
    .long __kernel_phys_start
    .long __load_end_phys
    .long __bss_end_phys
    .long _start32

    .section .boot.data, "aw"
    .balign 4096
boot_pml4:      .fill 4096, 1, 0
boot_pdpt_low:  .fill 4096, 1, 0
boot_pdpt_high: .fill 4096, 1, 0
boot_pd:        .fill 4096, 1, 0
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdtr:
    .word 23
    .long boot_gdt

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    mov %eax, %edi
    mov %ebx, %esi

    /* 512 two-MiB pages: the first GiB. */
    mov $boot_pd, %ebx
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%ebx, %ecx, 8)
    movl $0, 4(%ebx, %ecx, 8)
    inc %ecx
    cmp $512, %ecx
    jne 1b

    mov $boot_pd, %eax
    or $3, %eax
    mov %eax, boot_pdpt_low
    mov %eax, boot_pdpt_high + 510 * 8
    mov $boot_pdpt_low, %eax
    or $3, %eax
    mov %eax, boot_pml4
    mov $boot_pdpt_high, %eax
    or $3, %eax
    mov %eax, boot_pml4 + 511 * 8

    /* CR4: PAE, OSFXSR, OSXMMEXCPT. */
    mov %cr4, %eax
    or $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    /* EFER: long mode enable, no-execute enable. */
    mov $0xC0000080, %ecx
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax
    wrmsr
    /* CR0: paging, write-protect, monitor coprocessor; no FPU emulation. */
    mov %cr0, %eax
    and $~(1 << 2), %eax
    or $((1 << 31) | (1 << 16) | (1 << 1) | 1), %eax
    mov %eax, %cr0

    lgdt boot_gdtr
    ljmp $0x08, $long_mode_low

    .code64
long_mode_low:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    movabs $higher_half, %rax
    jmp *%rax

    .section .text
higher_half:
    movabs $boot_stack_top, %rsp
    xor %ebp, %ebp
    call {entry}
2:  hlt
    jmp 2b

    .section .bss
    .balign 16
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
"#,
    entry = sym crate::arch_entry,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);
