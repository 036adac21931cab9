//! Capability spaces: the capability table of every task, and the one
//! derivation tree that links capabilities across all of them.
//!
//! A task names a capability by a *token* (see [`abi::token`]): the slot
//! index in its own table, the slot's 8-bit generation and the object kind.
//! Every copy, mint or grant makes the new capability a child of its source,
//! so that [`CapSpace::revoke`] can later take back everything handed out
//! from a capability, in every task, without recursion and without
//! allocating. Every operation checks all it needs before it changes
//! anything, so an error always leaves the space exactly as it was.
//!
//! # What the 8-bit generation promises
//! Freeing a slot increments its generation (wrapping). A token therefore
//! stays dead through the next 255 frees of its slot; on the 256th free the
//! generation is back where it started, and if the slot is then refilled with
//! an object of the same kind, the old token names the new capability.

use abi::{rights, token};
use alloc::vec::Vec;

/// Identifies a task's table: a plain index chosen by the kernel.
pub type TaskId = usize;

/// The kernel object a capability names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ObjectRef {
    /// The object's kind, one of [`abi::kind`]; must fit in 4 bits.
    pub kind: u8,
    /// The object's identity within its kind.
    pub id: u64,
}

/// What a slot grants: an object, the rights held on it and a badge.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Capability {
    /// The object named.
    pub object: ObjectRef,
    /// The rights held, a set of [`abi::rights`] bits.
    pub rights: u64,
    /// A value chosen by whoever minted the capability (0 for roots).
    pub badge: u64,
}

/// Why a capability operation failed. On every error the space is unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CapError {
    /// The token does not name a live capability of the task: out of range,
    /// empty slot, stale generation, wrong kind bits or flag bits set.
    NotFound,
    /// The capability lacks a needed right or names the wrong kind of object.
    PermissionDenied,
    /// The target task's table has no free slot.
    TableFull,
    /// The task has no table.
    NoSuchTask,
    /// [`CapSpace::add_task`] was given a task that already has a table.
    TaskExists,
}

impl From<CapError> for abi::Error {
    fn from(error: CapError) -> abi::Error {
        match error {
            CapError::NotFound | CapError::NoSuchTask => abi::Error::NotFound,
            CapError::PermissionDenied => abi::Error::PermissionDenied,
            CapError::TableFull => abi::Error::OutOfMemory,
            CapError::TaskExists => abi::Error::InvalidState,
        }
    }
}

/// The place of a slot: which task's table, which index in it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct SlotRef {
    task: TaskId,
    slot: usize,
}

/// A live capability and its place in the derivation tree. The children of
/// a node form a doubly linked list through the sibling links; roots have no
/// siblings.
#[derive(Clone, Copy, Debug)]
struct Node {
    cap: Capability,
    parent: Option<SlotRef>,
    first_child: Option<SlotRef>,
    prev_sibling: Option<SlotRef>,
    next_sibling: Option<SlotRef>,
}

/// One slot of a table; the generation outlives the capability in it.
#[derive(Clone, Debug)]
struct Slot {
    generation: u8,
    node: Option<Node>,
}

/// One task's table. It grows on demand up to the space's slot limit.
#[derive(Debug)]
struct Table {
    slots: Vec<Slot>,
    used: usize,
    /// Every slot below this index is occupied.
    lowest_free: usize,
}

/// The capability tables of all tasks and the derivation tree across them.
#[derive(Debug)]
pub struct CapSpace {
    slots_per_task: usize,
    tables: Vec<Option<Table>>,
    in_use: usize,
    /// Objects whose capabilities were removed since the last
    /// [`CapSpace::take_removed`] (one entry per removed capability).
    removed: Vec<ObjectRef>,
    /// See [`CapSpace::epoch`].
    epoch: u64,
}

impl CapSpace {
    /// An empty space whose tables each hold at most `slots_per_task`
    /// capabilities (capped at the 2^48 indices a token can carry).
    pub fn new(slots_per_task: usize) -> CapSpace {
        let index_limit = usize::try_from(token::INDEX_MASK).map_or(usize::MAX, |m| m + 1);
        CapSpace {
            slots_per_task: slots_per_task.min(index_limit),
            tables: Vec::new(),
            in_use: 0,
            removed: Vec::new(),
            epoch: 0,
        }
    }

    /// A counter that advances whenever a capability is removed and
    /// whenever a table is added or removed. A capability never changes in
    /// place, so a successful [`CapSpace::check`] of a token stays exact —
    /// same capability, same rights and badge — for as long as the epoch has
    /// not moved: that lets a caller remember a check and skip it next time.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The most capabilities one task's table can hold.
    pub fn slots_per_task(&self) -> usize {
        self.slots_per_task
    }

    /// Whether `task` has a table.
    pub fn has_task(&self, task: TaskId) -> bool {
        self.table(task).is_ok()
    }

    /// Creates an empty table for `task`; [`CapError::TaskExists`] if it has
    /// one. Task ids should be small: the space keeps a vector indexed by them.
    pub fn add_task(&mut self, task: TaskId) -> Result<(), CapError> {
        if self.has_task(task) {
            return Err(CapError::TaskExists);
        }
        if task >= self.tables.len() {
            self.tables.resize_with(task + 1, || None);
        }
        self.tables[task] = Some(Table { slots: Vec::new(), used: 0, lowest_free: 0 });
        self.epoch += 1;
        Ok(())
    }

    /// Deletes every capability of `task` one by one, as [`CapSpace::delete`]
    /// does (their children elsewhere move up to the nearest surviving
    /// ancestor), then drops the table. Returns how many were deleted. A
    /// table added again later starts over at generation 0, so the kernel
    /// must not let tokens outlive the task that held them.
    pub fn remove_task(&mut self, task: TaskId) -> Result<usize, CapError> {
        let len = self.table(task)?.slots.len();
        let mut removed = 0;
        for slot in 0..len {
            let at = SlotRef { task, slot };
            if self.slot(at).node.is_some() {
                self.remove(at);
                removed += 1;
            }
        }
        self.tables[task] = None;
        self.epoch += 1;
        Ok(removed)
    }

    /// The objects that lost a capability since the last call (deletes,
    /// revokes, task removal), so the kernel can act on objects that are
    /// no longer referenced or on waits whose token died.
    pub fn take_removed(&mut self) -> Vec<ObjectRef> {
        core::mem::take(&mut self.removed)
    }

