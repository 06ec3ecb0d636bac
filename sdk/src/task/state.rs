//! Task state: per-key and per-task, typed, with the writes of each step tracked for commit.

use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::data::{Data, Envelope, Key, KeyBuild, SubjectId};
use crate::error::TaskError;
use crate::storage::{StateName, StateValue, StateWrite, ValueOwner};
use crate::task::ctx::Ctx;

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

type Init<V> = Arc<dyn Fn() -> V + Send + Sync>;

/// State scoped to the key of the event being processed: each key sees its own value. Create
/// the handle once, move it into the task's closures (clone it for each), and read and write
/// through the task's [`Ctx`]. Keys without a value read the initial value.
///
/// ```
/// use pods_sdk::{AppBuilder, PerKeyState};
/// let mut app = AppBuilder::new("counts");
/// let words = app.generator_from_atoms("words", vec![vec!["a".to_string(), "b".into(), "a".into()]]);
/// let count = PerKeyState::<u64>::new("count");
/// app.workflow("wf").source(&words).key_by(|w| w.clone()).processor(move |ctx, w: String| {
///     let n = count.get(ctx) + 1;
///     count.set(ctx, n);
///     ctx.emit((w, n));
/// }).sink();
/// assert!(app.build().is_ok());
/// ```
pub struct PerKeyState<V> {
    handle: Handle<V>,
}

/// State of the whole task (of its partition, once partitioned), whatever the event's key.
pub struct PerTaskState<V> {
    handle: Handle<V>,
}

struct Handle<V> {
    id: u64,
    name: Arc<str>,
    init: Init<V>,
    _v: PhantomData<fn() -> V>,
}

impl<V> Clone for Handle<V> {
    fn clone(&self) -> Self {
        Handle {
            id: self.id,
            name: self.name.clone(),
            init: self.init.clone(),
            _v: PhantomData,
        }
    }
}

impl<V: Data> Handle<V> {
    fn new(name: &str, init: Init<V>) -> Handle<V> {
        Handle {
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            name: Arc::from(name),
            init,
            _v: PhantomData,
        }
    }

    /// The slot for this handle in the running task, or `None` after recording a failure. A
    /// write of a per-key value records whose data it is (the current event's subject).
    #[inline]
    fn with<O, R>(
        &self,
        ctx: &mut Ctx<'_, O>,
        keyed: bool,
        access: Access,
        f: impl FnOnce(&mut Table<V>, u64) -> R,
    ) -> Option<R> {
        let key = if keyed {
            match ctx.key {
                Some(Key(k)) => k,
                None => {
                    ctx.fx.fail(TaskError::new(format!(
                        "per-key state '{}' used in on_atom_complete, where there is no current key",
                        self.name
                    )));
                    return None;
                }
            }
        } else {
            0
        };
        match ctx
            .states
            .table::<V>(self.id, &self.name, keyed, &self.init)
        {
            Ok(table) => {
                let out = f(table, key);
                // Only writes by personal events, and removals from tables holding personal
                // values, change owners.
                if keyed
                    && !matches!(access, Access::Read)
                    && (ctx.envelope.is_some() || !table.owners.is_empty())
                {
                    table.track_owner(key, access, ctx.envelope.as_ref());
                }
                Some(out)
            }
            Err(e) => {
                ctx.fx.fail(e);
                None
            }
        }
    }

    fn get<O>(&self, ctx: &mut Ctx<'_, O>, keyed: bool) -> V {
        self.with(ctx, keyed, Access::Read, |t, k| t.get(k))
            .unwrap_or_else(|| (self.init)())
    }
}

/// What a state access does, for tracking whose data a per-key value is.
#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
    Remove,
}

macro_rules! state_api {
    ($ty:ident, $keyed:expr, $scope:literal) => {
        impl<V: Data> $ty<V> {
            #[doc = concat!("A ", $scope, " state named `name` (unique within its task), starting at `V::default()`.")]
            pub fn new(name: &str) -> Self
            where
                V: Default,
            {
                $ty { handle: Handle::new(name, Arc::new(V::default)) }
            }

            #[doc = concat!("A ", $scope, " state named `name` (unique within its task), starting at `initial`.")]
            pub fn with_initial(name: &str, initial: V) -> Self {
                $ty { handle: Handle::new(name, Arc::new(move || initial.clone())) }
            }

            /// The current value (the initial value if none was set).
            pub fn get<O>(&self, ctx: &mut Ctx<'_, O>) -> V {
                self.handle.get(ctx, $keyed)
            }

            /// Replaces the value.
            pub fn set<O>(&self, ctx: &mut Ctx<'_, O>, value: V) {
                self.handle.with(ctx, $keyed, Access::Write, |t, k| t.set(k, value));
            }

            /// Changes the value in place and returns what `f` returns.
            pub fn update<O, R>(&self, ctx: &mut Ctx<'_, O>, f: impl FnOnce(&mut V) -> R) -> Option<R> {
                self.handle.with(ctx, $keyed, Access::Write, |t, k| t.update(k, f))
            }

            /// Removes the value; reads see the initial value again.
            pub fn remove<O>(&self, ctx: &mut Ctx<'_, O>) {
                self.handle.with(ctx, $keyed, Access::Remove, |t, k| t.remove(k));
            }

            /// The state's name.
            pub fn name(&self) -> &str {
                &self.handle.name
            }
        }

        impl<V> Clone for $ty<V> {
            fn clone(&self) -> Self {
                $ty { handle: self.handle.clone() }
            }
        }
    };
}

