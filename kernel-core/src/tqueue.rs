//! Queues of threads linked through the threads' own records (intrusive
//! doubly linked lists). An endpoint's waiting senders and receivers are
//! such queues: taking the first waiter, appending to an empty queue and
//! removing a cancelled waiter touch a few words and never allocate, and a
//! thread, which waits on at most one queue at a time, carries the one pair
//! of links it needs.
//!
//! The records live in a table `[Option<T>]` indexed by thread id; a queue
//! holds only its first and last id. Ids must be below [`NIL`].

/// No thread (the end of a queue).
pub const NIL: u32 = u32::MAX;

/// A record's place in the queue it waits on (both [`NIL`] while it waits
/// on none, or is alone in one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Links {
    prev: u32,
    next: u32,
}

impl Default for Links {
    fn default() -> Links {
        Links { prev: NIL, next: NIL }
    }
}

/// A record that can wait in a [`Queue`].
pub trait Linked {
    /// Its links.
    fn links(&self) -> &Links;
    /// Its links, to change.
    fn links_mut(&mut self) -> &mut Links;
}

/// A FIFO queue of records of one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    head: u32,
    tail: u32,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue { head: NIL, tail: NIL }
    }
}

fn links_mut<T: Linked>(items: &mut [Option<T>], i: u32) -> &mut Links {
    items.get_mut(i as usize).and_then(Option::as_mut).expect("queued record exists").links_mut()
}

fn links<T: Linked>(items: &[Option<T>], i: u32) -> Links {
    *items.get(i as usize).and_then(Option::as_ref).expect("queued record exists").links()
}

