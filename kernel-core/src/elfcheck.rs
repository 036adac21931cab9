//! Full validation of a user task's ELF executable before the kernel loads
//! it. [`check`] parses the file with the `elf` crate (a bounds-checked
//! parser) and then checks every loadable segment against the user address
//! space layout of [`abi`]; what it returns, a [`LoadPlan`], is safe to act on
//! without further checks: every segment lies inside the file and inside user
//! space below the memory-map area, no two segments share a page, no segment is
//! both writable and executable, and the entry point is in an executable
//! segment.

use alloc::vec::Vec;
use core::fmt;

use abi::{PAGE_SIZE, USER_END, USER_MAP_BASE, USER_MIN, USER_STACK_SIZE, USER_STACK_TOP};
use elf::abi::{EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, EM_X86_64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;
use elf::file::Class;
use elf::{ElfBytes, ParseError};

/// The most `PT_LOAD` segments an executable may have.
pub const MAX_SEGMENTS: usize = 16;
/// The most memory, in bytes, all segments together may span (counted in
/// whole pages): 256 MiB.
pub const MAX_TOTAL_MEM: u64 = 256 << 20;

/// The four bytes every ELF file starts with.
const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];

/// One loadable segment of a checked executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address of the segment's first byte (not necessarily page
    /// aligned).
    pub vaddr: u64,
    /// Bytes the segment occupies in memory; never 0.
    pub mem_size: u64,
    /// Offset of the segment's contents in the file.
    pub file_offset: u64,
    /// Bytes to copy from the file; the rest, up to `mem_size`, is zero.
    pub file_size: u64,
    /// Whether the segment is mapped writable.
    pub writable: bool,
    /// Whether the segment is mapped executable.
    pub executable: bool,
}

/// What the kernel needs to load a checked executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// The entry point, inside an executable segment.
    pub entry: u64,
    /// The segments to map, in program-header order; at least one, at most
    /// [`MAX_SEGMENTS`].
    pub segments: Vec<Segment>,
}

/// Why an executable was refused. Segment indices are indices into the
/// program header table, as `readelf -l` counts them.
#[derive(Debug)]
pub enum ElfError {
    /// The `elf` crate could not parse the file: not an ELF file, or its
    /// header or header tables are truncated or malformed.
    Parse(ParseError),
    /// The file is not a 64-bit ELF file (its `EI_CLASS` byte is given).
    NotElf64 {
        /// The `EI_CLASS` byte.
        class: u8,
    },
    /// The file is not little-endian (its `EI_DATA` byte is given).
    NotLittleEndian {
        /// The `EI_DATA` byte.
        data: u8,
    },
    /// The file is not a static executable (`ET_EXEC`).
    NotExecutable {
        /// The file's `e_type`.
        e_type: u16,
    },
    /// The file is not for x86-64.
    WrongMachine {
        /// The file's `e_machine`.
        machine: u16,
    },
    /// The file has no `PT_LOAD` segment with contents.
    NoLoadSegment,
    /// The file has more than [`MAX_SEGMENTS`] `PT_LOAD` segments.
    TooManySegments,
    /// A segment has more bytes in the file than in memory.
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// The segment's `p_filesz`.
        file_size: u64,
        /// The segment's `p_memsz`.
        mem_size: u64,
    },
    /// A segment's contents run past the end of the file.
    OutsideFile {
        /// Program header index.
        index: usize,
        /// The segment's `p_offset`.
        offset: u64,
        /// The segment's `p_filesz`.
        file_size: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// A segment starts below [`abi::USER_MIN`] or ends beyond
    /// [`abi::USER_END`].
    OutsideUserSpace {
        /// Program header index.
        index: usize,
        /// The segment's `p_vaddr`.
        vaddr: u64,
        /// The segment's `p_memsz`.
        mem_size: u64,
    },
    /// A segment reaches into the memory-map area (from
    /// [`abi::USER_MAP_BASE`] up) or the main-thread stack.
    ReservedRegion {
        /// Program header index.
        index: usize,
        /// The segment's `p_vaddr`.
        vaddr: u64,
        /// The segment's `p_memsz`.
        mem_size: u64,
    },
    /// A segment's address and file offset differ modulo the page size, so
    /// it cannot be mapped page by page.
    Misaligned {
        /// Program header index.
        index: usize,
        /// The segment's `p_vaddr`.
        vaddr: u64,
        /// The segment's `p_offset`.
        offset: u64,
    },
    /// A segment is both writable and executable.
    WritableAndExecutable {
        /// Program header index.
        index: usize,
        /// The segment's `p_vaddr`.
        vaddr: u64,
    },
    /// Two segments share at least one page.
    Overlap {
        /// Program header index of the earlier segment.
        first: usize,
        /// Program header index of the later segment.
        second: usize,
    },
    /// All segments together span more than [`MAX_TOTAL_MEM`] bytes.
    TooLarge {
        /// Bytes spanned, in whole pages (saturating).
        total: u64,
    },
    /// The entry point is not inside an executable segment.
    EntryNotExecutable {
        /// The file's `e_entry`.
        entry: u64,
    },
}

