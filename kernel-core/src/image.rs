//! The boot image archive: one blob, handed to the kernel as a multiboot
//! module, that holds the system manifest and every task executable. The host
//! tool (`xtask`) writes it with [`build`]; the kernel reads it with
//! [`Image::parse`], which trusts nothing in the blob.
//!
//! # Format
//! All integers are little-endian.
//!
//! | bytes | field |
//! | --- | --- |
//! | 0–7 | magic [`MAGIC`] (`IRISIMG1`) |
//! | 8–11 | `u32` entry count |
//! | 12–15 | `u32` reserved, zero |
//! | 16… | `count` entries of [`ENTRY_SIZE`] bytes each |
//! | … | file data |
//!
//! An entry is a 32-byte name (UTF-8, padded with zero bytes, non-empty, no
//! NUL inside), then the `u64` offset of its data from the start of the image,
//! then the `u64` size of its data. Data lies after the entry table; [`build`]
//! starts every file on an 8-byte boundary, [`Image::parse`] does not require
//! it.

use alloc::vec::Vec;
use core::fmt;

use abi::NAME_MAX;

/// The eight bytes every boot image starts with.
pub const MAGIC: [u8; 8] = *b"IRISIMG1";
/// Size of the image header (magic, count, reserved), in bytes.
pub const HEADER_SIZE: usize = 16;
/// Size of one entry of the table (name, offset, size), in bytes.
pub const ENTRY_SIZE: usize = NAME_MAX + 16;
/// The most entries an image may hold; keeps the name-uniqueness check cheap.
pub const MAX_ENTRIES: usize = 1024;
/// Alignment [`build`] gives every file's data, in bytes.
pub const DATA_ALIGN: usize = 8;

/// Why a name is not a valid boot-image entry name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name has no bytes.
    Empty,
    /// The name is longer than [`NAME_MAX`] bytes (the length is given).
    TooLong(usize),
    /// The name contains a NUL byte.
    ContainsNul,
    /// The stored name is not valid UTF-8.
    NotUtf8,
    /// A stored name's padding after the first NUL byte is not all zero.
    BadPadding,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "the name is empty"),
            NameError::TooLong(len) => {
                write!(f, "the name is {len} bytes long, the limit is {NAME_MAX}")
            }
            NameError::ContainsNul => write!(f, "the name contains a NUL byte"),
            NameError::NotUtf8 => write!(f, "the name is not valid UTF-8"),
            NameError::BadPadding => {
                write!(f, "the name's padding after its end is not all zero bytes")
            }
        }
    }
}

/// Why a boot image could not be built or parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The blob is shorter than the header (the length is given).
    Truncated(usize),
    /// The blob does not start with [`MAGIC`].
    BadMagic,
    /// The reserved header word is not zero (its value is given).
    BadReserved(u32),
    /// The image has more than [`MAX_ENTRIES`] entries (the count is given).
    TooManyEntries(u64),
    /// The entry table runs past the end of the blob.
    TableTruncated {
        /// Entries the header announces.
        count: u32,
        /// Length of the blob in bytes.
        len: usize,
    },
    /// An entry's data does not lie wholly inside the data area of the blob.
    EntryOutOfRange {
        /// Index of the entry in the table.
        index: usize,
        /// The entry's data offset.
        offset: u64,
        /// The entry's data size.
        size: u64,
        /// Length of the blob in bytes.
        len: usize,
    },
    /// An entry's name is invalid.
    BadName {
        /// Index of the entry (or of the file given to [`build`]).
        index: usize,
        /// What is wrong with the name.
        problem: NameError,
    },
    /// Two entries have the same name.
    DuplicateName {
        /// Index of the first entry with the name.
        first: usize,
        /// Index of the later entry with the same name.
        second: usize,
    },
    /// [`build`] was given more data than an image can describe.
    TooLarge,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ImageError::Truncated(len) => write!(
                f,
                "boot image is {len} bytes, shorter than its {HEADER_SIZE}-byte header"
            ),
            ImageError::BadMagic => write!(f, "boot image does not start with \"IRISIMG1\""),
            ImageError::BadReserved(value) => write!(
                f,
                "boot image header's reserved word is {value:#x}, it must be zero"
            ),
            ImageError::TooManyEntries(count) => write!(
                f,
                "boot image has {count} entries, the limit is {MAX_ENTRIES}"
            ),
            ImageError::TableTruncated { count, len } => write!(
                f,
                "boot image announces {count} entries, but its table does not fit in {len} bytes"
            ),
            ImageError::EntryOutOfRange {
                index,
                offset,
                size,
                len,
            } => write!(
                f,
                "boot image entry {index} (offset {offset:#x}, size {size:#x}) lies outside the data area of the {len}-byte image"
            ),
            ImageError::BadName { index, problem } => {
                write!(f, "boot image entry {index} has a bad name: {problem}")
            }
            ImageError::DuplicateName { first, second } => write!(
                f,
                "boot image entries {first} and {second} have the same name"
            ),
            ImageError::TooLarge => write!(f, "boot image would be too large to describe"),
        }
    }
}