impl Queue {
    /// True if nobody waits.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.head == NIL
    }

    /// The first in the queue.
    #[inline(always)]
    pub fn front(&self) -> Option<usize> {
        (self.head != NIL).then_some(self.head as usize)
    }

    #[cfg(test)]
    /// The last in the queue.
    pub fn back(&self) -> Option<usize> {
        (self.tail != NIL).then_some(self.tail as usize)
    }

    /// Appends `i` (which waits on no queue).
    #[inline(always)]
    pub fn push_back<T: Linked>(&mut self, items: &mut [Option<T>], i: usize) {
        let id = i as u32;
        let tail = self.tail;
        *links_mut(items, id) = Links { prev: tail, next: NIL };
        if tail == NIL {
            self.head = id;
        } else {
            links_mut(items, tail).next = id;
        }
        self.tail = id;
    }

    /// Inserts `i` (which waits on no queue) behind the last record for
    /// which `ahead` holds, searching from the back (at the front if there
    /// is none). In a queue kept in order by some rank, with `ahead`
    /// meaning "ranks the same or higher", this keeps the order and puts
    /// `i` behind its equals.
    #[inline(always)]
    pub fn insert_behind<T: Linked>(&mut self, items: &mut [Option<T>], i: usize, ahead: impl Fn(&T) -> bool) {
        if self.tail == NIL {
            return self.push_back(items, i);
        }
        self.insert_walk(items, i, ahead);
    }

    #[inline(never)]
    fn insert_walk<T: Linked>(&mut self, items: &mut [Option<T>], i: usize, ahead: impl Fn(&T) -> bool) {
        let mut after = self.tail;
        while after != NIL {
            let rec = items.get(after as usize).and_then(Option::as_ref).expect("queued record exists");
            if ahead(rec) {
                break;
            }
            after = rec.links().prev;
        }
        if after == self.tail {
            return self.push_back(items, i);
        }
        let id = i as u32;
        // `after` is not the tail, so something follows the insertion.
        let next = if after == NIL { self.head } else { links(items, after).next };
        *links_mut(items, id) = Links { prev: after, next };
        links_mut(items, next).prev = id;
        if after == NIL {
            self.head = id;
        } else {
            links_mut(items, after).next = id;
        }
    }

    /// Takes the first record out of the queue.
    #[inline(always)]
    pub fn pop_front<T: Linked>(&mut self, items: &mut [Option<T>]) -> Option<usize> {
        let head = self.head;
        if head == NIL {
            return None;
        }
        let l = links_mut(items, head);
        let next = l.next;
        *l = Links::default();
        self.head = next;
        if next == NIL {
            self.tail = NIL;
        } else {
            links_mut(items, next).prev = NIL;
        }
        Some(head as usize)
    }

    /// Takes the first record out of the queue when the caller holds it
    /// (`first` are its links): returns the record that is first now, if
    /// any, whose back link the caller must then clear with
    /// [`Queue::clear_prev`]. (The fast path's way: no second look-up of
    /// the record it already has.)
    #[inline(always)]
    pub fn unlink_front(&mut self, first: &mut Links) -> Option<usize> {
        let next = first.next;
        *first = Links::default();
        self.head = next;
        if next == NIL {
            self.tail = NIL;
            return None;
        }
        Some(next as usize)
    }

    /// Clears the back link of `i`, which [`Queue::unlink_front`] made
    /// first.
    pub fn clear_prev<T: Linked>(items: &mut [Option<T>], i: usize) {
        links_mut(items, i as u32).prev = NIL;
    }

    /// Appends `i`, whose links are `links` (it waits on no queue), to an
    /// empty queue; false (and nothing changed) if the queue is not empty.
    #[inline(always)]
    pub fn push_alone(&mut self, links: &mut Links, i: usize) -> bool {
        if self.head != NIL {
            return false;
        }
        *links = Links::default();
        self.head = i as u32;
        self.tail = i as u32;
        true
    }

    /// Takes `i` out of the queue if it is in it; true if it was. (A record
    /// waits on at most one queue; the caller knows which.)
    pub fn remove<T: Linked>(&mut self, items: &mut [Option<T>], i: usize) -> bool {
        let id = i as u32;
        let Some(rec) = items.get_mut(i).and_then(Option::as_mut) else { return false };
        let Links { prev, next } = *rec.links();
        if prev == NIL && self.head != id {
            return false;
        }
        *rec.links_mut() = Links::default();
        if prev == NIL {
            self.head = next;
        } else {
            links_mut(items, prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            links_mut(items, next).prev = prev;
        }
        true
    }

    #[cfg(test)]
    /// The records in the queue, first to last.
    pub fn iter<'a, T: Linked>(&self, items: &'a [Option<T>]) -> impl Iterator<Item = usize> + 'a {
        let mut at = self.head;
        core::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let i = at;
            at = items.get(i as usize).and_then(Option::as_ref).map_or(NIL, |r| r.links().next);
            Some(i as usize)
        })
    }

    #[cfg(test)]
    /// The records in the queue, first to last, collected (at most one
    /// more than the table has records, so that a cycle shows as a repeat;
    /// a broken link ends the walk).
    pub fn members<T: Linked>(&self, items: &[Option<T>]) -> alloc::vec::Vec<usize> {
        self.iter(items).take(items.len() + 1).collect()
    }

    #[cfg(test)]
    /// Panics unless the links are consistent: each record's `prev` is the
    /// one before it, the last is the tail, and no record repeats.
    pub fn check<T: Linked>(&self, items: &[Option<T>]) {
        let m = self.members(items);
        let mut prev = NIL;
        for (n, &i) in m.iter().enumerate() {
            assert!(!m[..n].contains(&i), "record {i} queued twice: {m:?}");
            assert_eq!(links(items, i as u32).prev, prev, "record {i}: wrong back link in {m:?}");
            prev = i as u32;
        }
        assert_eq!(self.tail, prev, "wrong tail for {m:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[derive(Clone, Copy, Debug, Default)]
    struct Rec {
        rank: u8,
        links: Links,
    }

    impl Linked for Rec {
        fn links(&self) -> &Links {
            &self.links
        }
        fn links_mut(&mut self) -> &mut Links {
            &mut self.links
        }
    }

    /// The model: a Vec in queue order.
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Push(usize),
        PushAlone(usize),
        Unlink,
        Insert(usize),
        Pop,
        Remove(usize),
    }

    fn apply(q: &mut Queue, items: &mut [Option<Rec>], model: &mut Vec<usize>, op: Op) {
        match op {
            Op::Push(i) => {
                q.push_back(items, i);
                model.push(i);
            }
            Op::Insert(i) => {
                let r = items[i].unwrap().rank;
                q.insert_behind(items, i, |x| x.rank >= r);
                // Behind the last of rank `r` or higher (in a queue kept in
                // order: the first of a lower rank's place).
                let at = model.iter().rposition(|&o| items[o].unwrap().rank >= r).map_or(0, |p| p + 1);
                model.insert(at, i);
            }
            Op::PushAlone(i) => {
                let mut l = *items[i].unwrap().links();
                let done = q.push_alone(&mut l, i);
                items[i].as_mut().unwrap().links = l;
                assert_eq!(done, model.is_empty());
                if done {
                    model.push(i);
                }
            }
            Op::Unlink => {
                let Some(h) = q.front() else { return };
                let mut l = items[h].unwrap().links;
                let next = q.unlink_front(&mut l);
                items[h].as_mut().unwrap().links = l;
                if let Some(n) = next {
                    Queue::clear_prev(items, n);
                }
                model.remove(0);
                assert_eq!(next, model.first().copied());
            }
            Op::Pop => {
                let got = q.pop_front(items);
                let want = (!model.is_empty()).then(|| model.remove(0));
                assert_eq!(got, want);
            }
            Op::Remove(i) => {
                let got = q.remove(items, i);
                let pos = model.iter().position(|&o| o == i);
                assert_eq!(got, pos.is_some());
                if let Some(p) = pos {
                    model.remove(p);
                }
            }
        }
    }

    /// Every sequence of up to 6 operations over 4 records (each record
    /// queued at most once, as a thread waits on at most one queue): the
    /// queue equals the model after each step, and its links check.
    #[test]
    fn every_short_sequence_matches_a_vec() {
        const N: usize = 4;
        const RANKS: [u8; N] = [1, 3, 1, 2];
        fn ops(model: &[usize]) -> Vec<Op> {
            let mut v = alloc::vec![Op::Pop, Op::Unlink];
            for i in 0..N {
                if model.contains(&i) {
                    v.push(Op::Remove(i));
                } else {
                    v.push(Op::Push(i));
                    v.push(Op::Insert(i));
                    v.push(Op::PushAlone(i));
                    // Removing a record that is not queued changes nothing.
                    v.push(Op::Remove(i));
                }
            }
            v
        }
        fn walk(q: Queue, items: Vec<Option<Rec>>, model: Vec<usize>, depth: usize, count: &mut usize) {
            *count += 1;
            if depth == 0 {
                return;
            }
            for op in ops(&model) {
                let (mut q, mut items, mut model) = (q, items.clone(), model.clone());
                apply(&mut q, &mut items, &mut model, op);
                assert_eq!(q.members(&items), model, "after {op:?}");
                q.check(&items);
                assert_eq!(q.is_empty(), model.is_empty());
                assert_eq!(q.front(), model.first().copied());
                assert_eq!(q.back(), model.last().copied());
                for (i, rec) in items.iter().enumerate() {
                    if !model.contains(&i) {
                        assert_eq!(rec.unwrap().links, Links::default(), "record {i} not queued keeps links");
                    }
                }
                walk(q, items, model, depth - 1, count);
            }
        }
        let items: Vec<Option<Rec>> = RANKS.iter().map(|&rank| Some(Rec { rank, links: Links::default() })).collect();
        let mut count = 0;
        walk(Queue::default(), items, Vec::new(), 6, &mut count);
        assert!(count > 100_000, "explored {count} states");
    }

    #[test]
    fn records_outside_the_table_are_not_queued() {
        let mut items: Vec<Option<Rec>> = alloc::vec![None, Some(Rec::default())];
        let mut q = Queue::default();
        assert!(!q.remove(&mut items, 0));
        assert!(!q.remove(&mut items, 7));
        q.push_back(&mut items, 1);
        assert!(!q.remove(&mut items, 0));
        assert_eq!(q.members(&items), [1]);
    }
}
