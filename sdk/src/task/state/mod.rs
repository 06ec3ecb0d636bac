//! Task state: per-key, per-task and per-subject, typed, with the writes of each step tracked
//! for commit.

mod keymap;
mod table;
mod tables;

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::data::{Data, Key};
use crate::error::TaskError;
use crate::task::ctx::Ctx;
use table::{Access, Table};
pub(crate) use tables::StateTables;

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// How a state's initial value is made.
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

/// State of the current event's data subject, whatever the event's key: derived state a
/// workflow declares per subject, such as notes per patient in a workflow keyed by ward. Each
/// value is its subject's personal data: a durable store keeps it sealed under the subject's
/// key, and it is removed when the subject is erased. Using it for an event without an
/// envelope (or in `on_atom_complete`) fails the task. Like per-task state it is held per
/// partition: a subject whose events reach two partitions has a value in each.
///
/// ```
/// use pods_sdk::{AppBuilder, Ctx, PerSubjectState};
/// let app = AppBuilder::new("ward");
/// let visits = app.generator_external::<(String, String)>("visits");
/// let seen = PerSubjectState::<u32>::new("visits_of_patient");
/// app.workflow("by_ward").source(&visits).key_by(|v: &(String, String)| v.1.clone())
///     .processor(move |ctx: &mut Ctx<'_, u32>, _v: (String, String)| {
///         let n = seen.update(ctx, |n| { *n += 1; *n }).unwrap_or(0);
///         ctx.emit(n);
///     })
///     .sink();
/// assert!(app.build().is_ok());
/// ```
pub struct PerSubjectState<V> {
    handle: Handle<V>,
}

/// What a state's values are scoped to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Task,
    Key,
    Subject,
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
    /// write of a per-key or per-subject value records whose data it is (the current event's
    /// subject).
    #[inline]
    fn with<O, R>(
        &self,
        ctx: &mut Ctx<'_, O>,
        scope: Scope,
        access: Access,
        f: impl FnOnce(&mut Table<V>, u64) -> R,
    ) -> Option<R> {
        let key = match scope {
            Scope::Task => 0,
            Scope::Key => match ctx.key {
                Some(Key(k)) => k,
                None => {
                    ctx.fx.fail(TaskError::new(format!(
                        "per-key state '{}' used in on_atom_complete, where there is no current key",
                        self.name
                    )));
                    return None;
                }
            },
            Scope::Subject => match &ctx.envelope {
                Some(e) => ctx.states.subject_key(&e.subject),
                None => {
                    ctx.fx.fail(TaskError::new(format!(
                        "per-subject state '{}' used for an event without a data subject (or in on_atom_complete)",
                        self.name
                    )));
                    return None;
                }
            },
        };
        let keyed = scope != Scope::Task;
        match ctx
            .states
            .table::<V>(self.id, &self.name, keyed, scope != Scope::Key, &self.init)
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

    fn get<O>(&self, ctx: &mut Ctx<'_, O>, scope: Scope) -> V {
        self.with(ctx, scope, Access::Read, |t, k| t.get(k))
            .unwrap_or_else(|| (self.init)())
    }
}

macro_rules! state_api {
    ($ty:ident, $kind:expr, $scope:literal) => {
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
                self.handle.get(ctx, $kind)
            }

            /// Replaces the value.
            pub fn set<O>(&self, ctx: &mut Ctx<'_, O>, value: V) {
                self.handle.with(ctx, $kind, Access::Write, |t, k| t.set(k, value));
            }

            /// Changes the value in place and returns what `f` returns.
            pub fn update<O, R>(&self, ctx: &mut Ctx<'_, O>, f: impl FnOnce(&mut V) -> R) -> Option<R> {
                self.handle.with(ctx, $kind, Access::Write, |t, k| t.update(k, f))
            }

            /// Removes the value; reads see the initial value again.
            pub fn remove<O>(&self, ctx: &mut Ctx<'_, O>) {
                self.handle.with(ctx, $kind, Access::Remove, |t, k| t.remove(k));
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

state_api!(PerKeyState, Scope::Key, "per-key");
state_api!(PerTaskState, Scope::Task, "per-task");
state_api!(PerSubjectState, Scope::Subject, "per-subject");