/// Checks that `name` can name a boot-image entry: 1 to [`NAME_MAX`] bytes,
/// no NUL byte.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > NAME_MAX {
        return Err(NameError::TooLong(name.len()));
    }
    if name.bytes().any(|b| b == 0) {
        return Err(NameError::ContainsNul);
    }
    Ok(())
}

/// Decodes a stored, zero-padded name field.
fn decode_name(field: &[u8]) -> Result<&str, NameError> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let (name, padding) = field.split_at(end);
    if padding.iter().any(|&b| b != 0) {
        return Err(NameError::BadPadding);
    }
    let name = core::str::from_utf8(name).map_err(|_| NameError::NotUtf8)?;
    check_name(name)?;
    Ok(name)
}

/// Rounds `value` up to a multiple of [`DATA_ALIGN`]; `None` on overflow.
fn align_up(value: usize) -> Option<usize> {
    value.checked_add(DATA_ALIGN - 1).map(|v| v & !(DATA_ALIGN - 1))
}

/// Builds a boot image holding `files`, each a `(name, data)` pair, in the
/// order given. Names must be valid (see [`check_name`]) and unique; every
/// file's data starts on an 8-byte boundary.
pub fn build(files: &[(&str, &[u8])]) -> Result<Vec<u8>, ImageError> {
    if files.len() > MAX_ENTRIES {
        return Err(ImageError::TooManyEntries(u64::try_from(files.len()).unwrap_or(u64::MAX)));
    }
    for (index, (name, _)) in files.iter().enumerate() {
        check_name(name).map_err(|problem| ImageError::BadName { index, problem })?;
        if let Some(first) = files.iter().take(index).position(|(n, _)| n == name) {
            return Err(ImageError::DuplicateName { first, second: index });
        }
    }
    let count = u32::try_from(files.len()).map_err(|_| ImageError::TooLarge)?;

    // Lay the files out after the table.
    let table_end =
        files.len().checked_mul(ENTRY_SIZE).and_then(|t| t.checked_add(HEADER_SIZE)).ok_or(ImageError::TooLarge)?;
    let mut placed = Vec::with_capacity(files.len());
    let mut cursor = table_end;
    for (_, data) in files {
        let offset = align_up(cursor).ok_or(ImageError::TooLarge)?;
        cursor = offset.checked_add(data.len()).ok_or(ImageError::TooLarge)?;
        placed.push(offset);
    }
    let total = align_up(cursor).ok_or(ImageError::TooLarge)?;

    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for ((name, data), &offset) in files.iter().zip(&placed) {
        let mut field = [0u8; NAME_MAX];
        for (slot, byte) in field.iter_mut().zip(name.bytes()) {
            *slot = byte;
        }
        out.extend_from_slice(&field);
        let offset = u64::try_from(offset).map_err(|_| ImageError::TooLarge)?;
        let size = u64::try_from(data.len()).map_err(|_| ImageError::TooLarge)?;
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
    }
    for ((_, data), &offset) in files.iter().zip(&placed) {
        out.resize(offset, 0);
        out.extend_from_slice(data);
    }
    out.resize(total, 0);
    Ok(out)
}

/// Reads a little-endian `u32` at `at`; `None` if it does not fit.
fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

/// Reads a little-endian `u64` at `at`; `None` if it does not fit.
fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

/// One raw table entry before validation.
struct RawEntry<'a> {
    name: &'a [u8],
    offset: u64,
    size: u64,
}

