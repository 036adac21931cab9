//! The scheduler's ready queues: fixed priorities 0 (lowest) to
//! `abi::MAX_PRIORITY`, first-in first-out within a priority, with a bitmap
//! so that finding the highest ready priority is one instruction.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Number of priority levels.
pub const LEVELS: usize = abi::MAX_PRIORITY as usize + 1;

/// Ready threads by priority. Thread ids are plain `usize`.
pub struct ReadyQueues {
    nonempty: u32,
    queues: Vec<VecDeque<usize>>,
}

impl Default for ReadyQueues {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadyQueues {
    /// Empty queues.
    pub fn new() -> Self {
        ReadyQueues { nonempty: 0, queues: (0..LEVELS).map(|_| VecDeque::new()).collect() }
    }

    /// Appends a thread at the back of its priority's queue.
    pub fn push_back(&mut self, thread: usize, priority: u8) {
        if let Some(q) = self.queues.get_mut(usize::from(priority)) {
            q.push_back(thread);
            self.nonempty |= 1 << priority;
        }
    }

    /// Puts a thread at the front of its priority's queue (a preempted thread
    /// keeps its turn).
    pub fn push_front(&mut self, thread: usize, priority: u8) {
        if let Some(q) = self.queues.get_mut(usize::from(priority)) {
            q.push_front(thread);
            self.nonempty |= 1 << priority;
        }
    }

    /// The highest priority with a ready thread.
    pub fn highest(&self) -> Option<u8> {
        if self.nonempty == 0 {
            None
        } else {
            Some(31 - self.nonempty.leading_zeros() as u8)
        }
    }

    /// Takes the first thread of the highest ready priority.
    pub fn pop_highest(&mut self) -> Option<usize> {
        let p = self.highest()?;
        let q = self.queues.get_mut(usize::from(p))?;
        let t = q.pop_front();
        if q.is_empty() {
            self.nonempty &= !(1 << p);
        }
        t
    }

    /// Removes a thread wherever it is queued at `priority`; true if found.
    pub fn remove(&mut self, thread: usize, priority: u8) -> bool {
        let Some(q) = self.queues.get_mut(usize::from(priority)) else { return false };
        let before = q.len();
        q.retain(|&t| t != thread);
        if q.is_empty() {
            self.nonempty &= !(1 << priority);
        }
        q.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_first_fifo_within() {
        let mut q = ReadyQueues::new();
        q.push_back(1, 3);
        q.push_back(2, 7);
        q.push_back(3, 3);
        q.push_front(4, 3);
        assert_eq!(q.highest(), Some(7));
        assert_eq!(q.pop_highest(), Some(2));
        assert_eq!(q.pop_highest(), Some(4));
        assert!(q.remove(1, 3));
        assert!(!q.remove(1, 3));
        assert_eq!(q.pop_highest(), Some(3));
        assert_eq!(q.pop_highest(), None);
        assert_eq!(q.highest(), None);
        q.push_back(9, 31);
        q.push_back(8, 0);
        assert_eq!(q.pop_highest(), Some(9));
        assert_eq!(q.pop_highest(), Some(8));
    }
}