state_api!(PerKeyState, true, "per-key");
state_api!(PerTaskState, false, "per-task");

/// One entry, kept small (a `u64` value makes a 16-byte slot) because per-key state lookups
/// are the hot path: the value (meaningful only while present) and, packed in one word,
/// whether it is present (bit 63; cleared by a removal until the commit drops the slot) and the
/// table's epoch when it was last written (bits 0–62; equal to the current epoch means written
/// in this step).
struct Slot<V> {
    value: V,
    meta: u64,
}

const PRESENT: u64 = 1 << 63;
const EPOCH: u64 = PRESENT - 1;

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
    name: StateName,
    keyed: bool,
    init: Init<V>,
    map: HashMap<u64, Slot<V>, KeyBuild>,
    /// Keys written in this step, in first-write order.
    dirty: Vec<u64>,
    /// Advances at each commit, so that marking every slot clean costs nothing.
    epoch: u64,
    /// Whether this step removed a value (its slot is dropped at commit).
    removed: bool,
    /// Whether writes are tracked for the commit (the store keeps state values).
    track: bool,
    /// Whose personal data each per-key value is, for values personal events wrote.
    owners: HashMap<u64, Owner, KeyBuild>,
}

/// Whose data a per-key value is (see [`ValueOwner`]): the envelope of the first personal
/// event that wrote it, while every personal writer had its subject.
#[derive(Clone)]
enum Owner {
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
    fn track_owner(&mut self, key: u64, access: Access, envelope: Option<&Arc<Envelope>>) {
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

    #[inline]
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
    fn get(&self, key: u64) -> V {
        match self.map.get(&key).and_then(Slot::present) {
            Some(v) => v.clone(),
            None => (self.init)(),
        }
    }
    fn set(&mut self, key: u64, value: V) {
        let slot = self.touch(key);
        slot.value = value;
        slot.meta |= PRESENT;
    }
    fn update<R>(&mut self, key: u64, f: impl FnOnce(&mut V) -> R) -> R {
        let slot = touch(
            &mut self.map,
            &mut self.dirty,
            &self.init,
            self.epoch,
            self.track,
            key,
        );
        // A fresh slot already holds the initial value; a removed one gets it again.
        if slot.meta & PRESENT == 0 {
            slot.meta |= PRESENT;
        }
        f(&mut slot.value)
    }
    fn remove(&mut self, key: u64) {
        if self.track {
            let init = self.init.clone();
            let slot = self.touch(key);
            slot.value = init();
            slot.meta &= EPOCH;
            self.removed = true;
        } else {
            self.map.remove(&key);
        }
    }
}

/// The slot of `key`, marked as written in this step when writes are tracked.
#[inline]
fn touch<'a, V>(
    map: &'a mut HashMap<u64, Slot<V>, KeyBuild>,
    dirty: &mut Vec<u64>,
    init: &Init<V>,
    epoch: u64,
    track: bool,
    key: u64,
) -> &'a mut Slot<V> {
    // A new slot is absent, holds the initial value, and starts one epoch back, so it is seen
    // as not yet written in this step.
    let slot = map.entry(key).or_insert_with(|| Slot {
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
            if let Some(slot) = self.map.get(key) {
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
            if self.map.get(&key).is_some_and(|s| s.present().is_some()) {
                self.remove(key);
                removed += 1;
            }
        }
        removed
    }
    fn committed(&mut self) {
        if self.removed {
            for key in &self.dirty {
                if self.map.get(key).is_some_and(|s| s.present().is_none()) {
                    self.map.remove(key);
                }
            }
            self.removed = false;
        }
        self.dirty.clear();
        self.epoch = self.epoch.wrapping_add(1) & EPOCH;
    }
}

/// A value committed in an earlier run: its key (`None` for per-task state), CBOR encoding,
/// and whose data it is (see [`Recovery::owners`](crate::storage::Recovery::owners)).
type Stored = (Option<Key>, Vec<u8>, Option<Option<SubjectId>>);

/// All state tables of one task instance, created on first use.
pub(crate) struct StateTables {
    owner: (crate::path::Path, u32),
    /// The partition this task instance runs in.
    partition: u32,
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
            tables: Vec::new(),
            track: true,
            restored: HashMap::new(),
        }
    }

    /// Sets the partition this instance runs in (per-task state is named per partition).
    pub(crate) fn place(&mut self, partition: u32) {
        self.partition = partition;
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
    fn table<V: Data>(
        &mut self,
        id: u64,
        name: &Arc<str>,
        keyed: bool,
        init: &Init<V>,
    ) -> Result<&mut Table<V>, TaskError> {
        let index = match self.tables.iter().position(|t| t.id == id) {
            Some(index) => index,
            None => self.create::<V>(id, name, keyed, init)?,
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
        init: &Init<V>,
    ) -> Result<usize, TaskError> {
        if self.tables.iter().any(|t| *t.table.name().name == **name) {
            return Err(TaskError::new(format!(
                "two states named '{name}' in task {} of {}: give each state of a task its own name",
                self.owner.1, self.owner.0
            )));
        }
        // Per-key state is one state over all partitions (keys are disjoint); per-task state
        // is one value per partition, so partitions other than 0 name it apart.
        let partition = if keyed { 0 } else { self.partition };
        let mut table = Table::<V> {
            name: StateName::in_partition(
                self.owner.0.clone(),
                self.owner.1,
                name.clone(),
                partition,
            ),
            keyed,
            init: init.clone(),
            map: HashMap::default(),
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
