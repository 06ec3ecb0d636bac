//! One state's values in one task instance: slots kept small for the hot path, the writes of
//! the step tracked for the commit, and whose data each per-key value is.

use std::collections::HashMap;
use std::sync::Arc;

use super::Init;
use super::keymap::KeyMap;
use crate::data::{Data, Envelope, Key, KeyBuild, SubjectId};
use crate::storage::{StateName, StateValue, StateWrite, ValueOwner};

/// What a state access does, for tracking whose data a per-key value is.
#[derive(Clone, Copy)]
pub(super) enum Access {
    Read,
    Write,
    Remove,
}

/// One entry, kept small (a `u64` value makes a 16-byte slot) because per-key state lookups
/// are the hot path: the value (meaningful only while present) and, packed in one word,
/// whether it is present (bit 63; cleared by a removal until the commit drops the slot) and the
/// table's epoch when it was last written (bits 0–62; equal to the current epoch means written
/// in this step).
pub(super) struct Slot<V> {
    pub(super) value: V,
    pub(super) meta: u64,
}

pub(super) const PRESENT: u64 = 1 << 63;
pub(super) const EPOCH: u64 = PRESENT - 1;

impl<V> Slot<V> {
    #[inline]
    fn present(&self) -> Option<&V> {
        (self.meta & PRESENT != 0).then_some(&self.value)
    }
    #[inline]
    fn epoch(&self) -> u64 {
        self.meta & EPOCH
    }
}

/// The values of one state of one task instance.
pub(crate) struct Table<V> {
    pub(super) name: StateName,
    pub(super) keyed: bool,
    pub(super) init: Init<V>,
    pub(super) map: KeyMap<Slot<V>>,
    /// Keys written in this step, in first-write order.
    pub(super) dirty: Vec<u64>,
    /// Advances at each commit, so that marking every slot clean costs nothing.
    pub(super) epoch: u64,
    /// Whether this step removed a value (its slot is dropped at commit).
    pub(super) removed: bool,
    /// Whether writes are tracked for the commit (the store keeps state values).
    pub(super) track: bool,
    /// Whose personal data each per-key value is, for values personal events wrote.
    pub(super) owners: HashMap<u64, Owner, KeyBuild>,
}

/// Whose data a per-key value is (see [`ValueOwner`]): the envelope of the first personal
/// event that wrote it, while every personal writer had its subject.
#[derive(Clone)]
pub(super) enum Owner {
    One(Arc<Envelope>),
    Shared,
}

impl Owner {
    fn as_value_owner(&self) -> ValueOwner<'_> {
        match self {
            Owner::One(e) => ValueOwner::Subject(&e.subject),
            Owner::Shared => ValueOwner::Shared,
        }
    }
}

impl<V: Data> Table<V> {
    /// Records what `access` to the value of `key`, by an event with `envelope`, means for
    /// whose data it is: a write makes it the event's subject's (or shared), a removal makes it
    /// no one's.
    #[inline(never)]
    pub(super) fn track_owner(
        &mut self,
        key: u64,
        access: Access,
        envelope: Option<&Arc<Envelope>>,
    ) {
        match (access, envelope) {
            (Access::Write, Some(envelope)) => self.own(key, envelope),
            (Access::Remove, _) => {
                self.owners.remove(&key);
            }
            _ => {}
        }
    }

    /// Records that an event with `envelope` wrote the value of `key`.
    fn own(&mut self, key: u64, envelope: &Arc<Envelope>) {
        match self.owners.get_mut(&key) {
            None => {
                self.owners.insert(key, Owner::One(envelope.clone()));
            }
            Some(owner) => {
                if let Owner::One(first) = owner
                    && !Arc::ptr_eq(first, envelope)
                    && first.subject != envelope.subject
                {
                    *owner = Owner::Shared;
                }
            }
        }
    }

