//! Four-level paging. All physical memory is mapped at [`PHYS_OFFSET`] (the
//! direct map, supervisor-only, no-execute), which is how the kernel reaches
//! page tables, thread stacks and — after checking the task's own page
//! tables — user memory. The kernel image is mapped at [`KERNEL_VMA`] with
//! text read-only+executable, read-only data read-only, data and bss
//! writable, neither executable. Each task has its own PML4 whose upper
//! half is a copy of the kernel's.

use core::cell::Cell;
use core::ptr::addr_of;
use core::sync::atomic::{AtomicU64, Ordering};

/// Where the kernel image is linked (physical address + this).
pub const KERNEL_VMA: u64 = 0xFFFF_FFFF_8000_0000;
/// Where all physical memory is mapped.
pub const PHYS_OFFSET: u64 = 0xFFFF_8000_0000_0000;
const PAGE: u64 = 4096;

/// Page-table entry bits.
pub mod flags {
    /// Present.
    pub const PRESENT: u64 = 1;
    /// Writable.
    pub const WRITE: u64 = 1 << 1;
    /// Reachable from user mode.
    pub const USER: u64 = 1 << 2;
    /// Large page (in a PD or PDPT entry).
    pub const HUGE: u64 = 1 << 7;
    /// Software bit: a read-only mapping of a shared frame that becomes a
    /// private writable copy on the first write (copy-on-write).
    pub const COW: u64 = 1 << 9;
    /// Not executable.
    pub const NO_EXECUTE: u64 = 1 << 63;
}
/// The frame-address bits of a page-table entry.
pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// A source of zeroed 4 KiB frames for page tables and user memory.
pub trait FrameSource {
    /// A frame's physical address, or `None` when memory is exhausted.
    fn alloc_frame(&mut self) -> Option<u64>;
    /// Returns a frame.
    fn free_frame(&mut self, phys: u64);
}

static mut DIRECT_MAP_END: u64 = 0;

extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// The kernel image's virtual range.
pub fn kernel_image() -> (u64, u64) {
    // SAFETY: linker-script symbols; only their addresses are taken.
    unsafe { (sym(&*addr_of!(__text_start)), sym(&*addr_of!(__kernel_end))) }
}

/// True if `[addr, addr+len)` lies in the direct map of RAM.
pub fn is_direct_mapped(addr: u64, len: u64) -> bool {
    // SAFETY: written once during init, before any caller runs.
    let end = unsafe { DIRECT_MAP_END };
    addr >= PHYS_OFFSET && addr.checked_add(len).is_some_and(|e| e <= PHYS_OFFSET + end)
}

#[inline]
fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: written once during init, before any caller runs.
    let end = unsafe { DIRECT_MAP_END };
    // `end` is a multiple of the page size, so a page-aligned `phys` below
    // it is a whole frame inside the direct map.
    assert!(phys.is_multiple_of(PAGE) && phys < end, "page table outside RAM");
    // SAFETY: `phys` is a page-aligned frame in RAM (checked) that holds a
    // page table owned by the caller's address space; the kernel runs with
    // interrupts off on one CPU, so no other reference to it is live.
    unsafe { &mut *((PHYS_OFFSET + phys) as *mut [u64; 512]) }
}

/// Fills a frame with zeros.
pub fn zero_frame(phys: u64) {
    table(phys).fill(0);
}

/// Copies `data` into a frame at `offset`.
pub fn write_phys(phys: u64, offset: usize, data: &[u8]) {
    assert!(
        offset + data.len() <= PAGE as usize && phys.is_multiple_of(PAGE) && is_direct_mapped(PHYS_OFFSET + phys, PAGE)
    );
    // SAFETY: the destination range lies inside one RAM frame (checked),
    // which the caller owns.
    unsafe {
        core::ptr::copy_nonoverlapping(data.as_ptr(), (PHYS_OFFSET + phys + offset as u64) as *mut u8, data.len())
    };
}

/// Copies from a frame at `offset` into `out`.
pub fn read_phys(phys: u64, offset: usize, out: &mut [u8]) {
    assert!(
        offset + out.len() <= PAGE as usize && phys.is_multiple_of(PAGE) && is_direct_mapped(PHYS_OFFSET + phys, PAGE)
    );
    // SAFETY: the source range lies inside one RAM frame (checked).
    unsafe {
        core::ptr::copy_nonoverlapping((PHYS_OFFSET + phys + offset as u64) as *const u8, out.as_mut_ptr(), out.len())
    };
}

