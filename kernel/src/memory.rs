//! Physical memory for the kernel: the frame bitmap (from `kernel-core`)
//! filled from the boot loader's memory map, and the adapter page-table code
//! uses to get frames.

use arch_x86_64::multiboot::BootInfo;
use arch_x86_64::paging::{self, FrameSource};
use kernel_core::frames::FrameBitmap;

const PAGE: u64 = 4096;
/// Physical memory above this is not managed (the bitmap's reach).
const MAX_PHYS: u64 = 64 << 30;

/// The kernel's frames.
pub struct Frames(pub FrameBitmap);

impl FrameSource for Frames {
    fn alloc_frame(&mut self) -> Option<u64> {
        self.0.alloc().map(|f| f as u64 * PAGE)
    }
    fn free_frame(&mut self, phys: u64) {
        if let Err(e) = self.0.free((phys / PAGE) as usize) {
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
        (Frames(bits), end)
    }

    /// Allocates `n` contiguous frames (a kernel stack); returns the first's
    /// physical address.
    pub fn alloc_contiguous(&mut self, n: usize) -> Option<u64> {
        self.0.alloc_contiguous(n).map(|f| f as u64 * PAGE)
    }

    /// Allocates one frame and fills it with zeros.
    pub fn alloc_zeroed(&mut self) -> Option<u64> {
        let f = self.alloc_frame()?;
        paging::zero_frame(f);
        Some(f)
    }
}
