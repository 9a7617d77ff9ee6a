/*
 * The accelerator probe: a 512-byte boot sector that switches the CPU from real mode to
 * 64-bit long mode (page tables, EFER MSR, paging) and then prints a marker on COM1.
 *
 * Why long mode and not just a "hello" in real mode: the ways KVM breaks guests on hosts
 * without working nested virtualization are MSR writes and paging, which a real-mode
 * payload never reaches.  imagefactory/vm/accel.py embeds the assembled bytes; the unit
 * test tests/unit/vm/test_accel.py reassembles this file and checks they are the same.
 *
 * Build:  as --32 -o probe.o accel_probe.S
 *         ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o probe.bin probe.o
 */
    .code16
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    cld
    /* Zero three pages at 0x1000..0x3fff: PML4, PDPT, PD. */
    mov $0x1000, %di
    mov $0x1800, %cx
    rep stosw
    movw $0x2003, (0x1000)          /* PML4[0] -> PDPT, present + writable */
    movw $0x3003, (0x2000)          /* PDPT[0] -> PD */
    movw $0x0083, (0x3000)          /* PD[0]: identity-mapped 2 MiB page */
    lgdtl gdtr
    mov %cr4, %eax
    or $0x20, %eax                  /* CR4.PAE */
    mov %eax, %cr4
    mov $0x1000, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx           /* EFER */
    rdmsr
    or $0x100, %eax                 /* EFER.LME */
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax            /* CR0.PG | CR0.PE */
    mov %eax, %cr0
    ljmpl $0x08, $long_mode
    .code64
long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %ss
    lea msg(%rip), %rsi
    mov $0x3f8, %dx                 /* COM1 data port */
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  cli
    hlt
    jmp 2b
    .p2align 3
gdt:
    .quad 0
    .quad 0x00209A0000000000        /* 64-bit code segment */
    .quad 0x0000920000000000        /* data segment */
gdtr:
    .word gdtr - gdt - 1
    .long gdt
msg:
    .asciz "IFPROBE-LONGMODE-OK\r\n"
    .org 510
    .word 0xAA55
