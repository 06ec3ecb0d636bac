//! All state tables of one task instance: created on first use, loaded with what an earlier
//! run committed, and purged of erased subjects' values.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

use super::Init;
use super::keymap::KeyMap;
use super::table::{AnyTable, EPOCH, Owner, PRESENT, Slot, Table};
use crate::data::{Data, Envelope, Key, SubjectId};
use crate::error::TaskError;
use crate::storage::{StateName, StateWrite};

/// A value committed in an earlier run: its key (`None` for per-task state), CBOR encoding,
/// and whose data it is (see [`Recovery::owners`](crate::storage::Recovery::owners)).
type Stored = (Option<Key>, Vec<u8>, Option<Option<SubjectId>>);

/// All state tables of one task instance, created on first use.
pub(crate) struct StateTables {
    owner: (crate::path::Path, u32),
    /// The partition this task instance runs in, and how many the workflow has.
    partition: u32,
    partitions: u32,
    tables: Vec<Entry>,
    /// Whether writes are tracked for the commit (the store keeps state values).
    track: bool,
    /// Values committed in an earlier run, by state id, loaded when their table is created.
    restored: HashMap<u64, Vec<Stored>>,
}

/// One table with its handle's id and its concrete type.
struct Entry {
    id: u64,
    ty: TypeId,
    table: Box<dyn AnyTable>,
}

impl StateTables {
    pub(crate) fn new(workflow: crate::path::Path, task: u32) -> StateTables {
        StateTables {
            owner: (workflow, task),
            partition: 0,
            partitions: 1,
            tables: Vec::new(),
            track: true,
            restored: HashMap::new(),
        }
    }

    /// Sets the partition this instance runs in, of `partitions` (per-task and per-subject
    /// state are named per partition).
    pub(crate) fn place(&mut self, partition: u32, partitions: u32) {
        self.partition = partition;
        self.partitions = partitions.max(1);
    }

    /// The key a per-subject value of `subject` is kept under in this partition: the hash of
    /// the subject's id, moved into the range of keys this partition owns, so that a restart
    /// restores it here as it restores per-key values.
    pub(crate) fn subject_key(&self, subject: &SubjectId) -> u64 {
        let h = Key::of(subject.0.as_str()).0;
        let (p, n) = (u128::from(self.partition), u128::from(self.partitions));
        // Keys k with k * n >> 64 == p: from ceil(p * 2^64 / n) up to ceil((p + 1) * 2^64 / n).
        let start = (p << 64).div_ceil(n);
        let end = ((p + 1) << 64).div_ceil(n);
        (start + u128::from(h) % (end - start).max(1)) as u64
    }

    /// Keeps the values of `recovery` this partition holds (of `partitions`), to load into
    /// each table when it is created.
    pub(crate) fn restore(&mut self, recovery: &crate::storage::Recovery, partitions: usize) {
        for ((state, key), value) in &recovery.values {
            let mine = match key {
                Some(k) => crate::batch::partition_of(*k, partitions) == self.partition as usize,
                None => true,
            };
            if mine {
                let owner = recovery.owners.get(&(*state, *key)).cloned();
                self.restored
                    .entry(*state)
                    .or_default()
                    .push((*key, value.clone(), owner));
            }
        }
    }

    /// The table of handle `id`, created on first use.
    #[inline]
    pub(super) fn table<V: Data>(
        &mut self,
        id: u64,
        name: &Arc<str>,
        keyed: bool,
        per_partition: bool,
        init: &Init<V>,
    ) -> Result<&mut Table<V>, TaskError> {
        let index = match self.tables.iter().position(|t| t.id == id) {
            Some(index) => index,
            None => self.create::<V>(id, name, keyed, per_partition, init)?,
        };
        let entry = &mut self.tables[index];
        if entry.ty != TypeId::of::<Table<V>>() {
            return Err(TaskError::new(format!(
                "state '{name}' used with two value types"
            )));
        }
        let table: *mut dyn AnyTable = &mut *entry.table;
        // SAFETY: `entry.ty` is the `TypeId` of the value boxed in `entry.table`: both are set
        // together in `create` and never changed. It equals `Table<V>`'s, so the box holds a
        // `Table<V>`, and the exclusive borrow of `self` makes this the only reference to it.
        // (This is `downcast_mut` without its virtual `type_id` call on every state access.)
        Ok(unsafe { &mut *(table as *mut Table<V>) })
    }