impl From<ParseError> for ElfError {
    fn from(error: ParseError) -> Self {
        ElfError::Parse(error)
    }
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Parse(error) => write!(f, "not a valid ELF file: {error}"),
            ElfError::NotElf64 { class } => {
                write!(f, "not a 64-bit ELF file (EI_CLASS is {class})")
            }
            ElfError::NotLittleEndian { data } => {
                write!(f, "not a little-endian ELF file (EI_DATA is {data})")
            }
            ElfError::NotExecutable { e_type } => write!(
                f,
                "not a static executable (e_type is {e_type}, expected ET_EXEC = {ET_EXEC})"
            ),
            ElfError::WrongMachine { machine } => write!(
                f,
                "not an x86-64 executable (e_machine is {machine}, expected {EM_X86_64})"
            ),
            ElfError::NoLoadSegment => write!(f, "the file has no loadable segment"),
            ElfError::TooManySegments => {
                write!(f, "the file has more than {MAX_SEGMENTS} loadable segments")
            }
            ElfError::FileSizeExceedsMemSize {
                index,
                file_size,
                mem_size,
            } => write!(
                f,
                "segment {index} has {file_size:#x} bytes in the file but only {mem_size:#x} in memory"
            ),
            ElfError::OutsideFile {
                index,
                offset,
                file_size,
                file_len,
            } => write!(
                f,
                "segment {index} (file offset {offset:#x}, size {file_size:#x}) runs past the end of the {file_len:#x}-byte file"
            ),
            ElfError::OutsideUserSpace {
                index,
                vaddr,
                mem_size,
            } => write!(
                f,
                "segment {index} at {vaddr:#x} (size {mem_size:#x}) lies outside user space [{USER_MIN:#x}, {USER_END:#x})"
            ),
            ElfError::ReservedRegion {
                index,
                vaddr,
                mem_size,
            } => write!(
                f,
                "segment {index} at {vaddr:#x} (size {mem_size:#x}) reaches into the memory-map area and stack (from {USER_MAP_BASE:#x})"
            ),
            ElfError::Misaligned {
                index,
                vaddr,
                offset,
            } => write!(
                f,
                "segment {index} at {vaddr:#x} has file offset {offset:#x}, not congruent modulo the page size"
            ),
            ElfError::WritableAndExecutable { index, vaddr } => write!(
                f,
                "segment {index} at {vaddr:#x} is both writable and executable"
            ),
            ElfError::Overlap { first, second } => {
                write!(f, "segments {first} and {second} share a page")
            }
            ElfError::TooLarge { total } => write!(
                f,
                "the segments span {total:#x} bytes, more than the limit of {MAX_TOTAL_MEM:#x}"
            ),
            ElfError::EntryNotExecutable { entry } => write!(
                f,
                "entry point {entry:#x} is not inside an executable segment"
            ),
        }
    }
}

/// `value` rounded down to a page boundary.
fn page_floor(value: u64) -> u64 {
    value & !(PAGE_SIZE - 1)
}

/// `value` rounded up to a page boundary; `None` on overflow.
fn page_ceil(value: u64) -> Option<u64> {
    value.checked_add(PAGE_SIZE - 1).map(page_floor)
}

