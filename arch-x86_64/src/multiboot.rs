//! Reads what the multiboot1 loader handed over: the memory map and the
//! modules (the boot image). Everything is copied out at once, while the
//! boot mapping of the first GiB still exists; addresses the loader gives
//! outside that GiB are ignored rather than trusted.

use crate::paging::KERNEL_VMA;

/// The magic value a multiboot1 loader leaves in `eax`.
pub const LOADER_MAGIC: u32 = 0x2BAD_B002;
const BOOT_MAP_LIMIT: u64 = 1 << 30;

/// A physical range `[start, end)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// What the kernel learns from the boot loader.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// Usable RAM ranges (type 1 in the memory map).
    pub ram: [Range; 32],
    /// How many of `ram` are filled.
    pub ram_count: usize,
    /// Modules (the boot image is the first).
    pub modules: [Range; 8],
    /// How many of `modules` are filled.
    pub module_count: usize,
    /// The kernel command line (bytes, up to 128).
    pub cmdline: [u8; 128],
    /// Length of `cmdline`.
    pub cmdline_len: usize,
}

impl BootInfo {
    /// The command line, as far as it is UTF-8.
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

fn read_u32(phys: u64) -> Option<u32> {
    if phys.checked_add(4)? > BOOT_MAP_LIMIT {
        return None;
    }
    // SAFETY: `phys + 4` is inside the first GiB, which the boot page tables
    // map at KERNEL_VMA; the read is unaligned-safe and has no side effects.
    Some(unsafe { core::ptr::read_unaligned((KERNEL_VMA + phys) as *const u32) })
}

fn read_u64(phys: u64) -> Option<u64> {
    Some(u64::from(read_u32(phys)?) | (u64::from(read_u32(phys + 4)?) << 32))
}

/// Parses the multiboot information structure at `mbi`.
pub fn parse(magic: u32, mbi: u64) -> Result<BootInfo, &'static str> {
    if magic != LOADER_MAGIC {
        return Err("not started by a multiboot loader");
    }
    let mut info = BootInfo {
        ram: [Range::default(); 32],
        ram_count: 0,
        modules: [Range::default(); 8],
        module_count: 0,
        cmdline: [0; 128],
        cmdline_len: 0,
    };
    let flags = read_u32(mbi).ok_or("multiboot info out of reach")?;
    if flags & (1 << 6) == 0 {
        return Err("boot loader gave no memory map");
    }
    let mmap_len = u64::from(read_u32(mbi + 44).ok_or("bad mbi")?);
    let mmap_addr = u64::from(read_u32(mbi + 48).ok_or("bad mbi")?);
    let mut at = mmap_addr;
    while at < mmap_addr + mmap_len && info.ram_count < info.ram.len() {
        let size = u64::from(read_u32(at).ok_or("bad memory map")?);
        let base = read_u64(at + 4).ok_or("bad memory map")?;
        let len = read_u64(at + 12).ok_or("bad memory map")?;
        let kind = read_u32(at + 20).ok_or("bad memory map")?;
        if kind == 1 && len > 0 {
            info.ram[info.ram_count] = Range { start: base, end: base.saturating_add(len) };
            info.ram_count += 1;
        }
        at += size + 4;
    }
    if flags & (1 << 2) != 0 {
        let at = u64::from(read_u32(mbi + 16).ok_or("bad mbi")?);
        while info.cmdline_len < info.cmdline.len() {
            let Some(word) = read_u32(at + (info.cmdline_len as u64 & !3)) else { break };
            let byte = (word >> (8 * (info.cmdline_len % 4))) as u8;
            if byte == 0 {
                break;
            }
            info.cmdline[info.cmdline_len] = byte;
            info.cmdline_len += 1;
        }
    }
    if flags & (1 << 3) != 0 {
        let count = read_u32(mbi + 20).ok_or("bad mbi")?;
        let addr = u64::from(read_u32(mbi + 24).ok_or("bad mbi")?);
        for i in 0..u64::from(count).min(8) {
            let start = u64::from(read_u32(addr + i * 16).ok_or("bad module list")?);
            let end = u64::from(read_u32(addr + i * 16 + 4).ok_or("bad module list")?);
            if start <= end && end <= BOOT_MAP_LIMIT {
                info.modules[info.module_count] = Range { start, end };
                info.module_count += 1;
            }
        }
    }
    Ok(info)
}