    /// Whether capabilities were removed since the last [`CapSpace::take_removed`].
    pub fn has_removed(&self) -> bool {
        !self.removed.is_empty()
    }

    /// Puts a new capability with no parent and badge 0 into `task`'s table.
    pub fn insert_root(&mut self, task: TaskId, object: ObjectRef, rights: u64) -> Result<u64, CapError> {
        debug_assert!(object.kind <= 0xF, "object kinds must fit in 4 bits");
        let slot = self.free_slot(task)?;
        let cap = Capability { object, rights, badge: 0 };
        Ok(self.place(SlotRef { task, slot }, cap, None))
    }

    /// The capability `token` names in `task`'s table.
    #[inline]
    pub fn lookup(&self, task: TaskId, token: u64) -> Result<&Capability, CapError> {
        self.resolve_node(task, token).map(|(_, node)| &node.cap)
    }

    /// A copy of the capability `token` names, provided it names an object of
    /// `kind` and holds every right in `needed_rights`; otherwise
    /// [`CapError::PermissionDenied`].
    #[inline]
    pub fn check(&self, task: TaskId, token: u64, kind: u8, needed_rights: u64) -> Result<Capability, CapError> {
        let cap = *self.lookup(task, token)?;
        if cap.object.kind != kind || cap.rights & needed_rights != needed_rights {
            return Err(CapError::PermissionDenied);
        }
        Ok(cap)
    }

    /// Copies a capability into a new slot of the same task, with the same
    /// rights and badge, as a child of the source. Needs GRANT.
    pub fn copy(&mut self, task: TaskId, token: u64) -> Result<u64, CapError> {
        let (from, cap) = self.source(task, token)?;
        self.derive(from, task, cap)
    }

    /// Derives a capability in the same task holding only the rights both
    /// the source and `rights` have, carrying `badge`. Needs GRANT.
    pub fn mint(&mut self, task: TaskId, token: u64, rights: u64, badge: u64) -> Result<u64, CapError> {
        let (from, cap) = self.source(task, token)?;
        let cap = Capability { rights: cap.rights & rights, badge, ..cap };
        self.derive(from, task, cap)
    }

    /// Derives a capability in `to_task`'s table holding only the rights both
    /// the source and `rights` have, keeping the source's badge; returns the
    /// token valid in `to_task`. Needs GRANT.
    pub fn grant_to(&mut self, from_task: TaskId, token: u64, to_task: TaskId, rights: u64) -> Result<u64, CapError> {
        let (from, cap) = self.source(from_task, token)?;
        let cap = Capability { rights: cap.rights & rights, ..cap };
        self.derive(from, to_task, cap)
    }

    /// Deletes one capability; needs no right. Its children take its place
    /// under its parent (or become roots), so they keep working and stay
    /// revocable from above.
    pub fn delete(&mut self, task: TaskId, token: u64) -> Result<(), CapError> {
        let at = self.resolve(task, token)?;
        self.remove(at);
        Ok(())
    }

    /// Deletes every capability derived from this one, however indirectly and
    /// in whichever task; the capability itself stays. Needs REVOKE. Returns
    /// how many were deleted.
    pub fn revoke(&mut self, task: TaskId, token: u64) -> Result<usize, CapError> {
        let root = self.resolve(task, token)?;
        if self.node(root).cap.rights & rights::REVOKE == 0 {
            return Err(CapError::PermissionDenied);
        }
        // Walk down first-child links to a leaf, delete it, step back to its
        // parent and go on; the tree's own links are the only stack needed.
        let mut removed = 0;
        let Some(mut at) = self.node(root).first_child else {
            return Ok(0);
        };
        loop {
            let node = *self.node(at);
            if let Some(child) = node.first_child {
                at = child;
                continue;
            }
            let parent = node.parent.expect("a descendant of the revoked capability has a parent");
            self.remove(at);
            removed += 1;
            if parent != root {
                at = parent;
            } else if let Some(next) = self.node(root).first_child {
                at = next;
            } else {
                return Ok(removed);
            }
        }
    }

    /// How many live capabilities, over all tasks, name `object`.
    pub fn objects_referenced(&self, object: ObjectRef) -> usize {
        self.tables
            .iter()
            .flatten()
            .flat_map(|table| table.slots.iter())
            .filter(|slot| slot.node.is_some_and(|node| node.cap.object == object))
            .count()
    }