/// A byte slice of physical memory that the boot loader handed over (a
/// module), through the direct map.
pub fn phys_slice(start: u64, end: u64) -> &'static [u8] {
    assert!(start <= end && is_direct_mapped(PHYS_OFFSET + start, end - start));
    // SAFETY: the range is RAM inside the direct map (checked) that the
    // kernel reserved and never frees or writes.
    unsafe { core::slice::from_raw_parts((PHYS_OFFSET + start) as *const u8, (end - start) as usize) }
}

/// Builds the kernel's address space — the direct map of `[0, ram_end)`
/// with 2 MiB pages and the kernel image with 4 KiB pages — switches to it,
/// and returns its PML4's physical address.
pub fn init_kernel_space(ram_end: u64, frames: &mut dyn FrameSource) -> Option<u64> {
    let ram_end = ram_end.next_multiple_of(1 << 30);
    // Until CR3 changes, frames are reached through the boot map of the
    // first GiB at KERNEL_VMA.
    let early = |phys: u64| -> &'static mut [u64; 512] {
        assert!(phys < (1 << 30) && phys.is_multiple_of(PAGE), "early frame above 1 GiB");
        // SAFETY: the boot page tables map the first GiB at KERNEL_VMA and
        // the frame was just handed to us by the allocator.
        unsafe { &mut *((KERNEL_VMA + phys) as *mut [u64; 512]) }
    };
    let mut alloc = || -> Option<u64> {
        let f = frames.alloc_frame()?;
        early(f).fill(0);
        Some(f)
    };
    let pml4 = alloc()?;
    let pdpt = alloc()?;
    early(pml4)[256] = pdpt | flags::PRESENT | flags::WRITE;
    let mut gib = 0;
    while gib * (1 << 30) < ram_end && gib < 512 {
        let pd = alloc()?;
        for (i, e) in early(pd).iter_mut().enumerate() {
            let phys = gib * (1 << 30) + (i as u64) * (2 << 20);
            *e = phys | flags::PRESENT | flags::WRITE | flags::HUGE | flags::NO_EXECUTE;
        }
        early(pdpt)[gib as usize] = pd | flags::PRESENT | flags::WRITE;
        gib += 1;
    }
    // The kernel image, page by page.
    // SAFETY: linker-script symbols; only addresses are taken.
    let (text_end, rodata_end) = unsafe { (sym(&*addr_of!(__text_end)), sym(&*addr_of!(__rodata_end))) };
    let (start, end) = kernel_image();
    let mut va = start;
    while va < end {
        let leaf = if va < text_end {
            flags::PRESENT
        } else if va < rodata_end {
            flags::PRESENT | flags::NO_EXECUTE
        } else {
            flags::PRESENT | flags::WRITE | flags::NO_EXECUTE
        };
        let mut t = pml4;
        for level in [39u32, 30, 21] {
            let idx = ((va >> level) & 511) as usize;
            if early(t)[idx] & flags::PRESENT == 0 {
                let n = alloc()?;
                early(t)[idx] = n | flags::PRESENT | flags::WRITE;
            }
            t = early(t)[idx] & ADDR_MASK;
        }
        early(t)[((va >> 12) & 511) as usize] = (va - KERNEL_VMA) | leaf;
        va += PAGE;
    }
    // SAFETY: written once here, before anything reads it.
    unsafe { DIRECT_MAP_END = ram_end };
    // SAFETY: the new PML4 maps the kernel image at the same addresses with
    // compatible permissions and the stack (in .bss) stays writable; the
    // identity map is no longer needed. CR0.WP makes read-only binding.
    unsafe {
        core::arch::asm!("mov cr3, {}", in(reg) pml4);
    }
    ACTIVE.store(pml4, Ordering::Relaxed);
    Some(pml4)
}

/// Creates an empty user address space sharing the kernel half of `kernel`.
pub fn new_space(kernel: u64, frames: &mut dyn FrameSource) -> Option<u64> {
    let pml4 = frames.alloc_frame()?;
    zero_frame(pml4);
    let (k, u) = (table(kernel), table(pml4));
    u[256..].copy_from_slice(&k[256..]);
    Some(pml4)
}

/// The PML4 in CR3: every write of CR3 but the boot's identity map goes
/// through [`init_kernel_space`] and [`activate`], which keep this equal to
/// it (one CPU; SMP makes it per-CPU). A compare with it is cheaper than
/// reading CR3 and masking its flag bits.
static ACTIVE: AtomicU64 = AtomicU64::new(0);

