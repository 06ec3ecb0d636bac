//! The typed parts of the units around workflows: splitter routing, the feeder of external
//! generators, and stream subscriptions for hosts and tests.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::batch::{Batch, Columns, downcast_shared};
use crate::data::{Data, Event, StreamItem};
use crate::error::Error;
use crate::path::Path;
use crate::runtime::stream::{End, Item, Observer};

/// Routes each event of an atom to the first split whose predicate holds.
pub(crate) trait SplitRouter: Send {
    /// Adds a split; `false` if the predicate is not for this splitter's type.
    fn add(&mut self, predicate: Box<dyn Any + Send>) -> bool;
    /// One part per split, in split order (`None` where no event went).
    fn route(&self, atom: Arc<dyn Batch>) -> Vec<Option<Box<dyn Batch>>>;
}

type Predicate<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

pub(crate) struct TypedSplitter<T> {
    splits: Vec<Predicate<T>>,
}

impl<T> Default for TypedSplitter<T> {
    fn default() -> Self {
        TypedSplitter { splits: Vec::new() }
    }
}

impl<T: Data> SplitRouter for TypedSplitter<T> {
    fn add(&mut self, predicate: Box<dyn Any + Send>) -> bool {
        match predicate.downcast::<Predicate<T>>() {
            Ok(p) => {
                self.splits.push(*p);
                true
            }
            Err(_) => false,
        }
    }

    fn route(&self, atom: Arc<dyn Batch>) -> Vec<Option<Box<dyn Batch>>> {
        let mut parts: Vec<Columns<T>> = self.splits.iter().map(|_| Columns::default()).collect();
        if let Some(events) = downcast_shared::<T>(&atom) {
            let events = Arc::try_unwrap(events).unwrap_or_else(|shared| (*shared).clone());
            for (value, key, envelope) in events.into_rows() {
                if let Some(part) = self
                    .splits
                    .iter()
                    .position(|p| p(&value))
                    .and_then(|i| parts.get_mut(i))
                {
                    part.push(value, key, envelope);
                }
            }
        }
        parts
            .into_iter()
            .map(|p| {
                if p.len() == 0 {
                    None
                } else {
                    Some(Box::new(p) as Box<dyn Batch>)
                }
            })
            .collect()
    }
}

/// Called after a host pushed to or sealed a feeder, so a running system takes the atoms.
pub(crate) type Waker = Arc<dyn Fn() + Send + Sync>;

/// Logs a fed atom durably (its offset and encoding) before the push returns.
pub(crate) type FeedLog = Arc<dyn Fn(u64, &[u8]) -> Result<(), String> + Send + Sync>;

/// The queue between a host and an external generator.
pub(crate) struct FeederQueue {
    pub atoms: VecDeque<Arc<dyn Batch>>,
    pub capacity: usize,
    pub sealed: bool,
    pub waker: Option<Waker>,
    /// Where fed atoms are logged, when the system's store logs them.
    pub log: Option<FeedLog>,
    /// The stream offset the next fed atom gets.
    pub next: u64,
}

impl FeederQueue {
    pub(crate) fn new(capacity: usize) -> Arc<Mutex<FeederQueue>> {
        Arc::new(Mutex::new(FeederQueue {
            atoms: VecDeque::new(),
            capacity,
            sealed: false,
            waker: None,
            log: None,
            next: 0,
        }))
    }
}

/// Appends `atom` (empty only when fed at an offset) to a feeder's queue: logged first when the store logs fed
/// atoms (`encoded` spares encoding it again), at offset `at` if given. An atom below the
/// queue's next offset was taken before and is skipped (`Ok(false)`); one above it would
/// leave a gap and is refused.
pub(crate) fn push_batch(
    path: &Path,
    queue: &Mutex<FeederQueue>,
    at: Option<u64>,
    atom: Arc<dyn Batch>,
    encoded: Option<&[u8]>,
) -> Result<bool, Error> {
    let mut q = queue.lock().map_err(|_| Error::FeederSealed {
        path: path.to_string(),
    })?;
    if q.sealed {
        return Err(Error::FeederSealed {
            path: path.to_string(),
        });
    }
    match at {
        Some(offset) if offset < q.next => return Ok(false),
        Some(offset) if offset > q.next => {
            return Err(Error::FeederGap {
                path: path.to_string(),
                offset,
                next: q.next,
            });
        }
        _ => {}
    }
    if q.atoms.len() >= q.capacity {
        return Err(Error::FeederFull {
            path: path.to_string(),
            capacity: q.capacity,
        });
    }
    if let Some(log) = &q.log {
        let mut own = Vec::new();
        let bytes = match encoded {
            Some(b) => Ok(b),
            None => atom.encode(&mut own).map(|()| own.as_slice()),
        };
        if let Err(reason) = bytes.and_then(|b| log(q.next, b)) {
            return Err(Error::Storage(crate::error::StorageError::Backend(
                format!("atom fed to {path} not logged, so not taken: {reason}"),
            )));
        }
    }
    q.next += 1;
    q.atoms.push_back(atom);
    let waker = q.waker.clone();
    drop(q);
    if let Some(wake) = waker {
        wake();
    }
    Ok(true)
}