    /// Deletes every capability that names `object`, in every task. Returns
    /// how many were deleted.
    pub fn remove_object(&mut self, object: ObjectRef) -> usize {
        let mut removed = 0;
        for task in 0..self.tables.len() {
            let len = self.tables[task].as_ref().map_or(0, |t| t.slots.len());
            for slot in 0..len {
                let at = SlotRef { task, slot };
                if self.slot(at).node.is_some_and(|n| n.cap.object == object) {
                    self.remove(at);
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Capability slots in use over all tasks.
    pub fn slots_in_use(&self) -> usize {
        self.in_use
    }

    /// Capability slots in use in `task`'s table.
    pub fn slots_in_use_of(&self, task: TaskId) -> Result<usize, CapError> {
        Ok(self.table(task)?.used)
    }

    fn table(&self, task: TaskId) -> Result<&Table, CapError> {
        self.tables.get(task).and_then(Option::as_ref).ok_or(CapError::NoSuchTask)
    }

    fn table_mut(&mut self, task: TaskId) -> &mut Table {
        self.tables[task].as_mut().expect("a capability link points into a task with no table")
    }

    fn slot(&self, at: SlotRef) -> &Slot {
        &self.tables[at.task].as_ref().expect("a capability link points into a task with no table").slots[at.slot]
    }

    fn node(&self, at: SlotRef) -> &Node {
        self.slot(at).node.as_ref().expect("a capability link points at an empty slot")
    }

    fn node_mut(&mut self, at: SlotRef) -> &mut Node {
        self.table_mut(at.task).slots[at.slot].node.as_mut().expect("a capability link points at an empty slot")
    }

    /// Decodes a token of `task` to the live slot it names.
    fn resolve(&self, task: TaskId, tok: u64) -> Result<SlotRef, CapError> {
        self.resolve_node(task, tok).map(|(slot, _)| SlotRef { task, slot })
    }

    /// [`CapSpace::resolve`] with the node found. A token names a live
    /// capability exactly when it equals the token of that slot: its index,
    /// the slot's generation, the object's kind and no flags.
    #[inline]
    fn resolve_node(&self, task: TaskId, tok: u64) -> Result<(usize, &Node), CapError> {
        let table = self.table(task)?;
        let slot = usize::try_from(token::index(tok)).map_err(|_| CapError::NotFound)?;
        let entry = table.slots.get(slot).ok_or(CapError::NotFound)?;
        let node = entry.node.as_ref().ok_or(CapError::NotFound)?;
        if tok != token::make(slot as u64, entry.generation, node.cap.object.kind) {
            return Err(CapError::NotFound);
        }
        Ok((slot, node))
    }

    /// Resolves the source of a copy, mint or grant and checks it has GRANT.
    fn source(&self, task: TaskId, token: u64) -> Result<(SlotRef, Capability), CapError> {
        let at = self.resolve(task, token)?;
        let cap = self.node(at).cap;
        if cap.rights & rights::GRANT == 0 {
            return Err(CapError::PermissionDenied);
        }
        Ok((at, cap))
    }

    /// The lowest free slot index of `task`'s table.
    fn free_slot(&self, task: TaskId) -> Result<usize, CapError> {
        let table = self.table(task)?;
        if table.used >= self.slots_per_task {
            return Err(CapError::TableFull);
        }
        Ok(table.lowest_free)
    }

    /// Fills the free slot `at` (one past the end grows the table) with
    /// `cap`, linked under `parent` if any, and returns its token.
    fn place(&mut self, at: SlotRef, cap: Capability, parent: Option<SlotRef>) -> u64 {
        let next_sibling = parent.and_then(|p| self.node(p).first_child);
        let node = Node { cap, parent, first_child: None, prev_sibling: None, next_sibling };
        let table = self.table_mut(at.task);
        if at.slot == table.slots.len() {
            table.slots.push(Slot { generation: 0, node: None });
        }
        let slot = &mut table.slots[at.slot];
        debug_assert!(slot.node.is_none());
        slot.node = Some(node);
        let generation = slot.generation;
        table.used += 1;
        if at.slot == table.lowest_free {
            table.lowest_free =
                table.slots[at.slot..].iter().position(|s| s.node.is_none()).map_or(table.slots.len(), |i| at.slot + i);
        }
        self.in_use += 1;
        if let Some(next) = next_sibling {
            self.node_mut(next).prev_sibling = Some(at);
        }
        if let Some(p) = parent {
            self.node_mut(p).first_child = Some(at);
        }
        token::make(at.slot as u64, generation, cap.object.kind)
    }

    /// Puts `cap` into a new slot of `to_task` as a child of `from`.
    fn derive(&mut self, from: SlotRef, to_task: TaskId, cap: Capability) -> Result<u64, CapError> {
        let slot = self.free_slot(to_task)?;
        Ok(self.place(SlotRef { task: to_task, slot }, cap, Some(from)))
    }

    /// Frees the live slot `at`, splicing its children into its place.
    fn remove(&mut self, at: SlotRef) {
        let node = *self.node(at);
        self.removed.push(node.cap.object);
        self.epoch += 1;
        let mut last_child = None;
        let mut child = node.first_child;
        while let Some(c) = child {
            let n = self.node_mut(c);
            child = n.next_sibling;
            n.parent = node.parent;
            if node.parent.is_none() {
                // Roots are in no sibling list.
                n.prev_sibling = None;
                n.next_sibling = None;
            }
            last_child = Some(c);
        }
        if let Some(parent) = node.parent {
            // Replace `at` in its parent's child list by its own children.
            let after_prev = node.first_child.or(node.next_sibling);
            let before_next = last_child.or(node.prev_sibling);
            if let (Some(first), Some(last)) = (node.first_child, last_child) {
                self.node_mut(first).prev_sibling = node.prev_sibling;
                self.node_mut(last).next_sibling = node.next_sibling;
            }
            match node.prev_sibling {
                Some(prev) => self.node_mut(prev).next_sibling = after_prev,
                None => self.node_mut(parent).first_child = after_prev,
            }
            if let Some(next) = node.next_sibling {
                self.node_mut(next).prev_sibling = before_next;
            }
        }
        let table = self.table_mut(at.task);
        let slot = &mut table.slots[at.slot];
        slot.node = None;
        slot.generation = slot.generation.wrapping_add(1);
        table.used -= 1;
        table.lowest_free = table.lowest_free.min(at.slot);
        self.in_use -= 1;
    }
}

#[cfg(test)]
impl CapSpace {
    /// The (task, slot index) of the parent of the capability `token` names.
    fn parent_of(&self, task: TaskId, token: u64) -> Option<(TaskId, usize)> {
        let at = self.resolve(task, token).ok()?;
        self.node(at).parent.map(|p| (p.task, p.slot))
    }

    /// Panics unless every link and counter is consistent.
    fn assert_consistent(&self) {
        let mut total = 0;
        for (task, table) in self.tables.iter().enumerate() {
            let Some(table) = table else { continue };
            assert!(table.slots.len() <= self.slots_per_task);
            let used = table.slots.iter().filter(|s| s.node.is_some()).count();
            let lowest = table.slots.iter().position(|s| s.node.is_none());
            assert_eq!(table.lowest_free, lowest.unwrap_or(table.slots.len()));
            assert_eq!(used, table.used, "used count of task {task}");
            total += used;
            for (slot, entry) in table.slots.iter().enumerate() {
                let Some(node) = entry.node else { continue };
                let at = SlotRef { task, slot };
                match node.parent {
                    None => {
                        assert_eq!(node.prev_sibling, None, "root with siblings");
                        assert_eq!(node.next_sibling, None, "root with siblings");
                    }
                    Some(parent) => {
                        assert_eq!(self.node(parent).cap.object, node.cap.object);
                        // `at` is in its parent's child list.
                        let mut c = self.node(parent).first_child;
                        let mut found = false;
                        let mut steps = 0;
                        while let Some(x) = c {
                            found |= x == at;
                            c = self.node(x).next_sibling;
                            steps += 1;
                            assert!(steps <= self.in_use, "cycle in a child list");
                        }
                        assert!(found, "child missing from its parent's list");
                    }
                }
                if let Some(prev) = node.prev_sibling {
                    assert_eq!(self.node(prev).next_sibling, Some(at));
                }
                if let Some(next) = node.next_sibling {
                    assert_eq!(self.node(next).prev_sibling, Some(at));
                }
                if let Some(first) = node.first_child {
                    assert_eq!(self.node(first).prev_sibling, None);
                    assert_eq!(self.node(first).parent, Some(at));
                }
                // The parent chain ends.
                let mut up = node.parent;
                let mut steps = 0;
                while let Some(p) = up {
                    up = self.node(p).parent;
                    steps += 1;
                    assert!(steps <= self.in_use, "cycle in the parent chain");
                }
            }
        }
        assert_eq!(total, self.in_use);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::kind;
    use abi::rights::{ALL, GRANT, READ, REVOKE, WRITE};
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    const THREAD_A: ObjectRef = ObjectRef { kind: kind::THREAD, id: 1 };
    const TASK_B: ObjectRef = ObjectRef { kind: kind::TASK, id: 2 };

    fn space(tasks: usize, slots: usize) -> CapSpace {
        let mut s = CapSpace::new(slots);
        for t in 0..tasks {
            s.add_task(t).unwrap();
        }
        s
    }

    #[test]
    fn errors_convert_to_abi_errors() {
        assert_eq!(abi::Error::from(CapError::NotFound), abi::Error::NotFound);
        assert_eq!(abi::Error::from(CapError::PermissionDenied), abi::Error::PermissionDenied);
        assert_eq!(abi::Error::from(CapError::TableFull), abi::Error::OutOfMemory);
        assert_eq!(abi::Error::from(CapError::NoSuchTask), abi::Error::NotFound);
        assert_eq!(abi::Error::from(CapError::TaskExists), abi::Error::InvalidState);
    }

    #[test]
    fn the_epoch_moves_exactly_when_a_capability_or_table_goes() {
        let mut s = space(2, 8);
        let e0 = s.epoch();
        let a = s.insert_root(0, THREAD_A, ALL).unwrap();
        let b = s.copy(0, a).unwrap();
        s.grant_to(0, a, 1, READ).unwrap();
        s.mint(0, a, READ, 7).unwrap();
        s.check(0, a, kind::THREAD, READ).unwrap();
        assert_eq!(s.copy(0, a + 1000), Err(CapError::NotFound));
        assert_eq!(s.epoch(), e0);
        s.delete(0, b).unwrap();
        let e1 = s.epoch();
        assert!(e1 > e0);
        assert_eq!(s.delete(0, b), Err(CapError::NotFound));
        assert_eq!(s.epoch(), e1);
        assert_eq!(s.revoke(0, a), Ok(2));
        let e2 = s.epoch();
        assert!(e2 > e1);
        assert_eq!(s.revoke(0, a), Ok(0));
        assert_eq!(s.epoch(), e2);
        s.remove_task(1).unwrap();
        let e3 = s.epoch();
        assert!(e3 > e2);
        s.add_task(1).unwrap();
        assert!(s.epoch() > e3);
    }

    #[test]
    fn tasks_come_and_go() {
        let mut s = CapSpace::new(4);
        assert!(!s.has_task(5));
        s.add_task(5).unwrap();
        assert!(s.has_task(5) && !s.has_task(0));
        assert_eq!(s.add_task(5), Err(CapError::TaskExists));
        assert_eq!(s.slots_in_use_of(0), Err(CapError::NoSuchTask));
        assert_eq!(s.insert_root(0, THREAD_A, ALL), Err(CapError::NoSuchTask));
        assert_eq!(s.remove_task(0), Err(CapError::NoSuchTask));
        assert_eq!(s.remove_task(99), Err(CapError::NoSuchTask));
        let t = s.insert_root(5, THREAD_A, ALL).unwrap();
        assert_eq!(s.remove_task(5), Ok(1));
        assert_eq!(s.lookup(5, t), Err(CapError::NoSuchTask));
        assert_eq!(s.slots_in_use(), 0);
        s.add_task(5).unwrap();
        assert_eq!(s.slots_in_use_of(5), Ok(0));
    }

    #[test]
    fn insert_root_and_lookup() {
        let mut s = space(1, 4);
        let t = s.insert_root(0, THREAD_A, READ | GRANT).unwrap();
        assert_eq!(t, token::make(0, 0, kind::THREAD));
        let cap = Capability { object: THREAD_A, rights: READ | GRANT, badge: 0 };
        assert_eq!(s.lookup(0, t), Ok(&cap));
        let u = s.insert_root(0, TASK_B, READ).unwrap();
        assert_eq!(u, token::make(1, 0, kind::TASK));
        assert_eq!(s.slots_in_use(), 2);
        assert_eq!(s.slots_in_use_of(0), Ok(2));
        s.assert_consistent();
    }

    #[test]
    fn malformed_tokens_are_not_found() {
        let mut s = space(1, 4);
        let t = s.insert_root(0, THREAD_A, ALL).unwrap();
        for flag in 0..4 {
            let bad = t | (1 << (token::FLAGS_SHIFT + flag));
            assert_eq!(s.lookup(0, bad), Err(CapError::NotFound));
        }
        for k in 0..16u8 {
            if k != kind::THREAD {
                let bad = token::make(0, 0, k);
                assert_eq!(s.lookup(0, bad), Err(CapError::NotFound));
            }
        }
        // Wrong generation, empty slot, out of the table, out of the limit.
        assert_eq!(s.lookup(0, token::make(0, 1, kind::THREAD)), Err(CapError::NotFound));
        assert_eq!(s.lookup(0, token::make(1, 0, kind::THREAD)), Err(CapError::NotFound));
        assert_eq!(s.lookup(0, token::make(3, 0, kind::THREAD)), Err(CapError::NotFound));
        assert_eq!(s.lookup(0, token::make(4, 0, kind::THREAD)), Err(CapError::NotFound));
        assert_eq!(s.lookup(0, token::INDEX_MASK), Err(CapError::NotFound));
        assert_eq!(s.lookup(0, u64::MAX), Err(CapError::NotFound));
        // Every operation decodes the same way.
        let bad = t | (1 << 63);
        assert_eq!(s.copy(0, bad), Err(CapError::NotFound));
        assert_eq!(s.mint(0, bad, ALL, 1), Err(CapError::NotFound));
        assert_eq!(s.grant_to(0, bad, 0, ALL), Err(CapError::NotFound));
        assert_eq!(s.delete(0, bad), Err(CapError::NotFound));
        assert_eq!(s.revoke(0, bad), Err(CapError::NotFound));
        assert_eq!(s.check(0, bad, kind::THREAD, 0), Err(CapError::NotFound));
        assert_eq!(s.slots_in_use(), 1);
        assert!(s.lookup(0, t).is_ok());
    }

    #[test]
    fn check_kind_and_rights() {
        let mut s = space(1, 4);
        let t = s.insert_root(0, THREAD_A, READ | WRITE).unwrap();
        let cap = s.check(0, t, kind::THREAD, READ | WRITE).unwrap();
        assert_eq!(cap.object, THREAD_A);
        assert!(s.check(0, t, kind::THREAD, 0).is_ok());
        assert_eq!(s.check(0, t, kind::TASK, READ), Err(CapError::PermissionDenied));
        assert_eq!(s.check(0, t, kind::THREAD, READ | GRANT), Err(CapError::PermissionDenied));
        assert_eq!(s.check(1, t, kind::THREAD, 0), Err(CapError::NoSuchTask));
    }

    #[test]
    fn copy_keeps_rights_and_badge_and_needs_grant() {
        let mut s = space(1, 8);
        let root = s.insert_root(0, THREAD_A, ALL).unwrap();
        let badged = s.mint(0, root, READ | GRANT, 77).unwrap();
        let c = s.copy(0, badged).unwrap();
        assert_eq!(s.lookup(0, c), s.lookup(0, badged));
        assert_eq!(s.lookup(0, c).unwrap().badge, 77);
        assert_eq!(s.parent_of(0, c), Some((0, 1)));
        let no_grant = s.mint(0, root, READ, 0).unwrap();
        assert_eq!(s.copy(0, no_grant), Err(CapError::PermissionDenied));
        assert_eq!(s.slots_in_use(), 4);
        s.assert_consistent();
    }

    #[test]
    fn mint_intersects_rights_and_sets_badge() {
        let mut s = space(1, 8);
        let root = s.insert_root(0, THREAD_A, READ | GRANT).unwrap();
        let m = s.mint(0, root, READ | WRITE | REVOKE, 5).unwrap();
        assert_eq!(s.lookup(0, m), Ok(&Capability { object: THREAD_A, rights: READ, badge: 5 }));
        assert_eq!(s.parent_of(0, m), Some((0, 0)));
        assert_eq!(s.mint(0, m, READ, 6), Err(CapError::PermissionDenied));
        // The mint token carries the object's kind.
        assert_eq!(token::kind(m), kind::THREAD);
        s.assert_consistent();
    }

    #[test]
    fn grant_to_another_task() {
        let mut s = space(2, 2);
        let root = s.insert_root(0, TASK_B, ALL).unwrap();
        let badged = s.mint(0, root, ALL, 9).unwrap();
        let g = s.grant_to(0, badged, 1, READ | GRANT).unwrap();
        assert_eq!(s.lookup(1, g), Ok(&Capability { object: TASK_B, rights: READ | GRANT, badge: 9 }));
        assert_eq!(s.parent_of(1, g), Some((0, 1)));
        assert_eq!(s.slots_in_use_of(1), Ok(1));
        assert_eq!(s.grant_to(0, root, 2, ALL), Err(CapError::NoSuchTask));
        // Tokens are local to their table: `root` in task 1 names `g`.
        assert_eq!(s.lookup(1, root), s.lookup(1, g));
        assert_eq!(s.grant_to(1, badged, 0, ALL), Err(CapError::NotFound));
        let weak = s.grant_to(1, g, 1, READ).unwrap();
        assert_eq!(s.grant_to(1, weak, 0, READ), Err(CapError::PermissionDenied));
        // Task 0 is full.
        assert_eq!(s.grant_to(1, g, 0, ALL), Err(CapError::TableFull));
        assert_eq!(s.slots_in_use(), 4);
        s.assert_consistent();
    }

    #[test]
    fn full_table_changes_nothing() {
        let mut s = space(1, 2);
        let a = s.insert_root(0, THREAD_A, ALL).unwrap();
        let b = s.copy(0, a).unwrap();
        assert_eq!(s.insert_root(0, TASK_B, ALL), Err(CapError::TableFull));
        assert_eq!(s.copy(0, a), Err(CapError::TableFull));
        assert_eq!(s.mint(0, b, READ, 1), Err(CapError::TableFull));
        assert_eq!(s.grant_to(0, a, 0, READ), Err(CapError::TableFull));
        assert_eq!(s.slots_in_use(), 2);
        assert_eq!(s.revoke(0, a), Ok(1));
        assert_eq!(s.lookup(0, b), Err(CapError::NotFound));
        s.assert_consistent();
    }

    #[test]
    fn slots_are_reused_lowest_first_with_new_generations() {
        let mut s = space(1, 4);
        let a = s.insert_root(0, THREAD_A, ALL).unwrap();
        let b = s.insert_root(0, THREAD_A, ALL).unwrap();
        let c = s.insert_root(0, THREAD_A, ALL).unwrap();
        s.delete(0, c).unwrap();
        s.delete(0, a).unwrap();
        assert_eq!(s.lookup(0, a), Err(CapError::NotFound));
        assert_eq!(s.delete(0, a), Err(CapError::NotFound));
        let a2 = s.insert_root(0, THREAD_A, ALL).unwrap();
        assert_eq!(a2, token::make(0, 1, kind::THREAD));
        let c2 = s.insert_root(0, TASK_B, ALL).unwrap();
        assert_eq!(c2, token::make(2, 1, kind::TASK));
        assert_eq!(s.lookup(0, c), Err(CapError::NotFound));
        assert!(s.lookup(0, b).is_ok());
        s.assert_consistent();
    }

    #[test]
    fn delete_reparents_children() {
        let mut s = space(2, 8);
        let root = s.insert_root(0, THREAD_A, ALL).unwrap();
        let left = s.copy(0, root).unwrap();
        let mid = s.copy(0, root).unwrap();
        let right = s.copy(0, root).unwrap();
        let k1 = s.copy(0, mid).unwrap();
        let k2 = s.grant_to(0, mid, 1, ALL).unwrap();
        s.delete(0, mid).unwrap();
        assert_eq!(s.lookup(0, mid), Err(CapError::NotFound));
        assert_eq!(s.parent_of(0, k1), Some((0, 0)));
        assert_eq!(s.parent_of(1, k2), Some((0, 0)));
        s.assert_consistent();
        assert_eq!(s.revoke(0, root), Ok(4));
        for (t, tok) in [(0, left), (0, right), (0, k1), (1, k2)] {
            assert_eq!(s.lookup(t, tok), Err(CapError::NotFound));
        }
        assert_eq!(s.slots_in_use(), 1);
        s.assert_consistent();
    }

    #[test]
    fn deleting_a_root_makes_its_children_roots() {
        let mut s = space(1, 8);
        let root = s.insert_root(0, THREAD_A, ALL).unwrap();
        let a = s.copy(0, root).unwrap();
        let b = s.copy(0, root).unwrap();
        let a1 = s.copy(0, a).unwrap();
        s.delete(0, root).unwrap();
        assert_eq!(s.parent_of(0, a), None);
        assert_eq!(s.parent_of(0, b), None);
        assert_eq!(s.parent_of(0, a1), Some((0, 1)));
        s.assert_consistent();
        assert_eq!(s.revoke(0, a), Ok(1));
        assert!(s.lookup(0, b).is_ok());
    }

    #[test]
    fn revoke_removes_descendants_in_every_task() {
        let mut s = space(3, 8);
        let root = s.insert_root(0, THREAD_A, ALL).unwrap();
        let other = s.insert_root(0, TASK_B, ALL).unwrap();
        let in1 = s.grant_to(0, root, 1, ALL).unwrap();
        let in2 = s.grant_to(1, in1, 2, ALL).unwrap();
        let back = s.grant_to(2, in2, 0, ALL).unwrap();
        let deep = s.mint(0, back, GRANT, 3).unwrap();
        let sib = s.copy(0, root).unwrap();
        let other_child = s.copy(0, other).unwrap();
        assert_eq!(s.revoke(0, deep), Err(CapError::PermissionDenied));
        assert_eq!(s.revoke(1, in1), Ok(3));
        assert!(s.lookup(1, in1).is_ok());
        assert_eq!(s.lookup(2, in2), Err(CapError::NotFound));
        assert_eq!(s.lookup(0, back), Err(CapError::NotFound));
        assert_eq!(s.lookup(0, deep), Err(CapError::NotFound));
        assert_eq!(s.revoke(0, root), Ok(2));
        assert_eq!(s.revoke(0, root), Ok(0));
        assert!(s.lookup(0, root).is_ok());
        assert_eq!(s.lookup(0, sib), Err(CapError::NotFound));
        assert!(s.lookup(0, other_child).is_ok());
        assert_eq!(s.slots_in_use(), 3);
        s.assert_consistent();
        // Freed slots come back with new generations.
        let fresh = s.copy(0, root).unwrap();
        assert_ne!(fresh, back);
        assert_eq!(s.lookup(0, back), Err(CapError::NotFound));
    }

    #[test]
    fn revoke_needs_the_revoke_right() {
        let mut s = space(1, 4);
        let root = s.insert_root(0, THREAD_A, GRANT).unwrap();
        let child = s.copy(0, root).unwrap();
        assert_eq!(s.revoke(0, root), Err(CapError::PermissionDenied));
        assert!(s.lookup(0, child).is_ok());
        // Delete needs no right at all.
        let bare = s.mint(0, root, 0, 0).unwrap();
        assert_eq!(s.delete(0, bare), Ok(()));
    }

    #[test]
    fn revoke_of_a_long_chain_does_not_recurse() {
        let n = 100_000;
        let mut s = space(1, n + 1);
        let root = s.insert_root(0, THREAD_A, ALL).unwrap();
        let mut last = root;
        for _ in 0..n {
            last = s.copy(0, last).unwrap();
        }
        assert_eq!(s.revoke(0, root), Ok(n));
        assert_eq!(s.slots_in_use(), 1);
        assert_eq!(s.lookup(0, last), Err(CapError::NotFound));
    }

    #[test]
    fn revoke_of_a_wide_tree() {
        let mut s = space(2, 1001);
        let root = s.insert_root(0, THREAD_A, ALL).unwrap();
        for i in 0..1000 {
            let t = s.grant_to(0, root, i % 2, ALL).unwrap();
            if i % 3 == 0 {
                s.copy(i % 2, t).ok();
            }
        }
        s.assert_consistent();
        let live = s.slots_in_use();
        assert_eq!(s.revoke(0, root), Ok(live - 1));
        assert_eq!(s.slots_in_use(), 1);
        s.assert_consistent();
    }

    #[test]
    fn generation_keeps_a_stale_token_dead_for_255_reuses() {
        let mut s = space(1, 1);
        let first = s.insert_root(0, THREAD_A, ALL).unwrap();
        let mut current = first;
        for reuse in 1..=255u32 {
            s.delete(0, current).unwrap();
            current = s.insert_root(0, THREAD_A, ALL).unwrap();
            assert_eq!(token::generation(current), reuse as u8);
            assert_eq!(s.lookup(0, first), Err(CapError::NotFound), "reuse {reuse}");
        }
        // The 256th free wraps the generation: 8 bits promise no more, and
        // the very first token now names the new capability.
        s.delete(0, current).unwrap();
        assert_eq!(s.lookup(0, first), Err(CapError::NotFound));
        let again = s.insert_root(0, THREAD_A, ALL).unwrap();
        assert_eq!(again, first);
        // A different kind in the slot still keeps the token dead.
        s.delete(0, again).unwrap();
        for _ in 0..255 {
            let t = s.insert_root(0, TASK_B, ALL).unwrap();
            s.delete(0, t).unwrap();
        }
        let other_kind = s.insert_root(0, TASK_B, ALL).unwrap();
        assert_eq!(token::generation(other_kind), token::generation(first));
        assert_eq!(s.lookup(0, first), Err(CapError::NotFound));
    }

    #[test]
    fn remove_task_reparents_into_other_tasks() {
        let mut s = space(3, 8);
        let root = s.insert_root(0, THREAD_A, ALL).unwrap();
        let mid = s.grant_to(0, root, 1, ALL).unwrap();
        let leaf = s.grant_to(1, mid, 2, ALL).unwrap();
        let own = s.copy(1, mid).unwrap();
        assert_eq!(s.remove_task(1), Ok(2));
        assert_eq!(s.lookup(1, mid), Err(CapError::NoSuchTask));
        assert_eq!(s.lookup(1, own), Err(CapError::NoSuchTask));
        assert_eq!(s.parent_of(2, leaf), Some((0, 0)));
        assert_eq!(s.grant_to(0, root, 1, ALL), Err(CapError::NoSuchTask));
        s.assert_consistent();
        assert_eq!(s.revoke(0, root), Ok(1));
        assert_eq!(s.slots_in_use(), 1);
    }

    #[test]
    fn objects_are_counted_and_removed() {
        let mut s = space(2, 8);
        let a = s.insert_root(0, THREAD_A, ALL).unwrap();
        let b = s.insert_root(1, TASK_B, ALL).unwrap();
        let a1 = s.grant_to(0, a, 1, ALL).unwrap();
        let b1 = s.grant_to(1, b, 0, ALL).unwrap();
        let _a2 = s.copy(1, a1).unwrap();
        let same_id_other_kind = ObjectRef { kind: kind::ENDPOINT, id: THREAD_A.id };
        s.insert_root(0, same_id_other_kind, ALL).unwrap();
        assert_eq!(s.objects_referenced(THREAD_A), 3);
        assert_eq!(s.objects_referenced(TASK_B), 2);
        assert_eq!(s.remove_object(THREAD_A), 3);
        assert_eq!(s.objects_referenced(THREAD_A), 0);
        assert_eq!(s.objects_referenced(same_id_other_kind), 1);
        assert_eq!(s.lookup(0, a), Err(CapError::NotFound));
        assert!(s.lookup(0, b1).is_ok());
        assert_eq!(s.slots_in_use(), 3);
        assert_eq!(s.remove_object(THREAD_A), 0);
        s.assert_consistent();
    }

    // ----- the reference model -----

    const TASKS: usize = 4;
    const SLOTS: usize = 4;
    const OBJECTS: [ObjectRef; 3] = [THREAD_A, TASK_B, ObjectRef { kind: kind::ENDPOINT, id: 3 }];

    #[derive(Clone, Debug)]
    enum Op {
        InsertRoot(usize, usize, u64),
        Copy(prop::sample::Index),
        Mint(prop::sample::Index, u64, u64),
        GrantTo(prop::sample::Index, usize, u64),
        Delete(prop::sample::Index),
        Revoke(prop::sample::Index),
        RemoveTask(usize),
        AddTask(usize),
        RemoveObject(usize),
    }

    fn rights_strategy() -> impl Strategy<Value = u64> {
        prop_oneof![Just(ALL), 0..=ALL]
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        let held = any::<prop::sample::Index>;
        prop_oneof![
            4 => (0..TASKS, 0..OBJECTS.len(), rights_strategy())
                .prop_map(|(t, o, r)| Op::InsertRoot(t, o, r)),
            3 => held().prop_map(Op::Copy),
            3 => (held(), rights_strategy(), 0..4u64).prop_map(|(h, r, b)| Op::Mint(h, r, b)),
            4 => (held(), 0..TASKS, rights_strategy()).prop_map(|(h, t, r)| Op::GrantTo(h, t, r)),
            2 => held().prop_map(Op::Delete),
            2 => held().prop_map(Op::Revoke),
            1 => (0..TASKS).prop_map(Op::RemoveTask),
            2 => (0..TASKS).prop_map(Op::AddTask),
            1 => (0..OBJECTS.len()).prop_map(Op::RemoveObject),
        ]
    }

    /// A capability of the model, known by a unique id.
    #[derive(Clone, Debug)]
    struct MCap {
        id: usize,
        task: usize,
        cap: Capability,
        parent: Option<usize>,
    }

    /// The obvious, slow capability space the real one must agree with.
    #[derive(Debug)]
    struct Model {
        present: [bool; TASKS],
        caps: Vec<MCap>,
        next_id: usize,
    }

    impl Model {
        fn position(&self, task: usize, id: usize) -> Result<usize, CapError> {
            if !self.present[task] {
                return Err(CapError::NoSuchTask);
            }
            self.caps.iter().position(|c| c.id == id).ok_or(CapError::NotFound)
        }

        fn source(&self, task: usize, id: usize) -> Result<usize, CapError> {
            let i = self.position(task, id)?;
            if self.caps[i].cap.rights & GRANT == 0 {
                return Err(CapError::PermissionDenied);
            }
            Ok(i)
        }

        fn insert(&mut self, task: usize, cap: Capability, parent: Option<usize>) -> Result<usize, CapError> {
            if !self.present[task] {
                return Err(CapError::NoSuchTask);
            }
            if self.caps.iter().filter(|c| c.task == task).count() == SLOTS {
                return Err(CapError::TableFull);
            }
            let id = self.next_id;
            self.next_id += 1;
            self.caps.push(MCap { id, task, cap, parent });
            Ok(id)
        }

        fn delete_at(&mut self, i: usize) {
            let gone = self.caps.remove(i);
            for c in &mut self.caps {
                if c.parent == Some(gone.id) {
                    c.parent = gone.parent;
                }
            }
        }

        fn delete_where(&mut self, f: impl Fn(&MCap) -> bool) -> usize {
            let mut n = 0;
            while let Some(i) = self.caps.iter().position(&f) {
                self.delete_at(i);
                n += 1;
            }
            n
        }

        fn revoke(&mut self, task: usize, id: usize) -> Result<usize, CapError> {
            let i = self.position(task, id)?;
            if self.caps[i].cap.rights & REVOKE == 0 {
                return Err(CapError::PermissionDenied);
            }
            let mut tree = vec![id];
            loop {
                let more: Vec<usize> = self
                    .caps
                    .iter()
                    .filter(|c| !tree.contains(&c.id))
                    .filter(|c| c.parent.is_some_and(|p| tree.contains(&p)))
                    .map(|c| c.id)
                    .collect();
                if more.is_empty() {
                    break;
                }
                tree.extend(more);
            }
            let before = self.caps.len();
            self.caps.retain(|c| c.id == id || !tree.contains(&c.id));
            Ok(before - self.caps.len())
        }
    }

    /// A token the test holds, and the model capability it was issued for.
    #[derive(Clone, Copy, Debug)]
    struct Held {
        task: usize,
        token: u64,
        id: usize,
    }

    fn same<T: core::fmt::Debug, U: core::fmt::Debug>(
        real: &Result<T, CapError>,
        model: &Result<U, CapError>,
        op: &Op,
    ) -> Result<(), TestCaseError> {
        match (real, model) {
            (Ok(_), Ok(_)) => Ok(()),
            (Err(a), Err(b)) if a == b => Ok(()),
            _ => Err(TestCaseError::fail(std::format!("{op:?}: real {real:?}, model {model:?}"))),
        }
    }

    fn issued(
        real: Result<u64, CapError>,
        model: Result<usize, CapError>,
        task: usize,
        held: &mut Vec<Held>,
        op: &Op,
    ) -> Result<(), TestCaseError> {
        same(&real, &model, op)?;
        if let (Ok(token), Ok(id)) = (real, model) {
            held.push(Held { task, token, id });
        }
        Ok(())
    }

    fn compare(s: &CapSpace, m: &Model, held: &[Held]) -> Result<(), TestCaseError> {
        s.assert_consistent();
        prop_assert_eq!(s.slots_in_use(), m.caps.len());
        for t in 0..TASKS {
            let expected = if m.present[t] {
                Ok(m.caps.iter().filter(|c| c.task == t).count())
            } else {
                Err(CapError::NoSuchTask)
            };
            prop_assert_eq!(s.slots_in_use_of(t), expected);
        }
        for o in OBJECTS {
            let n = m.caps.iter().filter(|c| c.cap.object == o).count();
            prop_assert_eq!(s.objects_referenced(o), n);
        }
        for h in held {
            let expected = m.position(h.task, h.id).map(|i| m.caps[i].cap);
            prop_assert_eq!(s.lookup(h.task, h.token).copied(), expected);
            if let Ok(i) = m.position(h.task, h.id) {
                let parent = m.caps[i].parent.map(|p| {
                    let ph = held.iter().find(|x| x.id == p).expect("parent token held");
                    (ph.task, token::index(ph.token) as usize)
                });
                prop_assert_eq!(s.parent_of(h.task, h.token), parent);
            }
        }
        Ok(())
    }

    fn run(ops: &[Op]) -> Result<(), TestCaseError> {
        let mut s = space(TASKS - 1, SLOTS);
        let mut m = Model { present: [true, true, true, false], caps: Vec::new(), next_id: 0 };
        let mut held: Vec<Held> = Vec::new();
        for op in ops {
            let pick = |i: &prop::sample::Index| (!held.is_empty()).then(|| held[i.index(held.len())]);
            match op {
                Op::InsertRoot(t, o, r) => {
                    let cap = Capability { object: OBJECTS[*o], rights: *r, badge: 0 };
                    let real = s.insert_root(*t, cap.object, *r);
                    let model = m.insert(*t, cap, None);
                    issued(real, model, *t, &mut held, op)?;
                }
                Op::Copy(i) => {
                    let Some(h) = pick(i) else { continue };
                    let real = s.copy(h.task, h.token);
                    let model = m.source(h.task, h.id).and_then(|i| m.insert(h.task, m.caps[i].cap, Some(h.id)));
                    issued(real, model, h.task, &mut held, op)?;
                }
                Op::Mint(i, r, b) => {
                    let Some(h) = pick(i) else { continue };
                    let real = s.mint(h.task, h.token, *r, *b);
                    let model = m.source(h.task, h.id).and_then(|i| {
                        let src = m.caps[i].cap;
                        let cap = Capability { rights: src.rights & r, badge: *b, ..src };
                        m.insert(h.task, cap, Some(h.id))
                    });
                    issued(real, model, h.task, &mut held, op)?;
                }
                Op::GrantTo(i, to, r) => {
                    let Some(h) = pick(i) else { continue };
                    let real = s.grant_to(h.task, h.token, *to, *r);
                    let model = m.source(h.task, h.id).and_then(|i| {
                        let src = m.caps[i].cap;
                        let cap = Capability { rights: src.rights & r, ..src };
                        m.insert(*to, cap, Some(h.id))
                    });
                    issued(real, model, *to, &mut held, op)?;
                }
                Op::Delete(i) => {
                    let Some(h) = pick(i) else { continue };
                    let real = s.delete(h.task, h.token);
                    let model = m.position(h.task, h.id).map(|i| m.delete_at(i));
                    same(&real, &model, op)?;
                }
                Op::Revoke(i) => {
                    let Some(h) = pick(i) else { continue };
                    let real = s.revoke(h.task, h.token);
                    let model = m.revoke(h.task, h.id);
                    same(&real, &model, op)?;
                    prop_assert_eq!(real.ok(), model.ok());
                }
                Op::RemoveTask(t) => {
                    let real = s.remove_task(*t);
                    let model = if m.present[*t] {
                        let n = m.delete_where(|c| c.task == *t);
                        m.present[*t] = false;
                        Ok(n)
                    } else {
                        Err(CapError::NoSuchTask)
                    };
                    same(&real, &model, op)?;
                    prop_assert_eq!(real.ok(), model.ok());
                }
                Op::AddTask(t) => {
                    let real = s.add_task(*t);
                    let model = if m.present[*t] {
                        Err(CapError::TaskExists)
                    } else {
                        m.present[*t] = true;
                        // Tokens of the task's earlier life mean nothing now.
                        held.retain(|h| h.task != *t);
                        Ok(())
                    };
                    same(&real, &model, op)?;
                }
                Op::RemoveObject(o) => {
                    let real = s.remove_object(OBJECTS[*o]);
                    let model = m.delete_where(|c| c.cap.object == OBJECTS[*o]);
                    prop_assert_eq!(real, model);
                }
            }
            compare(&s, &m, &held)?;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn agrees_with_the_reference_model(ops in prop::collection::vec(op_strategy(), 0..60)) {
            run(&ops)?;
        }
    }
}