    #[cold]
    fn create<V: Data>(
        &mut self,
        id: u64,
        name: &Arc<str>,
        keyed: bool,
        per_partition: bool,
        init: &Init<V>,
    ) -> Result<usize, TaskError> {
        if self.tables.iter().any(|t| *t.table.name().name == **name) {
            return Err(TaskError::new(format!(
                "two states named '{name}' in task {} of {}: give each state of a task its own name",
                self.owner.1, self.owner.0
            )));
        }
        // Per-key state is one state over all partitions (keys are disjoint); per-task and
        // per-subject state are held per partition, so partitions other than 0 name them apart.
        let partition = if per_partition { self.partition } else { 0 };
        let mut table = Table::<V> {
            name: StateName::in_partition(
                self.owner.0.clone(),
                self.owner.1,
                name.clone(),
                partition,
            ),
            keyed,
            init: init.clone(),
            map: KeyMap::default(),
            dirty: Vec::new(),
            epoch: 0,
            removed: false,
            track: self.track,
            owners: HashMap::default(),
        };
        if let Some(values) = self.restored.remove(&table.name.id) {
            for (key, bytes, owner) in values {
                let value: V = ciborium::from_reader(bytes.as_slice()).map_err(|e| {
                    TaskError::new(format!(
                        "state '{name}' of task {} of {}: the stored value cannot be read as this state's type ({e})",
                        self.owner.1, self.owner.0
                    ))
                })?;
                let slot = key.map_or(0, |k| k.0);
                match owner {
                    Some(Some(subject)) if keyed => {
                        let envelope = Envelope {
                            subject,
                            categories: Vec::new(),
                            collected: None,
                        };
                        table.owners.insert(slot, Owner::One(Arc::new(envelope)));
                    }
                    Some(None) if keyed => {
                        table.owners.insert(slot, Owner::Shared);
                    }
                    _ => {}
                }
                // Present, and not written in this step.
                table.map.insert(
                    slot,
                    Slot {
                        value,
                        meta: PRESENT | (table.epoch.wrapping_sub(1) & EPOCH),
                    },
                );
            }
        }
        self.tables.push(Entry {
            id,
            ty: TypeId::of::<Table<V>>(),
            table: Box::new(table),
        });
        Ok(self.tables.len() - 1)
    }

    /// Sets, for this step, whether writes are tracked for the commit.
    pub(crate) fn track(&mut self, track: bool) {
        if self.track != track {
            self.track = track;
            for t in &mut self.tables {
                t.table.set_track(track);
            }
        }
    }

    pub(crate) fn writes<'a>(&'a self, out: &mut Vec<StateWrite<'a>>) {
        for t in &self.tables {
            t.table.writes(out);
        }
    }

    pub(crate) fn committed(&mut self) {
        for t in &mut self.tables {
            t.table.committed();
        }
    }

    /// Removes the per-key values of erased subjects ([`AnyTable::purge`]), and forgets those
    /// restored for tables not made yet (the store holds them sealed under the erased key,
    /// which no longer opens them). Returns how many values went.
    pub(crate) fn purge(&mut self, erased: &dyn Fn(&SubjectId) -> bool) -> usize {
        let mut removed = 0;
        for t in &mut self.tables {
            removed += t.table.purge(erased);
        }
        for values in self.restored.values_mut() {
            let before = values.len();
            values.retain(|(_, _, owner)| !matches!(owner, Some(Some(s)) if erased(s)));
            removed += before - values.len();
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subjects_key_falls_in_the_partition_that_holds_it() {
        let workflow = crate::path::Path::parse("/app/workflows/wf").unwrap();
        for n in 1..=5u32 {
            for p in 0..n {
                let mut tables = StateTables::new(workflow.clone(), 1);
                tables.place(p, n);
                for s in [
                    "ann",
                    "bob",
                    "cy",
                    "",
                    "a much longer subject id@example.org",
                ] {
                    let key = tables.subject_key(&SubjectId(s.to_owned()));
                    assert_eq!(
                        crate::batch::partition_of(Key(key), n as usize),
                        p as usize,
                        "{s} in partition {p} of {n}"
                    );
                }
            }
        }
        // One partition: the key is the subject id's hash itself.
        let mut one = StateTables::new(workflow, 1);
        one.place(0, 1);
        let ann = SubjectId("ann".to_owned());
        assert_eq!(one.subject_key(&ann), Key::of("ann").0);
    }
}