    #[inline(always)]
    fn touch(&mut self, key: u64) -> &mut Slot<V> {
        touch(
            &mut self.map,
            &mut self.dirty,
            &self.init,
            self.epoch,
            self.track,
            key,
        )
    }
    pub(super) fn get(&self, key: u64) -> V {
        match self.map.get(key).and_then(Slot::present) {
            Some(v) => v.clone(),
            None => (self.init)(),
        }
    }
    pub(super) fn set(&mut self, key: u64, value: V) {
        let slot = self.touch(key);
        slot.value = value;
        slot.meta |= PRESENT;
    }
    // Inlined into the handler's loop over the events (the per-key update is most of a keyed
    // count's time): as a call, the pipeline ran 15 % slower.
    #[inline(always)]
    pub(super) fn update<R>(&mut self, key: u64, f: impl FnOnce(&mut V) -> R) -> R {
        let slot = self.touch(key);
        // A fresh slot already holds the initial value; a removed one gets it again.
        if slot.meta & PRESENT == 0 {
            slot.meta |= PRESENT;
        }
        f(&mut slot.value)
    }
    pub(super) fn remove(&mut self, key: u64) {
        if self.track {
            let init = self.init.clone();
            let slot = self.touch(key);
            slot.value = init();
            slot.meta &= EPOCH;
            self.removed = true;
        } else {
            self.map.remove(key);
        }
    }
}

/// The slot of `key`, marked as written in this step when writes are tracked.
#[inline(always)]
fn touch<'a, V>(
    map: &'a mut KeyMap<Slot<V>>,
    dirty: &mut Vec<u64>,
    init: &Init<V>,
    epoch: u64,
    track: bool,
    key: u64,
) -> &'a mut Slot<V> {
    // A new slot is absent, holds the initial value, and starts one epoch back, so it is seen
    // as not yet written in this step.
    let slot = map.get_or_insert_with(key, || Slot {
        value: init(),
        meta: epoch.wrapping_sub(1) & EPOCH,
    });
    if track && slot.epoch() != epoch {
        slot.meta = (slot.meta & PRESENT) | epoch;
        dirty.push(key);
    }
    slot
}

/// What the runtime needs of a table without knowing its value type.
pub(crate) trait AnyTable: Send {
    fn name(&self) -> &StateName;
    /// The writes of this step.
    fn writes<'a>(&'a self, out: &mut Vec<StateWrite<'a>>);
    /// Forgets this step's writes after they were committed.
    fn committed(&mut self);
    /// Sets whether writes are tracked for the commit.
    fn set_track(&mut self, track: bool);
    /// Removes the per-key values of the subjects `erased` says yes to (values only their
    /// events wrote); the removals are writes of the next commit. Returns how many.
    fn purge(&mut self, erased: &dyn Fn(&SubjectId) -> bool) -> usize;
}

impl<V: Data> AnyTable for Table<V> {
    fn name(&self) -> &StateName {
        &self.name
    }
    fn set_track(&mut self, track: bool) {
        self.track = track;
    }
    fn writes<'a>(&'a self, out: &mut Vec<StateWrite<'a>>) {
        for key in &self.dirty {
            if let Some(slot) = self.map.get(*key) {
                let value = slot.present().map(|v| v as &dyn StateValue);
                let owner = match value {
                    Some(_) if !self.owners.is_empty() => {
                        self.owners.get(key).map(Owner::as_value_owner)
                    }
                    _ => None,
                };
                out.push(StateWrite {
                    state: &self.name,
                    key: if self.keyed { Some(Key(*key)) } else { None },
                    value,
                    owner,
                });
            }
        }
    }
    fn purge(&mut self, erased: &dyn Fn(&SubjectId) -> bool) -> usize {
        let gone: Vec<u64> = self
            .owners
            .iter()
            .filter_map(|(key, owner)| match owner {
                Owner::One(e) if erased(&e.subject) => Some(*key),
                _ => None,
            })
            .collect();
        let mut removed = 0;
        for key in gone {
            self.owners.remove(&key);
            if self.map.get(key).is_some_and(|s| s.present().is_some()) {
                self.remove(key);
                removed += 1;
            }
        }
        removed
    }
    fn committed(&mut self) {
        if self.removed {
            for key in &self.dirty {
                if self.map.get(*key).is_some_and(|s| s.present().is_none()) {
                    self.map.remove(*key);
                }
            }
            self.removed = false;
        }
        self.dirty.clear();
        self.epoch = self.epoch.wrapping_add(1) & EPOCH;
    }
}