/// The page-rounded address range `[start, end)` a segment occupies.
fn page_span(segment: &Segment) -> Option<(u64, u64)> {
    let end = segment.vaddr.checked_add(segment.mem_size)?;
    Some((page_floor(segment.vaddr), page_ceil(end)?))
}

/// Checks the identification bytes the `elf` crate would otherwise report
/// less precisely.
fn check_ident(bytes: &[u8]) -> Result<(), ElfError> {
    if bytes.get(..ELF_MAGIC.len()) != Some(&ELF_MAGIC[..]) {
        return Ok(()); // The parser reports the bad magic.
    }
    if let Some(&class) = bytes.get(EI_CLASS) {
        if class != ELFCLASS64 {
            return Err(ElfError::NotElf64 { class });
        }
    }
    if let Some(&data) = bytes.get(EI_DATA) {
        if data != ELFDATA2LSB {
            return Err(ElfError::NotLittleEndian { data });
        }
    }
    Ok(())
}

/// Checks one `PT_LOAD` program header and turns it into a [`Segment`].
fn check_segment(index: usize, phdr: &elf::segment::ProgramHeader, file_len: u64) -> Result<Segment, ElfError> {
    let segment = Segment {
        vaddr: phdr.p_vaddr,
        mem_size: phdr.p_memsz,
        file_offset: phdr.p_offset,
        file_size: phdr.p_filesz,
        writable: phdr.p_flags & PF_W != 0,
        executable: phdr.p_flags & PF_X != 0,
    };
    if segment.file_size > segment.mem_size {
        return Err(ElfError::FileSizeExceedsMemSize {
            index,
            file_size: segment.file_size,
            mem_size: segment.mem_size,
        });
    }
    let file_end = segment.file_offset.checked_add(segment.file_size);
    if file_end.is_none_or(|end| end > file_len) {
        return Err(ElfError::OutsideFile {
            index,
            offset: segment.file_offset,
            file_size: segment.file_size,
            file_len,
        });
    }
    let mem_end = segment.vaddr.checked_add(segment.mem_size);
    let Some(mem_end) = mem_end.filter(|&end| segment.vaddr >= USER_MIN && end <= USER_END) else {
        return Err(ElfError::OutsideUserSpace { index, vaddr: segment.vaddr, mem_size: segment.mem_size });
    };
    // The stack lies above the memory-map area, so ending by the map base
    // keeps a segment clear of both.
    const _: () = assert!(USER_MAP_BASE <= USER_STACK_TOP - USER_STACK_SIZE);
    if mem_end > USER_MAP_BASE {
        return Err(ElfError::ReservedRegion { index, vaddr: segment.vaddr, mem_size: segment.mem_size });
    }
    if segment.vaddr % PAGE_SIZE != segment.file_offset % PAGE_SIZE {
        return Err(ElfError::Misaligned { index, vaddr: segment.vaddr, offset: segment.file_offset });
    }
    if segment.writable && segment.executable {
        return Err(ElfError::WritableAndExecutable { index, vaddr: segment.vaddr });
    }
    Ok(segment)
}