/// A validated boot image, borrowing the blob it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Image<'a> {
    /// Parses and validates a boot image: the magic, the reserved word, an
    /// entry count no larger than [`MAX_ENTRIES`] and than what fits in the
    /// blob, every entry's data inside the blob after the table, and every
    /// name valid and unique.
    pub fn parse(bytes: &'a [u8]) -> Result<Image<'a>, ImageError> {
        if bytes.len() < HEADER_SIZE {
            return Err(ImageError::Truncated(bytes.len()));
        }
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(ImageError::BadMagic);
        }
        let count_word = read_u32(bytes, 8).ok_or(ImageError::Truncated(bytes.len()))?;
        let reserved = read_u32(bytes, 12).ok_or(ImageError::Truncated(bytes.len()))?;
        if reserved != 0 {
            return Err(ImageError::BadReserved(reserved));
        }
        let count = usize::try_from(count_word)
            .ok()
            .filter(|&c| c <= MAX_ENTRIES)
            .ok_or(ImageError::TooManyEntries(u64::from(count_word)))?;
        let table_end = count
            .checked_mul(ENTRY_SIZE)
            .and_then(|t| t.checked_add(HEADER_SIZE))
            .filter(|&end| end <= bytes.len())
            .ok_or(ImageError::TableTruncated { count: count_word, len: bytes.len() })?;
        let image = Image { bytes, count };

        for index in 0..count {
            let raw =
                image.raw_entry(index).ok_or(ImageError::TableTruncated { count: count_word, len: bytes.len() })?;
            let out_of_range =
                ImageError::EntryOutOfRange { index, offset: raw.offset, size: raw.size, len: bytes.len() };
            let start = usize::try_from(raw.offset).map_err(|_| out_of_range)?;
            let size = usize::try_from(raw.size).map_err(|_| out_of_range)?;
            let end = start.checked_add(size).ok_or(out_of_range)?;
            if start < table_end || end > bytes.len() {
                return Err(out_of_range);
            }
            decode_name(raw.name).map_err(|problem| ImageError::BadName { index, problem })?;
            for first in 0..index {
                if image.raw_entry(first).map(|e| e.name) == Some(raw.name) {
                    return Err(ImageError::DuplicateName { first, second: index });
                }
            }
        }
        Ok(image)
    }

    /// The table entry `index`, undecoded; `None` past the table or the blob.
    fn raw_entry(&self, index: usize) -> Option<RawEntry<'a>> {
        if index >= self.count {
            return None;
        }
        let at = index.checked_mul(ENTRY_SIZE)?.checked_add(HEADER_SIZE)?;
        let name = self.bytes.get(at..at.checked_add(NAME_MAX)?)?;
        let offset = read_u64(self.bytes, at.checked_add(NAME_MAX)?)?;
        let size = read_u64(self.bytes, at.checked_add(NAME_MAX + 8)?)?;
        Some(RawEntry { name, offset, size })
    }

    /// The name and data of entry `index`; `None` past the table.
    fn entry(&self, index: usize) -> Option<(&'a str, &'a [u8])> {
        let raw = self.raw_entry(index)?;
        let name = decode_name(raw.name).ok()?;
        let start = usize::try_from(raw.offset).ok()?;
        let end = start.checked_add(usize::try_from(raw.size).ok()?)?;
        Some((name, self.bytes.get(start..end)?))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the image has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The data of the entry called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.entries().find(|&(entry_name, _)| entry_name == name).map(|(_, data)| data)
    }

    /// Every entry's name and data, in table order.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let image = *self;
        (0..self.count).filter_map(move |index| image.entry(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    fn sample() -> Vec<u8> {
        build(&[
            ("manifest", b"task init priority=5 init\n"),
            ("init", &[1, 2, 3, 4, 5]),
            ("empty", &[]),
            ("a-name-of-exactly-32-bytes-long!", &[9; 17]),
        ])
        .unwrap()
    }

    /// Overwrites the `u64` at `at` in `bytes`.
    fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    /// Offset of entry `index`'s data-offset field.
    fn offset_field(index: usize) -> usize {
        HEADER_SIZE + index * ENTRY_SIZE + NAME_MAX
    }

    #[test]
    fn round_trip() {
        let blob = sample();
        assert_eq!(blob.len() % DATA_ALIGN, 0);
        let image = Image::parse(&blob).unwrap();
        assert_eq!(image.len(), 4);
        assert!(!image.is_empty());
        assert_eq!(image.get("manifest"), Some(&b"task init priority=5 init\n"[..]));
        assert_eq!(image.get("init"), Some(&[1u8, 2, 3, 4, 5][..]));
        assert_eq!(image.get("empty"), Some(&[][..]));
        assert_eq!(image.get("a-name-of-exactly-32-bytes-long!"), Some(&[9u8; 17][..]));
        assert_eq!(image.get("missing"), None);
        assert_eq!(image.get(""), None);
        let names: Vec<&str> = image.entries().map(|(n, _)| n).collect();
        assert_eq!(names, ["manifest", "init", "empty", "a-name-of-exactly-32-bytes-long!"]);
    }

    #[test]
    fn data_is_aligned_and_after_the_table() {
        let blob = sample();
        let image = Image::parse(&blob).unwrap();
        let base = blob.as_ptr() as usize;
        for (_, data) in image.entries() {
            let offset = data.as_ptr() as usize - base;
            assert_eq!(offset % DATA_ALIGN, 0);
            assert!(offset >= HEADER_SIZE + 4 * ENTRY_SIZE);
        }
    }

    #[test]
    fn empty_image() {
        let blob = build(&[]).unwrap();
        assert_eq!(blob.len(), HEADER_SIZE);
        let image = Image::parse(&blob).unwrap();
        assert!(image.is_empty());
        assert_eq!(image.entries().count(), 0);
    }

    #[test]
    fn build_rejects_bad_names() {
        let long = "x".repeat(NAME_MAX + 1);
        assert_eq!(
            build(&[("ok", b"1"), ("", b"2")]),
            Err(ImageError::BadName { index: 1, problem: NameError::Empty })
        );
        assert_eq!(
            build(&[(long.as_str(), b"")]),
            Err(ImageError::BadName { index: 0, problem: NameError::TooLong(33) })
        );
        assert_eq!(build(&[("a\0b", b"")]), Err(ImageError::BadName { index: 0, problem: NameError::ContainsNul }));
        assert_eq!(
            build(&[("a", b""), ("b", b""), ("a", b"x")]),
            Err(ImageError::DuplicateName { first: 0, second: 2 })
        );
    }

    #[test]
    fn build_rejects_too_many_entries() {
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| std::format!("t{i}")).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &[][..])).collect();
        assert_eq!(build(&files), Err(ImageError::TooManyEntries(MAX_ENTRIES as u64 + 1)));
        assert!(build(&files[..MAX_ENTRIES]).is_ok());
    }

    #[test]
    fn truncated_blobs_are_refused() {
        let blob = sample();
        // The blob may end in alignment padding, which can go; cutting into
        // any entry's data cannot.
        let base = blob.as_ptr() as usize;
        let used = Image::parse(&blob)
            .unwrap()
            .entries()
            .map(|(_, data)| data.as_ptr() as usize - base + data.len())
            .max()
            .unwrap();
        assert!(used < blob.len());
        for len in 0..used {
            assert!(Image::parse(&blob[..len]).is_err(), "length {len}");
        }
        for len in used..=blob.len() {
            assert!(Image::parse(&blob[..len]).is_ok(), "length {len}");
        }
        assert_eq!(Image::parse(&blob[..10]), Err(ImageError::Truncated(10)));
        assert!(matches!(
            Image::parse(&blob[..HEADER_SIZE + ENTRY_SIZE]),
            Err(ImageError::TableTruncated { count: 4, .. })
        ));
    }

    #[test]
    fn header_faults_are_refused() {
        let mut blob = sample();
        blob[0] = b'X';
        assert_eq!(Image::parse(&blob), Err(ImageError::BadMagic));

        let mut blob = sample();
        blob[12] = 1;
        assert_eq!(Image::parse(&blob), Err(ImageError::BadReserved(1)));

        // A count far larger than the blob (the table would overlap the data
        // and run off the end).
        let mut blob = sample();
        blob[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Image::parse(&blob), Err(ImageError::TooManyEntries(u64::from(u32::MAX))));
        let mut blob = sample();
        blob[8..12].copy_from_slice(&100u32.to_le_bytes());
        assert!(matches!(Image::parse(&blob), Err(ImageError::TableTruncated { count: 100, .. })));
    }

    #[test]
    fn count_overlapping_the_data_is_refused() {
        // Claim one more entry than there is: the extra "entry" is read from
        // the start of the data area, which is not a valid entry.
        let mut blob = build(&[("a", &[0u8; 200])]).unwrap();
        blob[8..12].copy_from_slice(&2u32.to_le_bytes());
        let err = Image::parse(&blob).unwrap_err();
        assert!(matches!(err, ImageError::EntryOutOfRange { .. } | ImageError::BadName { .. }), "{err:?}");
        // The first entry's data now lies inside the (longer) table.
        let mut blob = build(&[("a", &[0u8; 200]), ("b", &[0u8; 8])]).unwrap();
        blob[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(Image::parse(&blob).is_err());
    }

    #[test]
    fn entries_out_of_range_are_refused() {
        let blob = sample();
        let len = blob.len();
        for (offset, size) in [
            (len as u64, 1),
            (len as u64 + 1, 0),
            (len as u64 - 4, 5),
            (u64::MAX, 1),
            (8, u64::MAX),
            (0, 4),
            ((HEADER_SIZE + 3 * ENTRY_SIZE) as u64, 1),
        ] {
            let mut bad = blob.clone();
            put_u64(&mut bad, offset_field(1), offset);
            put_u64(&mut bad, offset_field(1) + 8, size);
            assert!(
                matches!(Image::parse(&bad), Err(ImageError::EntryOutOfRange { index: 1, .. })),
                "offset {offset:#x} size {size:#x}"
            );
        }
        // Exactly to the end is fine.
        let mut ok = blob.clone();
        put_u64(&mut ok, offset_field(1), len as u64 - 4);
        put_u64(&mut ok, offset_field(1) + 8, 4);
        assert!(Image::parse(&ok).is_ok());
    }

    #[test]
    fn bad_stored_names_are_refused() {
        let blob = sample();
        let name_at = HEADER_SIZE + ENTRY_SIZE; // entry 1, "init"

        let mut bad = blob.clone();
        bad[name_at..name_at + NAME_MAX].fill(0);
        assert_eq!(Image::parse(&bad), Err(ImageError::BadName { index: 1, problem: NameError::Empty }));

        let mut bad = blob.clone();
        bad[name_at + 10] = b'z';
        assert_eq!(Image::parse(&bad), Err(ImageError::BadName { index: 1, problem: NameError::BadPadding }));

        let mut bad = blob.clone();
        bad[name_at] = 0xff;
        assert_eq!(Image::parse(&bad), Err(ImageError::BadName { index: 1, problem: NameError::NotUtf8 }));

        let mut bad = blob.clone();
        bad[name_at..name_at + 8].copy_from_slice(b"manifest");
        assert_eq!(Image::parse(&bad), Err(ImageError::DuplicateName { first: 0, second: 1 }));
    }

    #[test]
    fn messages_are_one_line() {
        let errors = [
            ImageError::Truncated(3),
            ImageError::BadMagic,
            ImageError::BadReserved(7),
            ImageError::TooManyEntries(5000),
            ImageError::TableTruncated { count: 9, len: 40 },
            ImageError::EntryOutOfRange { index: 2, offset: 0x100, size: 0x20, len: 0x80 },
            ImageError::BadName { index: 0, problem: NameError::TooLong(40) },
            ImageError::DuplicateName { first: 0, second: 3 },
            ImageError::TooLarge,
        ];
        for e in errors {
            let text = std::format!("{e}");
            assert!(!text.is_empty() && !text.contains('\n'), "{text}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut blob = bytes;
            // Give half the inputs a valid magic so the parser gets further.
            if blob.len() >= 8 && blob[0] & 1 == 0 {
                blob[..8].copy_from_slice(&MAGIC);
            }
            if let Ok(image) = Image::parse(&blob) {
                for (name, data) in image.entries() {
                    prop_assert!(check_name(name).is_ok());
                    prop_assert_eq!(image.get(name), Some(data));
                }
            }
        }

        #[test]
        fn mutations_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            cut in any::<usize>(),
        ) {
            let mut blob = sample();
            let len = blob.len();
            for (at, value) in flips {
                blob[at % len] = value;
            }
            blob.truncate(cut % (len + 1));
            if let Ok(image) = Image::parse(&blob) {
                prop_assert_eq!(image.entries().count(), image.len());
            }
        }

        #[test]
        fn build_then_parse_round_trips(
            files in proptest::collection::vec(
                ("[a-z0-9_.-]{1,32}", proptest::collection::vec(any::<u8>(), 0..64)),
                0..8,
            )
        ) {
            let mut unique: Vec<(String, Vec<u8>)> = vec![];
            for (name, data) in files {
                if !unique.iter().any(|(n, _)| *n == name) {
                    unique.push((name, data));
                }
            }
            let list: Vec<(&str, &[u8])> =
                unique.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
            let blob = build(&list).unwrap();
            let image = Image::parse(&blob).unwrap();
            let back: Vec<(&str, &[u8])> = image.entries().collect();
            prop_assert_eq!(back, list);
        }
    }
}