/// Makes `space` current (writes CR3 if it differs).
#[inline(always)]
pub fn activate(space: u64) {
    if ACTIVE.load(Ordering::Relaxed) != space {
        // SAFETY: `space` is a PML4 built by `new_space` or the kernel's,
        // both of which map the whole kernel half identically.
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) space) };
        ACTIVE.store(space, Ordering::Relaxed);
    }
}

/// Why a mapping failed.
#[derive(Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frame for a page table.
    OutOfMemory,
    /// The page is already mapped.
    AlreadyMapped,
    /// Not a user address.
    NotUser,
}

fn user_page(va: u64) -> bool {
    va.is_multiple_of(PAGE) && va < abi::USER_END
}

/// Maps the user page `va` to frame `phys` with leaf `bits` (USER and
/// PRESENT are added).
pub fn map_user(space: u64, va: u64, phys: u64, bits: u64, frames: &mut dyn FrameSource) -> Result<(), MapError> {
    if !user_page(va) {
        return Err(MapError::NotUser);
    }
    let mut t = space;
    for level in [39u32, 30, 21] {
        let idx = ((va >> level) & 511) as usize;
        let e = table(t)[idx];
        t = if e & flags::PRESENT == 0 {
            let n = frames.alloc_frame().ok_or(MapError::OutOfMemory)?;
            zero_frame(n);
            table(t)[idx] = n | flags::PRESENT | flags::WRITE | flags::USER;
            n
        } else {
            e & ADDR_MASK
        };
    }
    let leaf = &mut table(t)[((va >> 12) & 511) as usize];
    if *leaf & flags::PRESENT != 0 {
        return Err(MapError::AlreadyMapped);
    }
    *leaf = phys | bits | flags::PRESENT | flags::USER;
    Ok(())
}

/// The page table (lowest level) holding user page `va`'s entry, if the
/// tables above it are present and user-reachable.
fn leaf_table(space: u64, va: u64) -> Option<u64> {
    if va >= abi::USER_END {
        return None;
    }
    let mut t = space;
    for level in [39u32, 30, 21] {
        let e = table(t)[((va >> level) & 511) as usize];
        if e & flags::PRESENT == 0 || e & flags::USER == 0 {
            return None;
        }
        t = e & ADDR_MASK;
    }
    Some(t)
}

fn leaf_entry(space: u64, va: u64) -> Option<&'static mut u64> {
    leaf_table(space, va).map(|t| &mut table(t)[((va >> 12) & 511) as usize])
}

/// One user leaf entry, reached through [`UserPtes`]. Entries are cells:
/// the kernel runs with interrupts off on one CPU and never holds a
/// reference to an entry across anything that could free its table.
#[repr(transparent)]
pub struct Pte(Cell<u64>);

impl Pte {
    /// The raw entry (0 or without [`flags::PRESENT`]: unmapped).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    /// Whether the entry maps a page for user access.
    #[inline]
    pub fn user(&self) -> bool {
        self.get() & (flags::PRESENT | flags::USER) == flags::PRESENT | flags::USER
    }

    /// Replaces a present entry with `frame` and `bits` (PRESENT and USER
    /// are added); the caller accounts for the frames and flushes the TLB.
    #[inline]
    pub fn set(&self, frame: u64, bits: u64) {
        self.0.set((frame & ADDR_MASK) | bits | flags::PRESENT | flags::USER);
    }
}

/// The leaf entries of one user address space, reached through a cursor
/// that remembers the last page table it walked to: consecutive pages cost
/// one table walk per 2 MiB instead of one per page. The cursor and the
/// entries it hands out must not outlive a change to the space's page-table
/// structure (`map_user`, `unmap_user`, `destroy_space`); changing leaf
/// entries through them or through [`set_user_pte`] is fine. A copy of a
/// cursor is a second cursor with the same table cached.
#[derive(Clone, Copy)]
pub struct UserPtes {
    space: u64,
    /// `va >> 21` of the cached page table (`u64::MAX`: none).
    region: u64,
    /// Physical address of the cached page table, checked to be a RAM frame.
    pt: u64,
}

impl UserPtes {
    /// A cursor over `space`'s user leaf entries.
    pub fn new(space: u64) -> UserPtes {
        UserPtes { space, region: u64::MAX, pt: 0 }
    }

    /// The address space this cursor walks.
    pub fn space(&self) -> u64 {
        self.space
    }

