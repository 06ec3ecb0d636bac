//! Streams and what produces or routes them: generators, sequencers, splitters, portals, and
//! references by path to another app's elements.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

use crate::batch::{Batch, Columns};
use crate::builder::app::AppBuilder;
use crate::builder::spec::{
    ConnectionSpec, GeneratorSource, GeneratorSpec, Kind, PortalSpec, SequencerSpec, SplitSpec,
    SplitterSpec, TypeInfo,
};
use crate::data::{Data, Event, Key};
use crate::error::Error;
use crate::path::Path;
use crate::portal::Portal;
use crate::runtime::units::TypedSplitter;

/// A typed handle on an atomic stream, by path: a generator's, a workflow's output, a
/// sequencer's output or a split. Workflows consume it with
/// [`WorkflowBuilder::source`](crate::WorkflowBuilder::source).
pub struct StreamRef<T> {
    pub(crate) path: Path,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for StreamRef<T> {
    fn clone(&self) -> Self {
        StreamRef {
            path: self.path.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> StreamRef<T> {
    pub(crate) fn new(path: Path) -> StreamRef<T> {
        StreamRef {
            path,
            _t: PhantomData,
        }
    }

    /// The stream's registry path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A handle on a sequencer: it merges the streams connected to it atom by atom (never splitting
/// or merging atoms) into its own stream; cycles close through it.
pub struct Sequencer<T> {
    pub(crate) path: Path,
    _t: PhantomData<fn() -> T>,
}

impl<T> Sequencer<T> {
    /// The sequencer's output stream.
    pub fn stream(&self) -> StreamRef<T> {
        StreamRef::new(self.path.join("stream"))
    }

    /// The sequencer's registry path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A handle on a splitter: it routes each event of its input to the first split whose
/// predicate matches, keeping atom grouping.
pub struct Splitter<T> {
    pub(crate) path: Path,
    _t: PhantomData<fn() -> T>,
}

impl<T> Splitter<T> {
    /// The splitter's registry path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

const DEFAULT_FEEDER_CAPACITY: usize = 1024;

impl AppBuilder {
    fn add_generator<T: Data>(&self, name: &str, source: GeneratorSource) -> StreamRef<T> {
        let path = self.child("generators", name);
        let stream = path.join("stream");
        let spec = GeneratorSpec {
            path,
            stream: stream.clone(),
            ty: TypeInfo::of::<T>(),
            decode: crate::batch::decode::<T>,
            source,
        };
        self.state.borrow_mut().elements.generators.push(spec);
        StreamRef::new(stream)
    }

    /// A generator producing the given atoms in order, then Seal.
    pub fn generator_from_atoms<T: Data>(&self, name: &str, atoms: Vec<Vec<T>>) -> StreamRef<T> {
        self.generator_from_events(
            name,
            atoms
                .into_iter()
                .map(|a| a.into_iter().map(Event::new).collect())
                .collect(),
        )
    }

    /// A generator producing the given atoms of events (which may carry envelopes), then Seal.
    pub fn generator_from_events<T: Data>(
        &self,
        name: &str,
        atoms: Vec<Vec<Event<T>>>,
    ) -> StreamRef<T> {
        let iter = atoms
            .into_iter()
            .map(|a| Arc::new(Columns::from_events(a)) as Arc<dyn Batch>);
        self.add_generator(name, GeneratorSource::Atoms(Box::new(iter)))
    }

    /// A generator producing the numbers of `range` in atoms of `atom_size` (the last may be
    /// shorter), then Seal.
    pub fn generator_from_range(
        &self,
        name: &str,
        range: Range<i64>,
        atom_size: usize,
    ) -> StreamRef<i64> {
        if atom_size == 0 {
            self.state.borrow_mut().errors.push(Error::InvalidPath {
                path: name.to_owned(),
                reason: "a range generator needs an atom size of at least 1".to_owned(),
            });
        }
        let size = i64::try_from(atom_size.max(1)).unwrap_or(i64::MAX);
        let (start, end) = (range.start, range.end);
        let iter = (0..)
            .map(move |i: i64| start.saturating_add(i.saturating_mul(size)))
            .take_while(move |s| *s < end)
            .map(move |s| {
                let atom = Columns::of_values((s..s.saturating_add(size).min(end)).collect());
                Arc::new(atom) as Arc<dyn Batch>
            });
        self.add_generator(name, GeneratorSource::Atoms(Box::new(iter)))
    }

    /// A generator fed by the host: get its [`Feeder`](crate::Feeder) from the running system
    /// with `feeder::<T>(path)`, push atoms, and seal it. The queue holds at most 1,024 atoms.
    pub fn generator_external<T: Data>(&self, name: &str) -> StreamRef<T> {
        self.generator_external_bounded(name, DEFAULT_FEEDER_CAPACITY)
    }

    /// Like [`AppBuilder::generator_external`] with a queue bound of `capacity` atoms.
    pub fn generator_external_bounded<T: Data>(&self, name: &str, capacity: usize) -> StreamRef<T> {
        self.add_generator(
            name,
            GeneratorSource::External {
                capacity: capacity.max(1),
            },
        )
    }

    /// A sequencer named `name`; connect streams to it with [`AppBuilder::connect`].
    pub fn sequencer<T: Data>(&self, name: &str) -> Sequencer<T> {
        let path = self.child("sequencers", name);
        let spec = SequencerSpec {
            path: path.clone(),
            stream: path.join("stream"),
            ty: TypeInfo::of::<T>(),
            decode: crate::batch::decode::<T>,
        };
        self.state.borrow_mut().elements.sequencers.push(spec);
        Sequencer {
            path,
            _t: PhantomData,
        }
    }

    /// Feeds `stream` into `sequencer` (which may belong to another app).
    pub fn connect<T: Data>(&self, stream: &StreamRef<T>, sequencer: &Sequencer<T>) {
        let spec = ConnectionSpec {
            from: stream.path.clone(),
            to: sequencer.path.clone(),
            ty: TypeInfo::of::<T>(),
        };
        self.state.borrow_mut().elements.connections.push(spec);
    }

    /// A splitter named `name` over `input`; add splits with [`AppBuilder::split`].
    pub fn splitter<T: Data>(&self, name: &str, input: &StreamRef<T>) -> Splitter<T> {
        let path = self.child("splitters", name);
        let factory = Box::new(|| {
            Box::new(TypedSplitter::<T>::default()) as Box<dyn crate::runtime::units::SplitRouter>
        });
        let spec = SplitterSpec {
            path: path.clone(),
            input: input.path.clone(),
            ty: TypeInfo::of::<T>(),
            factory,
        };
        self.state.borrow_mut().elements.splitters.push(spec);
        Splitter {
            path,
            _t: PhantomData,
        }
    }

    /// Adds a split named `name` to `splitter` (which may belong to another app): events for
    /// which `predicate` holds, and no earlier split's did, go to the returned stream.
    pub fn split<T: Data>(
        &self,
        splitter: &Splitter<T>,
        name: &str,
        predicate: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> StreamRef<T> {
        if let Err(reason) = crate::path::check_name(name) {
            self.state.borrow_mut().errors.push(Error::InvalidPath {
                path: name.to_owned(),
                reason,
            });
        }
        let stream = splitter.path.join("splits").join(name);
        let predicate: Arc<dyn Fn(&T) -> bool + Send + Sync> = Arc::new(predicate);
        let spec = SplitSpec {
            splitter: splitter.path.clone(),
            stream: stream.clone(),
            ty: TypeInfo::of::<T>(),
            decode: crate::batch::decode::<T>,
            predicate: Box::new(predicate),
        };
        self.state.borrow_mut().elements.splits.push(spec);
        StreamRef::new(stream)
    }

    /// A portal named `name` whose requests all have key 0 (one replier state for all).
    pub fn portal<Req: Data, Rep: Data>(&self, name: &str) -> Portal<Req, Rep> {
        self.portal_keyed(name, |_: &Req| 0u8)
    }

    /// A portal named `name` whose requests are keyed by `key`, so that each reaches the
    /// replier's per-key state of that key.
    pub fn portal_keyed<Req: Data, Rep: Data, K: std::hash::Hash>(
        &self,
        name: &str,
        key: impl Fn(&Req) -> K + Send + Sync + 'static,
    ) -> Portal<Req, Rep> {
        let path = self.child("portals", name);
        let spec = PortalSpec {
            path: path.clone(),
            req: TypeInfo::of::<Req>(),
            rep: TypeInfo::of::<Rep>(),
        };
        self.state.borrow_mut().elements.portals.push(spec);
        Portal {
            path,
            key_fn: Some(Arc::new(move |r: &Req| Key::of(&key(r)))),
            _types: PhantomData,
        }
    }

    /// Refers to another app's stream by path; checked (existence and type) at launch.
    pub fn stream_ref<T: Data>(&self, path: &str) -> StreamRef<T> {
        StreamRef::new(self.reference(path, Kind::Stream, TypeInfo::of::<T>(), None))
    }

    /// Refers to another app's portal by path; checked (existence and both types) at launch.
    pub fn portal_ref<Req: Data, Rep: Data>(&self, path: &str) -> Portal<Req, Rep> {
        let path = self.reference(
            path,
            Kind::Portal,
            TypeInfo::of::<Req>(),
            Some(TypeInfo::of::<Rep>()),
        );
        Portal {
            path,
            key_fn: None,
            _types: PhantomData,
        }
    }

    /// Refers to another app's sequencer by path, to connect streams to it.
    pub fn sequencer_ref<T: Data>(&self, path: &str) -> Sequencer<T> {
        Sequencer {
            path: self.reference(path, Kind::Sequencer, TypeInfo::of::<T>(), None),
            _t: PhantomData,
        }
    }

    /// Refers to another app's splitter by path, to add splits to it.
    pub fn splitter_ref<T: Data>(&self, path: &str) -> Splitter<T> {
        Splitter {
            path: self.reference(path, Kind::Splitter, TypeInfo::of::<T>(), None),
            _t: PhantomData,
        }
    }
}