/// Validates a user task's executable and says how to load it.
///
/// Refuses anything that is not a 64-bit little-endian x86-64 `ET_EXEC` file,
/// and any `PT_LOAD` segment that is larger in the file than in memory, runs
/// past the end of the file, lies outside [`abi::USER_MIN`]..[`abi::USER_MAP_BASE`]
/// (which keeps it clear of the memory-map area and the stack), has an address
/// and file offset that differ modulo the page size, or is both writable and
/// executable. Also refuses files with no loadable segment or more than
/// [`MAX_SEGMENTS`], segments that share a page, segments spanning more than
/// [`MAX_TOTAL_MEM`] together, and an entry point outside every executable
/// segment. Other program headers are ignored; `PT_LOAD` segments of size 0
/// are checked like the others but left out of the plan, as they map nothing.
pub fn check(bytes: &[u8]) -> Result<LoadPlan, ElfError> {
    check_ident(bytes)?;
    let file = ElfBytes::<LittleEndian>::minimal_parse(bytes)?;
    let header = &file.ehdr;
    if header.class != Class::ELF64 {
        return Err(ElfError::NotElf64 { class: bytes.get(EI_CLASS).copied().unwrap_or(0) });
    }
    if header.e_type != ET_EXEC {
        return Err(ElfError::NotExecutable { e_type: header.e_type });
    }
    if header.e_machine != EM_X86_64 {
        return Err(ElfError::WrongMachine { machine: header.e_machine });
    }
    let file_len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);

    // Program header index and checked segment, for the segments to map.
    let mut loads: Vec<(usize, Segment)> = Vec::new();
    let mut load_count = 0usize;
    for (index, phdr) in file.segments().into_iter().flatten().enumerate() {
        if phdr.p_type != PT_LOAD {
            continue;
        }
        load_count = load_count.saturating_add(1);
        if load_count > MAX_SEGMENTS {
            return Err(ElfError::TooManySegments);
        }
        let segment = check_segment(index, &phdr, file_len)?;
        if segment.mem_size != 0 {
            loads.push((index, segment));
        }
    }
    if loads.is_empty() {
        return Err(ElfError::NoLoadSegment);
    }

    // Whole pages, since that is how the kernel maps them. Every segment ends
    // by USER_MAP_BASE, so rounding up cannot overflow; still, check.
    let mut spans: Vec<(usize, u64, u64)> = Vec::with_capacity(loads.len());
    for &(index, ref segment) in &loads {
        let (start, end) = page_span(segment).ok_or(ElfError::OutsideUserSpace {
            index,
            vaddr: segment.vaddr,
            mem_size: segment.mem_size,
        })?;
        for &(other, other_start, other_end) in &spans {
            if start < other_end && other_start < end {
                return Err(ElfError::Overlap { first: other, second: index });
            }
        }
        spans.push((index, start, end));
    }
    let mut total = 0u64;
    for &(_, start, end) in &spans {
        total = total.saturating_add(end.saturating_sub(start));
    }
    if total > MAX_TOTAL_MEM {
        return Err(ElfError::TooLarge { total });
    }

    let entry = header.e_entry;
    let entry_ok = loads.iter().any(|(_, s)| s.executable && entry >= s.vaddr && entry - s.vaddr < s.mem_size);
    if !entry_ok {
        return Err(ElfError::EntryNotExecutable { entry });
    }

    Ok(LoadPlan { entry, segments: loads.into_iter().map(|(_, segment)| segment).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use elf::abi::{PF_R, PT_GNU_STACK, PT_NOTE};
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// A program header to write into a test file.
    #[derive(Clone, Copy, Debug)]
    struct Ph {
        p_type: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        filesz: u64,
        memsz: u64,
        align: u64,
    }

    const EHDR_SIZE: usize = 64;
    const PHDR_SIZE: usize = 56;
    const RX: u32 = PF_R | PF_X;
    const RW: u32 = PF_R | PF_W;

    fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
        Ph { p_type: PT_LOAD, flags, offset, vaddr, filesz, memsz, align: PAGE_SIZE }
    }

    /// Writes a minimal ELF64 little-endian x86-64 executable: the file
    /// header, the program headers right after it, then a byte pattern up to
    /// `len` bytes.
    fn elf_file(entry: u64, phs: &[Ph], len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&ELF_MAGIC);
        out.extend_from_slice(&[ELFCLASS64, ELFDATA2LSB, 1, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&ET_EXEC.to_le_bytes());
        out.extend_from_slice(&EM_X86_64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        out.extend_from_slice(&entry.to_le_bytes());
        let phoff: u64 = if phs.is_empty() { 0 } else { EHDR_SIZE as u64 };
        out.extend_from_slice(&phoff.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        out.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        out.extend_from_slice(&(phs.len() as u16).to_le_bytes());
        out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
        out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
        assert_eq!(out.len(), EHDR_SIZE);
        for ph in phs {
            out.extend_from_slice(&ph.p_type.to_le_bytes());
            out.extend_from_slice(&ph.flags.to_le_bytes());
            out.extend_from_slice(&ph.offset.to_le_bytes());
            out.extend_from_slice(&ph.vaddr.to_le_bytes());
            out.extend_from_slice(&ph.vaddr.to_le_bytes()); // p_paddr
            out.extend_from_slice(&ph.filesz.to_le_bytes());
            out.extend_from_slice(&ph.memsz.to_le_bytes());
            out.extend_from_slice(&ph.align.to_le_bytes());
        }
        let mut i = out.len();
        while out.len() < len {
            out.push((i % 251) as u8);
            i += 1;
        }
        out
    }

    const TEXT: u64 = 0x40_0000;
    const ENTRY: u64 = TEXT + 0x100;
    const FILE_LEN: usize = 0x2800;

    /// The program headers of the valid sample: code, then data with bss,
    /// with a note and a stack header that `check` must ignore.
    fn sample_phs() -> Vec<Ph> {
        vec![
            Ph { p_type: PT_NOTE, flags: PF_R, offset: 0x200, vaddr: 0, filesz: 0x20, memsz: 0x20, align: 4 },
            load(RX, 0, TEXT, 0x1800, 0x1800),
            load(RW, 0x2000, TEXT + 0x2000, 0x800, 0x3000),
            Ph { p_type: PT_GNU_STACK, flags: RW, offset: 0, vaddr: 0, filesz: 0, memsz: 0, align: 16 },
        ]
    }

    fn sample() -> Vec<u8> {
        elf_file(ENTRY, &sample_phs(), FILE_LEN)
    }

    /// `check` on a sample whose program headers `change` edits.
    fn check_with(entry: u64, change: impl FnOnce(&mut Vec<Ph>)) -> Result<LoadPlan, ElfError> {
        let mut phs = sample_phs();
        change(&mut phs);
        check(&elf_file(entry, &phs, FILE_LEN))
    }

    #[test]
    fn valid_file_gives_the_exact_plan() {
        let plan = check(&sample()).unwrap();
        assert_eq!(
            plan,
            LoadPlan {
                entry: ENTRY,
                segments: vec![
                    Segment {
                        vaddr: TEXT,
                        mem_size: 0x1800,
                        file_offset: 0,
                        file_size: 0x1800,
                        writable: false,
                        executable: true,
                    },
                    Segment {
                        vaddr: TEXT + 0x2000,
                        mem_size: 0x3000,
                        file_offset: 0x2000,
                        file_size: 0x800,
                        writable: true,
                        executable: false,
                    },
                ],
            }
        );
        assert_invariants(&sample(), &plan);
    }

    #[test]
    fn boundaries_that_are_allowed() {
        // Lowest address, unaligned start congruent with its offset, a
        // segment ending exactly at the map base and at the end of the file.
        let plan = check_with(USER_MIN, |phs| {
            phs[1] = load(RX, 0, USER_MIN, 0x100, 0x100);
            phs[2] = load(RW, 0x2010, USER_MAP_BASE - 0x1ff0, 0x7f0, 0x1ff0);
        })
        .unwrap();
        assert_eq!(plan.segments.len(), 2);
        // Entry on the last byte of the code segment.
        assert!(check_with(TEXT + 0x17ff, |_| {}).is_ok());
        // A read-only segment and an empty PT_LOAD (left out of the plan).
        let plan = check_with(ENTRY, |phs| {
            phs.push(load(PF_R, 0x1000, 0x50_0000, 0x100, 0x100));
            phs.push(load(PF_R, 0x1000, 0x60_0000, 0, 0));
        })
        .unwrap();
        assert_eq!(plan.segments.len(), 3);
        // Exactly MAX_SEGMENTS loads.
        let mut phs = vec![load(RX, 0, TEXT, 0x100, 0x100)];
        for i in 1..MAX_SEGMENTS as u64 {
            phs.push(load(PF_R, 0, TEXT + i * PAGE_SIZE, 0x100, 0x100));
        }
        assert_eq!(check(&elf_file(TEXT, &phs, FILE_LEN)).unwrap().segments.len(), MAX_SEGMENTS);
        // Exactly MAX_TOTAL_MEM.
        assert!(check_with(ENTRY, |phs| {
            phs[2].memsz = MAX_TOTAL_MEM - 0x2000;
        })
        .is_ok());
    }

    #[test]
    fn not_an_elf_file() {
        assert!(matches!(check(b""), Err(ElfError::Parse(_))));
        assert!(matches!(check(b"hello, world"), Err(ElfError::Parse(_))));
        assert!(matches!(check(&[0u8; 200]), Err(ElfError::Parse(_))));
        let valid = sample();
        for len in [4, 16, 30, EHDR_SIZE - 1, EHDR_SIZE + PHDR_SIZE] {
            assert!(matches!(check(&valid[..len]), Err(ElfError::Parse(_))), "length {len}");
        }
    }

    #[test]
    fn wrong_class_endianness_type_or_machine() {
        let mut file = sample();
        file[4] = 1;
        assert!(matches!(check(&file), Err(ElfError::NotElf64 { class: 1 })));
        assert!(matches!(check(&file[..5]), Err(ElfError::NotElf64 { class: 1 })));
        let mut file = sample();
        file[5] = 2;
        assert!(matches!(check(&file), Err(ElfError::NotLittleEndian { data: 2 })));
        let mut file = sample();
        file[16..18].copy_from_slice(&3u16.to_le_bytes());
        assert!(matches!(check(&file), Err(ElfError::NotExecutable { e_type: 3 })));
        let mut file = sample();
        file[18..20].copy_from_slice(&3u16.to_le_bytes());
        assert!(matches!(check(&file), Err(ElfError::WrongMachine { machine: 3 })));
    }

    #[test]
    fn no_load_segment() {
        assert!(matches!(check(&elf_file(ENTRY, &[], FILE_LEN)), Err(ElfError::NoLoadSegment)));
        assert!(matches!(check_with(ENTRY, |phs| phs.retain(|p| p.p_type != PT_LOAD)), Err(ElfError::NoLoadSegment)));
        assert!(matches!(check(&elf_file(ENTRY, &[load(RX, 0, TEXT, 0, 0)], FILE_LEN)), Err(ElfError::NoLoadSegment)));
    }

    #[test]
    fn too_many_segments() {
        let mut phs = vec![load(RX, 0, TEXT, 0x100, 0x100)];
        for i in 1..=MAX_SEGMENTS as u64 {
            phs.push(load(PF_R, 0, TEXT + i * PAGE_SIZE, 0x100, 0x100));
        }
        assert!(matches!(check(&elf_file(TEXT, &phs, FILE_LEN)), Err(ElfError::TooManySegments)));
    }

    #[test]
    fn file_size_larger_than_mem_size() {
        assert!(matches!(
            check_with(ENTRY, |phs| phs[2].filesz = 0x3001),
            Err(ElfError::FileSizeExceedsMemSize { index: 2, file_size: 0x3001, mem_size: 0x3000 })
        ));
    }

    #[test]
    fn contents_past_the_end_of_the_file() {
        assert!(matches!(check_with(ENTRY, |phs| phs[2].filesz = 0x801), Err(ElfError::OutsideFile { index: 2, .. })));
        assert!(matches!(
            check_with(ENTRY, |phs| {
                phs[2].offset = u64::MAX - 0xfff;
                phs[2].filesz = 0x1000;
                phs[2].memsz = 0x1000;
            }),
            Err(ElfError::OutsideFile { index: 2, .. })
        ));
        assert!(matches!(
            check_with(ENTRY, |phs| {
                phs[2].offset = 0x3000;
                phs[2].filesz = 0;
            }),
            Err(ElfError::OutsideFile { index: 2, .. })
        ));
    }

    #[test]
    fn outside_user_space() {
        for (vaddr, memsz) in [
            (0, 0x100),
            (USER_MIN - 1, 0x100),
            (0xffff_8000_0000_0000, 0x1000),
            (USER_END, 0x1000),
            (USER_END - 0x1000, 0x1001),
            (u64::MAX - 0xfff, 0x2000),
        ] {
            let result = check_with(ENTRY, |phs| {
                phs[2].vaddr = vaddr;
                phs[2].offset = vaddr % PAGE_SIZE;
                phs[2].filesz = 0;
                phs[2].memsz = memsz;
            });
            assert!(
                matches!(result, Err(ElfError::OutsideUserSpace { index: 2, .. })),
                "{vaddr:#x}+{memsz:#x}: {result:?}"
            );
        }
    }

    #[test]
    fn reaching_the_map_area_or_stack() {
        for (vaddr, memsz) in [
            (USER_MAP_BASE - 0x1000, 0x1001),
            (USER_MAP_BASE, 0x1000),
            (USER_STACK_TOP - USER_STACK_SIZE, 0x1000),
            (USER_STACK_TOP - 0x1000, 0x1000),
            (0x1000, USER_MAP_BASE),
        ] {
            let result = check_with(ENTRY, |phs| {
                phs[2].vaddr = vaddr;
                phs[2].offset = 0;
                phs[2].filesz = 0;
                phs[2].memsz = memsz;
            });
            assert!(
                matches!(result, Err(ElfError::ReservedRegion { index: 2, .. })),
                "{vaddr:#x}+{memsz:#x}: {result:?}"
            );
        }
    }

    #[test]
    fn address_and_offset_not_congruent() {
        assert!(matches!(
            check_with(ENTRY, |phs| phs[2].offset = 0x1ff0),
            Err(ElfError::Misaligned { index: 2, vaddr: 0x40_2000, offset: 0x1ff0 })
        ));
    }

    #[test]
    fn writable_and_executable() {
        assert!(matches!(
            check_with(ENTRY, |phs| phs[1].flags = PF_R | PF_W | PF_X),
            Err(ElfError::WritableAndExecutable { index: 1, .. })
        ));
    }

    #[test]
    fn segments_sharing_a_page() {
        // The data segment starts in the page where the code ends.
        assert!(matches!(
            check_with(ENTRY, |phs| {
                phs[2].vaddr = TEXT + 0x1800;
                phs[2].offset = 0x1800;
                phs[2].filesz = 0x800;
            }),
            Err(ElfError::Overlap { first: 1, second: 2 })
        ));
        // One segment wholly inside another.
        assert!(matches!(
            check_with(ENTRY, |phs| phs.push(load(PF_R, 0, TEXT, 0x10, 0x10))),
            Err(ElfError::Overlap { first: 1, second: 4 })
        ));
        // An earlier segment at a higher address.
        assert!(matches!(
            check_with(ENTRY, |phs| phs.insert(0, load(PF_R, 0x2000, TEXT + 0x4000, 0, 0x10))),
            Err(ElfError::Overlap { first: 0, second: 3 })
        ));
    }

    #[test]
    fn too_much_memory() {
        assert!(matches!(
            check_with(ENTRY, |phs| phs[2].memsz = MAX_TOTAL_MEM - 0x2000 + 1),
            Err(ElfError::TooLarge {
                total
            }) if total == MAX_TOTAL_MEM + PAGE_SIZE
        ));
        assert!(matches!(
            check_with(ENTRY, |phs| {
                phs.push(load(PF_R, 0, 0x1000_0000, 0, 200 << 20));
                phs.push(load(PF_R, 0, 0x2000_0000, 0, 200 << 20));
            }),
            Err(ElfError::TooLarge { .. })
        ));
    }

    #[test]
    fn entry_outside_code() {
        for entry in [0, TEXT - 1, TEXT + 0x1800, TEXT + 0x2000, u64::MAX] {
            assert!(
                matches!(
                    check_with(entry, |_| {}),
                    Err(ElfError::EntryNotExecutable { entry: e }) if e == entry
                ),
                "{entry:#x}"
            );
        }
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let message = std::format!(
            "{}",
            check_with(ENTRY, |phs| {
                phs[2].vaddr = 0xffff_8000_0000_0000;
                phs[2].offset = 0;
            })
            .unwrap_err()
        );
        assert!(
            message.starts_with("segment 2 at 0xffff800000000000 ") && message.contains("outside user space"),
            "{message}"
        );
        for error in [
            check(b"nope").unwrap_err(),
            check_with(ENTRY, |phs| phs[1].flags = PF_W | PF_X).unwrap_err(),
            check_with(0, |_| {}).unwrap_err(),
        ] {
            let text = std::format!("{error}");
            assert!(!text.is_empty() && !text.contains('\n'), "{text}");
        }
    }

    /// Everything a plan promises, checked from scratch.
    fn assert_invariants(bytes: &[u8], plan: &LoadPlan) {
        let segs = &plan.segments;
        assert!(!segs.is_empty() && segs.len() <= MAX_SEGMENTS);
        let mut total = 0u64;
        for s in segs {
            let end = s.vaddr.checked_add(s.mem_size).unwrap();
            assert!(s.mem_size > 0);
            assert!(s.vaddr >= USER_MIN && end <= USER_MAP_BASE);
            assert!(end <= USER_END);
            let stack = USER_STACK_TOP - USER_STACK_SIZE;
            assert!(end <= stack || s.vaddr >= USER_STACK_TOP, "{s:?} overlaps the stack");
            let file_end = s.file_offset.checked_add(s.file_size).unwrap();
            assert!(file_end <= bytes.len() as u64);
            assert!(s.file_size <= s.mem_size);
            assert!(!(s.writable && s.executable));
            assert_eq!(s.vaddr % PAGE_SIZE, s.file_offset % PAGE_SIZE);
            total += page_ceil(end).unwrap() - page_floor(s.vaddr);
        }
        assert!(total <= MAX_TOTAL_MEM);
        for (i, a) in segs.iter().enumerate() {
            for b in &segs[i + 1..] {
                let (a0, a1) = page_span(a).unwrap();
                let (b0, b1) = page_span(b).unwrap();
                assert!(a1 <= b0 || b1 <= a0, "{a:?} and {b:?} share a page");
            }
        }
        assert!(segs.iter().any(|s| s.executable && s.vaddr <= plan.entry && plan.entry < s.vaddr + s.mem_size));
    }

    /// Addresses and sizes near the interesting boundaries.
    fn interesting() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(USER_MIN),
            Just(TEXT),
            Just(TEXT + 0x1000),
            Just(TEXT + 0x1800),
            Just(USER_MAP_BASE - 0x1000),
            Just(USER_END),
            Just(u64::MAX),
            0u64..0x4000,
            0x40_0000u64..0x40_8000,
            any::<u64>(),
        ]
    }

    fn any_ph() -> impl Strategy<Value = Ph> {
        (
            prop_oneof![Just(PT_LOAD), Just(PT_LOAD), Just(PT_NOTE), any::<u32>()],
            0u32..8,
            interesting(),
            interesting(),
            interesting(),
            interesting(),
        )
            .prop_map(|(p_type, flags, offset, vaddr, filesz, memsz)| Ph {
                p_type,
                flags,
                offset,
                vaddr,
                filesz,
                memsz,
                align: PAGE_SIZE,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..400),
            elf_header in any::<bool>(),
        ) {
            if elf_header && bytes.len() >= 20 {
                bytes[..4].copy_from_slice(&ELF_MAGIC);
                bytes[4] = ELFCLASS64;
                bytes[5] = ELFDATA2LSB;
                bytes[6] = 1;
                bytes[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
                bytes[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
            }
            if let Ok(plan) = check(&bytes) {
                assert_invariants(&bytes, &plan);
            }
        }

        #[test]
        fn mutated_files_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 0..6),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let mut bytes = sample();
            let headers = EHDR_SIZE + sample_phs().len() * PHDR_SIZE;
            for (at, value, in_headers) in flips {
                let at = if in_headers { at % headers } else { at % bytes.len() };
                bytes[at] = value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            if let Ok(plan) = check(&bytes) {
                assert_invariants(&bytes, &plan);
            }
        }

        #[test]
        fn random_headers_are_checked(
            entry in interesting(),
            phs in proptest::collection::vec(any_ph(), 0..5),
            len in 0usize..0x3000,
        ) {
            let bytes = elf_file(entry, &phs, len);
            if let Ok(plan) = check(&bytes) {
                assert_invariants(&bytes, &plan);
            }
        }
    }
}