    /// The page table holding user page `va`'s entry.
    #[inline]
    fn leaf_table(&mut self, va: u64) -> Option<&'static [Pte; 512]> {
        if va >= abi::USER_END {
            return None;
        }
        let region = va >> 21;
        if region != self.region {
            let pt = leaf_table(self.space, va)?;
            // Checks that the table is a RAM frame once, here.
            table(pt);
            self.region = region;
            self.pt = pt;
        }
        // SAFETY: `pt` passed `table`'s check (a page-aligned RAM frame in
        // the direct map) when it was cached, and it is a page table of
        // this space. Entries are cells (`Pte` is a transparent `Cell<u64>`),
        // so shared references to them may coexist; the kernel runs with
        // interrupts off on one CPU.
        Some(unsafe { &*((PHYS_OFFSET + self.pt) as *const [Pte; 512]) })
    }

    /// The entries of user pages `va, va + 4 KiB, …` (`va` page-aligned),
    /// at most `pages` of them and never past the end of `va`'s page table;
    /// `None` if that table is missing. Entries may be unmapped.
    #[inline]
    pub fn run(&mut self, va: u64, pages: usize) -> Option<&'static [Pte]> {
        let t = self.leaf_table(va)?;
        let i = ((va >> 12) & 511) as usize;
        let n = pages.min(512 - i);
        Some(&t[i..i + n])
    }

    /// The leaf entry of user page `va` if it is mapped (present).
    #[inline]
    pub fn get(&mut self, va: u64) -> Option<u64> {
        let e = self.leaf_table(va)?[((va >> 12) & 511) as usize].get();
        (e & flags::PRESENT != 0).then_some(e)
    }

    /// The frame and leaf bits of user page `va`, if mapped for user access.
    #[inline]
    pub fn translate(&mut self, va: u64) -> Option<(u64, u64)> {
        let e = self.get(va)?;
        if e & flags::USER == 0 {
            return None;
        }
        Some((e & ADDR_MASK, e & !ADDR_MASK))
    }

    /// Replaces the leaf entry of mapped user page `va` (frame and bits);
    /// the caller accounts for the frames and flushes the TLB.
    #[inline]
    pub fn set(&mut self, va: u64, frame: u64, bits: u64) -> bool {
        match self.leaf_table(va) {
            Some(t) if t[((va >> 12) & 511) as usize].get() & flags::PRESENT != 0 => {
                t[((va >> 12) & 511) as usize].set(frame, bits);
                true
            }
            _ => false,
        }
    }
}

/// The leaf entry of a mapped user page.
pub fn user_pte(space: u64, va: u64) -> Option<u64> {
    leaf_entry(space, va & !(PAGE - 1)).map(|e| *e).filter(|e| e & flags::PRESENT != 0)
}

/// Replaces the leaf entry of a mapped user page (frame and bits); the
/// caller accounts for the frames and flushes the TLB.
pub fn set_user_pte(space: u64, va: u64, frame: u64, bits: u64) -> bool {
    match leaf_entry(space, va & !(PAGE - 1)) {
        Some(e) if *e & flags::PRESENT != 0 => {
            *e = (frame & ADDR_MASK) | bits | flags::PRESENT | flags::USER;
            true
        }
        _ => false,
    }
}

/// The frame of a leaf entry.
pub fn pte_frame(pte: u64) -> u64 {
    pte & ADDR_MASK
}

/// The bits of a leaf entry (all but the frame address).
pub fn pte_bits(pte: u64) -> u64 {
    pte & !ADDR_MASK
}

/// Drops the TLB entry of one page of the current address space.
pub fn invalidate(va: u64) {
    // SAFETY: invalidating a TLB entry has no memory effects.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) va) };
}

/// Flushes every non-global TLB entry of the current address space.
pub fn flush_tlb() {
    // SAFETY: rewriting CR3 with its own value only drops TLB entries.
    unsafe {
        core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _);
    }
}

/// The physical address of the current PML4.
pub fn current_space() -> u64 {
    ACTIVE.load(Ordering::Relaxed)
}

