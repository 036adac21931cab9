//! The physical frame allocator's bookkeeping: one bit per 4 KiB frame, with
//! counters the kernel reports to tests. It knows nothing about memory
//! itself — the kernel tells it which frames exist and which are free.

use alloc::vec;
use alloc::vec::Vec;

/// Why a free was refused: the kernel treats these as its own bugs.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame number is beyond the managed range.
    OutOfRange,
    /// The frame was already free (a double free).
    AlreadyFree,
}

/// A bitmap of frames: bit set = frame in use (or not RAM).
pub struct FrameBitmap {
    used: Vec<u64>,
    frames: usize,
    free: usize,
    total: usize,
    hint: usize,
}

impl FrameBitmap {
    /// A bitmap for frames `0..frames`, all initially in use (not RAM).
    pub fn new(frames: usize) -> Self {
        FrameBitmap { used: vec![u64::MAX; frames.div_ceil(64)], frames, free: 0, total: 0, hint: 0 }
    }

    /// Marks frames `start..end` as free RAM (clamped to the managed range;
    /// frames already free are not counted twice).
    pub fn add_free(&mut self, start: usize, end: usize) {
        for f in start..end.min(self.frames) {
            if self.is_used(f) {
                self.set(f, false);
                self.free += 1;
                self.total += 1;
            }
        }
    }

    /// Takes frames `start..end` out of use for good (kernel image, boot
    /// modules): they stop counting as RAM the allocator manages.
    pub fn reserve(&mut self, start: usize, end: usize) {
        for f in start..end.min(self.frames) {
            if !self.is_used(f) {
                self.set(f, true);
                self.free -= 1;
                self.total -= 1;
            }
        }
    }

    fn is_used(&self, f: usize) -> bool {
        self.used.get(f / 64).is_none_or(|w| w & (1 << (f % 64)) != 0)
    }

    fn set(&mut self, f: usize, used: bool) {
        if let Some(w) = self.used.get_mut(f / 64) {
            if used {
                *w |= 1 << (f % 64);
            } else {
                *w &= !(1 << (f % 64));
            }
        }
    }

    /// Allocates one frame; `None` when memory is exhausted.
    pub fn alloc(&mut self) -> Option<usize> {
        self.alloc_contiguous(1)
    }

    /// Allocates `n` physically contiguous frames, the first aligned to `n`
    /// rounded up to a power of two; returns the first frame.
    pub fn alloc_contiguous(&mut self, n: usize) -> Option<usize> {
        if n == 0 || n > self.free {
            return None;
        }
        let align = n.next_power_of_two();
        // First from the hint (where the last single frame came from), then
        // the whole range once.
        for from in [self.hint, 0] {
            let mut f = from.next_multiple_of(align);
            while f + n <= self.frames {
                // Skip whole used words quickly.
                if f % 64 == 0 && self.used.get(f / 64) == Some(&u64::MAX) {
                    f += align.max(64);
                    continue;
                }
                if (f..f + n).all(|g| !self.is_used(g)) {
                    for g in f..f + n {
                        self.set(g, true);
                    }
                    self.free -= n;
                    if n == 1 {
                        self.hint = f + 1;
                    }
                    return Some(f);
                }
                f += align;
            }
        }
        None
    }

    /// Returns a frame to the free pool.
    pub fn free(&mut self, f: usize) -> Result<(), FrameError> {
        if f >= self.frames {
            return Err(FrameError::OutOfRange);
        }
        if !self.is_used(f) {
            return Err(FrameError::AlreadyFree);
        }
        self.set(f, false);
        self.free += 1;
        if f < self.hint {
            self.hint = f;
        }
        Ok(())
    }

    /// Free frames now.
    pub fn free_frames(&self) -> usize {
        self.free
    }

    /// Frames of RAM under management (free or allocated).
    pub fn total_frames(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_and_double_free() {
        let mut b = FrameBitmap::new(1000);
        b.add_free(256, 1000);
        b.reserve(300, 310);
        assert_eq!(b.total_frames(), 734);
        assert_eq!(b.free_frames(), 734);
        let f = b.alloc().unwrap();
        assert!(f >= 256 && !(300..310).contains(&f));
        assert_eq!(b.free_frames(), 733);
        assert_eq!(b.free(f), Ok(()));
        assert_eq!(b.free(f), Err(FrameError::AlreadyFree));
        assert_eq!(b.free(5000), Err(FrameError::OutOfRange));
        assert_eq!(b.free_frames(), 734);
    }

    #[test]
    fn contiguous_runs_are_aligned_and_exhaustion_is_none() {
        let mut b = FrameBitmap::new(64);
        b.add_free(0, 64);
        let a = b.alloc_contiguous(4).unwrap();
        assert_eq!(a % 4, 0);
        let mut got = 4;
        while b.alloc().is_some() {
            got += 1;
        }
        assert_eq!(got, 64);
        assert_eq!(b.alloc_contiguous(1), None);
        assert_eq!(b.free_frames(), 0);
    }

    proptest! {
        #[test]
        fn never_hands_out_a_frame_twice(ops in proptest::collection::vec((0u8..3, 1usize..5), 1..200)) {
            let mut b = FrameBitmap::new(128);
            b.add_free(8, 128);
            let mut held: Vec<(usize, usize)> = Vec::new();
            for (op, n) in ops {
                if op < 2 {
                    if let Some(f) = b.alloc_contiguous(n) {
                        for &(s, m) in &held {
                            prop_assert!(f + n <= s || s + m <= f, "overlap");
                        }
                        prop_assert!(f >= 8 && f + n <= 128);
                        held.push((f, n));
                    }
                } else if let Some((s, m)) = held.pop() {
                    for g in s..s + m { prop_assert_eq!(b.free(g), Ok(())); }
                }
                let in_use: usize = held.iter().map(|h| h.1).sum();
                prop_assert_eq!(b.free_frames(), 120 - in_use);
            }
        }
    }
}
