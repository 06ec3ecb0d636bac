//! What a built app holds: plain descriptions of its elements, with factories for the parts the
//! runtime instantiates (tasks, generators, splitters). Both runtimes launch from these.

use std::any::{Any, TypeId};
use std::sync::Arc;

use crate::batch::Batch;
use crate::path::Path;
use crate::task::TaskFactory;

/// A type's identity and name, for checks at launch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TypeInfo {
    pub id: TypeId,
    pub name: &'static str,
}

impl TypeInfo {
    pub(crate) fn of<T: 'static>() -> TypeInfo {
        TypeInfo {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }
}

impl PartialEq for TypeInfo {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// The kinds of registry elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Stream,
    Workflow,
    Generator,
    Sequencer,
    Splitter,
    Portal,
    Partition,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::Workflow => "workflow",
            Kind::Generator => "generator",
            Kind::Sequencer => "sequencer",
            Kind::Splitter => "splitter",
            Kind::Portal => "portal",
            Kind::Partition => "partition",
        }
    }
}

/// Where a generator's atoms come from.
pub(crate) enum GeneratorSource {
    /// A finite sequence of atoms, then Seal.
    Atoms(Box<dyn Iterator<Item = Arc<dyn Batch>> + Send>),
    /// Atoms pushed by the host through a feeder, with a queue bound.
    External { capacity: usize },
}

pub(crate) struct GeneratorSpec {
    pub path: Path,
    pub stream: Path,
    pub ty: TypeInfo,
    /// Reads the generator's atoms back from a store's log (external generators).
    pub decode: crate::batch::Decode,
    pub source: GeneratorSource,
}

/// One task node of a workflow graph; node 0 is the source.
pub(crate) struct NodeSpec {
    pub name: String,
    pub inputs: Vec<usize>,
    pub factory: Option<TaskFactory>,
    pub non_personal: bool,
    /// Sets the events' keys (`key_by`): with partitions, its output is exchanged by key.
    pub keys: bool,
}

pub(crate) struct WorkflowSpec {
    pub path: Path,
    pub stream: Path,
    pub source: Path,
    pub source_ty: TypeInfo,
    pub out_ty: TypeInfo,
    /// Reads the workflow's output atoms back from the store.
    pub out_decode: crate::batch::Decode,
    pub nodes: Vec<NodeSpec>,
    pub sink: Option<usize>,
    /// Portals answered here, with the replier node.
    pub repliers: Vec<(Path, usize)>,
    /// Portals declared as asked by askers here, with their request and reply types.
    pub asks: Vec<(Path, TypeInfo, TypeInfo)>,
    /// Number of partitions (data parallelism), at least 1.
    pub partitions: usize,
}

pub(crate) struct SequencerSpec {
    pub path: Path,
    pub stream: Path,
    pub ty: TypeInfo,
    /// Reads its output's atoms back from a store's log.
    pub decode: crate::batch::Decode,
}

/// Makes the typed routing part of a splitter.
pub(crate) type SplitterFactory =
    Box<dyn FnOnce() -> Box<dyn crate::runtime::units::SplitRouter> + Send>;

pub(crate) struct SplitterSpec {
    pub path: Path,
    pub input: Path,
    pub ty: TypeInfo,
    pub factory: SplitterFactory,
}

/// A split added to a splitter (of this app or, by reference, of another).
pub(crate) struct SplitSpec {
    pub splitter: Path,
    pub stream: Path,
    pub ty: TypeInfo,
    /// Reads the split's atoms back from a store's log.
    pub decode: crate::batch::Decode,
    /// An `Arc<dyn Fn(&T) -> bool + Send + Sync>` for the splitter's `T`.
    pub predicate: Box<dyn Any + Send>,
}

pub(crate) struct PortalSpec {
    pub path: Path,
    pub req: TypeInfo,
    pub rep: TypeInfo,
}

/// A stream feeding a sequencer.
pub(crate) struct ConnectionSpec {
    pub from: Path,
    pub to: Path,
    pub ty: TypeInfo,
}

/// A reference by path to an element that must exist at launch, with its expected types.
pub(crate) struct Reference {
    pub path: Path,
    pub kind: Kind,
    pub ty: TypeInfo,
    /// The reply type, for portals.
    pub ty2: Option<TypeInfo>,
}

/// Everything an app defines.
#[derive(Default)]
pub(crate) struct Elements {
    pub generators: Vec<GeneratorSpec>,
    pub workflows: Vec<WorkflowSpec>,
    pub sequencers: Vec<SequencerSpec>,
    pub splitters: Vec<SplitterSpec>,
    pub splits: Vec<SplitSpec>,
    pub portals: Vec<PortalSpec>,
    pub connections: Vec<ConnectionSpec>,
    pub references: Vec<Reference>,
}