/// Removes the mapping of user page `va`, returning the frame it mapped.
/// Page tables left empty are freed, so a task that unmaps everything it
/// mapped holds no more frames than before.
pub fn unmap_user(space: u64, va: u64, frames: &mut dyn FrameSource) -> Option<u64> {
    let va = va & !(PAGE - 1);
    if va >= abi::USER_END {
        return None;
    }
    // The tables on the way down: PML4, PDPT, PD, PT.
    let mut path = [space; 4];
    for (i, level) in [39u32, 30, 21].into_iter().enumerate() {
        let e = table(path[i])[((va >> level) & 511) as usize];
        if e & flags::PRESENT == 0 || e & flags::USER == 0 {
            return None;
        }
        path[i + 1] = e & ADDR_MASK;
    }
    let leaf = &mut table(path[3])[((va >> 12) & 511) as usize];
    if *leaf & flags::PRESENT == 0 {
        return None;
    }
    let phys = *leaf & ADDR_MASK;
    *leaf = 0;
    // SAFETY: invalidating a TLB entry has no memory effects.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) va) };
    // Free the PT, then the PD, then the PDPT while each is empty.
    for (i, level) in [(3usize, 21u32), (2, 30), (1, 39)] {
        if table(path[i]).iter().any(|&e| e != 0) {
            break;
        }
        table(path[i - 1])[((va >> level) & 511) as usize] = 0;
        frames.free_frame(path[i]);
    }
    Some(phys)
}

/// The frame and leaf bits of user page `va`, if mapped for user access.
pub fn translate_user(space: u64, va: u64) -> Option<(u64, u64)> {
    let e = *leaf_entry(space, va & !(PAGE - 1))?;
    if e & flags::PRESENT == 0 || e & flags::USER == 0 {
        return None;
    }
    Some((e & ADDR_MASK, e & !ADDR_MASK))
}

/// Frees every user page, every user page table and the PML4 of `space`.
/// The caller must not have `space` loaded in CR3.
pub fn destroy_space(space: u64, frames: &mut dyn FrameSource) {
    for i in 0..256 {
        let e3 = table(space)[i];
        if e3 & flags::PRESENT == 0 {
            continue;
        }
        let pdpt = e3 & ADDR_MASK;
        for j in 0..512 {
            let e2 = table(pdpt)[j];
            if e2 & flags::PRESENT == 0 {
                continue;
            }
            let pd = e2 & ADDR_MASK;
            for k in 0..512 {
                let e1 = table(pd)[k];
                if e1 & flags::PRESENT == 0 {
                    continue;
                }
                let pt = e1 & ADDR_MASK;
                for &leaf in table(pt).iter() {
                    if leaf & flags::PRESENT != 0 {
                        frames.free_frame(leaf & ADDR_MASK);
                    }
                }
                frames.free_frame(pt);
            }
            frames.free_frame(pd);
        }
        frames.free_frame(pdpt);
    }
    frames.free_frame(space);
}

/// A user buffer is not mapped with the access asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct BadUserAddress;

fn user_range(addr: u64, len: usize) -> Result<(), BadUserAddress> {
    let end = addr.checked_add(len as u64).ok_or(BadUserAddress)?;
    if end > abi::USER_END {
        return Err(BadUserAddress);
    }
    Ok(())
}

/// Copies `out.len()` bytes from user address `addr` of `space`; every page
/// must be mapped for user access.
pub fn copy_from_user(space: u64, addr: u64, out: &mut [u8]) -> Result<(), BadUserAddress> {
    user_range(addr, out.len())?;
    let mut done = 0;
    while done < out.len() {
        let va = addr + done as u64;
        let off = (va % PAGE) as usize;
        let n = (PAGE as usize - off).min(out.len() - done);
        let (phys, _) = translate_user(space, va).ok_or(BadUserAddress)?;
        read_phys(phys, off, &mut out[done..done + n]);
        done += n;
    }
    Ok(())
}

/// Copies `len` bytes between two frames' offsets (each range inside its
/// frame).
pub fn copy_phys(src: u64, dst: u64, len: usize) {
    let (sp, so) = (src & !(PAGE - 1), (src % PAGE) as usize);
    let (dp, doff) = (dst & !(PAGE - 1), (dst % PAGE) as usize);
    assert!(so + len <= PAGE as usize && doff + len <= PAGE as usize);
    // SAFETY: written once during init, before any caller runs.
    let end = unsafe { DIRECT_MAP_END };
    // Page-aligned frames below the (page-aligned) end of the direct map.
    assert!(sp < end && dp < end);
    let (s, d) = ((PHYS_OFFSET + src) as *const u8, (PHYS_OFFSET + dst) as *mut u8);
    if sp != dp {
        // SAFETY: both ranges lie inside RAM frames (checked) reached through
        // the direct map, and the frames differ, so the ranges are disjoint.
        unsafe { core::ptr::copy_nonoverlapping(s, d, len) };
    } else {
        // SAFETY: as above; `copy` tolerates the overlap within one frame.
        unsafe { core::ptr::copy(s, d, len) };
    }
}
