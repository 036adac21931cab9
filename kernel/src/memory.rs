//! Physical memory for the kernel: the frame bitmap (from `kernel-core`)
//! filled from the boot loader's memory map, share counts for frames mapped
//! more than once (zero-copy IPC), and the adapter page-table code uses to
//! get and return frames.

use alloc::vec::Vec;
use arch_x86_64::multiboot::BootInfo;
use arch_x86_64::paging::{self, FrameSource, UserPtes};
use kernel_core::frames::FrameBitmap;

const PAGE: u64 = 4096;
/// Physical memory above this is not managed (the bitmap's reach).
const MAX_PHYS: u64 = 64 << 30;

/// The kernel's frames.
pub struct Frames {
    /// Which frames are free.
    pub bits: FrameBitmap,
    /// Extra mappings of each frame beyond the first (copy-on-write
    /// sharing); a frame is free again when its last mapping goes.
    shares: Vec<u16>,
    /// Pages delivered by remapping since boot.
    pub remapped: u64,
    /// Copy-on-write pages copied since boot.
    pub cow_copies: u64,
}

impl FrameSource for Frames {
    fn alloc_frame(&mut self) -> Option<u64> {
        self.bits.alloc().map(|f| f as u64 * PAGE)
    }
    fn free_frame(&mut self, phys: u64) {
        let f = (phys / PAGE) as usize;
        if let Some(s) = self.shares.get_mut(f).filter(|s| **s > 0) {
            *s -= 1;
            return;
        }
        if let Err(e) = self.bits.free(f) {
            panic!("freeing frame {phys:#x}: {e:?}");
        }
    }
}

impl Frames {
    /// Builds the allocator from the memory map, keeping out the first MiB,
    /// the kernel image and the boot modules. Returns it with the end of RAM.
    pub fn from_boot(info: &BootInfo) -> (Frames, u64) {
        let ram = &info.ram[..info.ram_count];
        let end = ram.iter().map(|r| r.end).max().unwrap_or(0).min(MAX_PHYS);
        let mut bits = FrameBitmap::new((end / PAGE) as usize);
        for r in ram {
            bits.add_free(r.start.div_ceil(PAGE) as usize, (r.end.min(end) / PAGE) as usize);
        }
        bits.reserve(0, (0x10_0000 / PAGE) as usize);
        let (_, image_end) = paging::kernel_image();
        bits.reserve(0, ((image_end - paging::KERNEL_VMA).div_ceil(PAGE)) as usize);
        for m in &info.modules[..info.module_count] {
            bits.reserve((m.start / PAGE) as usize, m.end.div_ceil(PAGE) as usize);
        }
        let shares = alloc::vec![0; (end / PAGE) as usize];
        (Frames { bits, shares, remapped: 0, cow_copies: 0 }, end)
    }

    /// Records one more mapping of `phys`; false if it cannot be counted.
    pub fn share(&mut self, phys: u64) -> bool {
        match self.shares.get_mut((phys / PAGE) as usize) {
            Some(s) if *s < u16::MAX => {
                *s += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `phys` is mapped more than once.
    pub fn is_shared(&self, phys: u64) -> bool {
        self.shares.get((phys / PAGE) as usize).is_some_and(|&s| s > 0)
    }

    /// Allocates `n` contiguous frames (a kernel stack); returns the first's
    /// physical address.
    pub fn alloc_contiguous(&mut self, n: usize) -> Option<u64> {
        self.bits.alloc_contiguous(n).map(|f| f as u64 * PAGE)
    }

    /// Allocates one frame and fills it with zeros.
    pub fn alloc_zeroed(&mut self) -> Option<u64> {
        let f = self.alloc_frame()?;
        paging::zero_frame(f);
        Some(f)
    }
}

/// Makes user page `va` of `space` private and writable if it is a
/// copy-on-write mapping: a shared frame is copied into a new one, a frame
/// no longer shared is simply made writable. False if out of memory or not
/// a copy-on-write page.
pub fn break_cow(frames: &mut Frames, space: u64, va: u64) -> bool {
    let va = va & !(PAGE - 1);
    let mut ptes = UserPtes::new(space);
    let Some(pte) = ptes.get(va) else { return false };
    break_cow_at(frames, &mut ptes, va, pte)
}

/// [`break_cow`] for page `va` (page-aligned) whose leaf entry `pte` was
/// just read through `ptes`.
pub fn break_cow_at(frames: &mut Frames, ptes: &mut UserPtes, va: u64, pte: u64) -> bool {
    if pte & paging::flags::COW == 0 {
        return false;
    }
    let old = paging::pte_frame(pte);
    let bits = (paging::pte_bits(pte) & !paging::flags::COW) | paging::flags::WRITE;
    if frames.is_shared(old) {
        let Some(new) = frames.alloc_frame() else { return false };
        paging::copy_phys(old, new, PAGE as usize);
        frames.cow_copies += 1;
        ptes.set(va, new, bits);
        frames.free_frame(old);
    } else {
        ptes.set(va, old, bits);
    }
    if paging::current_space() == ptes.space() {
        paging::invalidate(va);
    }
    true
}