/// The host's end of an external generator: push atoms into the app, then seal it.
pub struct Feeder<T> {
    pub(crate) path: Path,
    pub(crate) queue: Arc<Mutex<FeederQueue>>,
    pub(crate) _t: std::marker::PhantomData<fn(T)>,
}

impl<T: Data> Feeder<T> {
    /// Pushes one atom of plain (non-personal) values. An empty atom is not passed on.
    pub fn push(&self, atom: Vec<T>) -> Result<(), Error> {
        self.push_events(atom.into_iter().map(Event::new).collect())
    }

    /// Pushes one atom of events, which may carry envelopes.
    pub fn push_events(&self, atom: Vec<Event<T>>) -> Result<(), Error> {
        if atom.is_empty() {
            return self.queue_open().map(|_| ());
        }
        let atom: Arc<dyn Batch> = Arc::new(Columns::from_events(atom));
        push_batch(&self.path, &self.queue, None, atom, None).map(|_| ())
    }

    /// Pushes one atom of events at stream offset `offset`, so that a host that must feed an
    /// atom exactly once (again after a crash) can: an offset already taken is skipped
    /// (`Ok(false)`), one past the next is refused ([`Error::FeederGap`]). Empty atoms are not
    /// passed on.
    pub fn push_events_at(&self, offset: u64, atom: Vec<Event<T>>) -> Result<bool, Error> {
        if atom.is_empty() {
            return self.queue_open().map(|_| false);
        }
        let atom: Arc<dyn Batch> = Arc::new(Columns::from_events(atom));
        push_batch(&self.path, &self.queue, Some(offset), atom, None)
    }

    fn queue_open(&self) -> Result<(), Error> {
        let q = self.queue.lock().map_err(|_| Error::FeederSealed {
            path: self.path.to_string(),
        })?;
        if q.sealed {
            return Err(Error::FeederSealed {
                path: self.path.to_string(),
            });
        }
        Ok(())
    }

    /// Ends the stream after the atoms already pushed.
    pub fn seal(&self) {
        let waker = match self.queue.lock() {
            Ok(mut q) => {
                q.sealed = true;
                q.waker.clone()
            }
            Err(_) => None,
        };
        if let Some(wake) = waker {
            wake();
        }
    }

    /// The generator's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a stream produced since the subscription was made, atom by atom, with its end marker.
/// Cheap to clone; all clones see the same items.
pub struct Subscription<T> {
    items: Arc<Seen<T>>,
}

/// A subscription's items, and the signal that more arrived.
struct Seen<T> {
    items: Mutex<Vec<StreamItem<T>>>,
    arrived: std::sync::Condvar,
}

impl<T> Clone for Subscription<T> {
    fn clone(&self) -> Self {
        Subscription {
            items: self.items.clone(),
        }
    }
}

impl<T: Data> Subscription<T> {
    pub(crate) fn new() -> (Subscription<T>, Observer) {
        let items = Arc::new(Seen {
            items: Mutex::new(Vec::new()),
            arrived: std::sync::Condvar::new(),
        });
        let sink = Arc::downgrade(&items);
        let observer: Observer = Box::new(move |item: &Item| {
            let Some(sink) = sink.upgrade() else {
                return false;
            };
            let typed = match item {
                Item::Atom(atom) => match downcast_shared::<T>(atom) {
                    Some(events) => StreamItem::Atom((*events).clone().into_events()),
                    None => return true,
                },
                Item::End(End::Seal) => StreamItem::Seal,
                Item::End(End::Error(m)) => StreamItem::Error(m.clone()),
            };
            if let Ok(mut v) = sink.items.lock() {
                v.push(typed);
            }
            sink.arrived.notify_all();
            true
        });
        (Subscription { items }, observer)
    }

    /// Every item so far: atoms in order, then the end marker if the stream ended.
    pub fn items(&self) -> Vec<StreamItem<T>> {
        self.items
            .items
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Blocks until the subscription holds more than `seen` items or `timeout` passed, and
    /// returns how many it holds: a host waits for output without polling (pass the count it
    /// last saw).
    pub fn wait_beyond(&self, seen: usize, timeout: std::time::Duration) -> usize {
        let items = self.items.items.lock().unwrap_or_else(|p| p.into_inner());
        let (items, _) = self
            .items
            .arrived
            .wait_timeout_while(items, timeout, |v| v.len() <= seen)
            .unwrap_or_else(|p| p.into_inner());
        items.len()
    }

    /// The values of each atom so far, in order.
    pub fn values(&self) -> Vec<Vec<T>> {
        self.items().iter().filter_map(StreamItem::values).collect()
    }

    /// Whether the stream ended (sealed or failed).
    pub fn ended(&self) -> bool {
        self.items
            .items
            .lock()
            .map(|v| matches!(v.last(), Some(StreamItem::Seal | StreamItem::Error(_))))
            .unwrap_or(false)
    }
}
