//! Workflows as graphs of tasks: `WorkflowBuilder`, and `Flow<T>`, a typed point in the graph
//! that operators extend (see the `ops` module, one operator per file).

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::batch::{Decode, decode};
use crate::builder::spec::{NodeSpec, TypeInfo, WorkflowSpec};
use crate::builder::streams::StreamRef;
use crate::data::Data;
use crate::error::Error;
use crate::path::Path;
use crate::task::TaskFactory;

pub(crate) struct WorkflowState {
    path: Path,
    source: Option<(Path, TypeInfo, Decode)>,
    nodes: Vec<NodeSpec>,
    /// Per node: a slot that `on_atom_complete` fills (processor-like nodes only).
    hooks: Vec<Option<Box<dyn Any>>>,
    sink: Option<(usize, TypeInfo, Decode)>,
    pub(crate) repliers: Vec<(Path, usize)>,
    pub(crate) asks: Vec<(Path, TypeInfo, TypeInfo)>,
    partitions: usize,
    errors: Vec<Error>,
}

impl WorkflowState {
    pub(crate) fn new(path: Path) -> WorkflowState {
        let source = NodeSpec {
            name: "source".into(),
            inputs: Vec::new(),
            factory: None,
            non_personal: false,
            keys: false,
        };
        WorkflowState {
            path,
            source: None,
            nodes: vec![source],
            hooks: vec![None],
            sink: None,
            repliers: Vec::new(),
            asks: Vec::new(),
            partitions: 1,
            errors: Vec::new(),
        }
    }

    pub(crate) fn take_spec(&mut self) -> Result<WorkflowSpec, Error> {
        if let Some(e) = self.errors.drain(..).next() {
            return Err(e);
        }
        let Some((source, source_ty, source_decode)) = self.source.clone() else {
            return Err(Error::NoSource {
                workflow: self.path.to_string(),
            });
        };
        let (sink, out_ty, out_decode) = match self.sink {
            Some((node, ty, decode)) => (Some(node), ty, decode),
            None => (None, source_ty, source_decode),
        };
        Ok(WorkflowSpec {
            stream: self.path.join("stream"),
            path: self.path.clone(),
            source,
            source_ty,
            out_ty,
            out_decode,
            nodes: std::mem::take(&mut self.nodes),
            sink,
            repliers: std::mem::take(&mut self.repliers),
            asks: std::mem::take(&mut self.asks),
            partitions: self.partitions,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A workflow being built: give it its source stream to start the task graph.
pub struct WorkflowBuilder {
    pub(crate) wf: Rc<RefCell<WorkflowState>>,
}

impl WorkflowBuilder {
    /// Consumes `stream`; returns the flow of its events, to which tasks are added.
    pub fn source<T: Data>(&self, stream: &StreamRef<T>) -> Flow<T> {
        let mut wf = self.wf.borrow_mut();
        if wf.source.is_some() {
            let e = Error::TwoSources {
                workflow: wf.path.to_string(),
            };
            wf.errors.push(e);
        } else {
            wf.source = Some((stream.path.clone(), TypeInfo::of::<T>(), decode::<T>));
        }
        Flow {
            wf: self.wf.clone(),
            node: 0,
            _t: PhantomData,
        }
    }

    /// Runs the workflow in `n` partitions (data parallelism; default 1). Each partition runs
    /// the whole task graph over its share of every atom: the input's events are split into
    /// contiguous runs (or by key, if they carry keys), and after each `key_by` the events move
    /// to the partition owning their key, so per-key state lives in one partition. Asks reach
    /// the replier partition owning the request's key. An atom completes, and commits once,
    /// when every partition has finished it. Per-task state is per partition. Within an output
    /// atom, events come in partition order. Each key's events keep their input order, except
    /// where a `union` before a `key_by` merges branches: each partition merges its own share,
    /// so one key's events from different branches may interleave otherwise than in a single
    /// partition.
    pub fn partitions(&self, n: usize) -> &WorkflowBuilder {
        let mut wf = self.wf.borrow_mut();
        if n == 0 {
            let e = Error::NoPartitions {
                workflow: wf.path.to_string(),
            };
            wf.errors.push(e);
        } else {
            wf.partitions = n;
        }
        drop(wf);
        self
    }

    /// The workflow's registry path.
    pub fn path(&self) -> Path {
        self.wf.borrow().path.clone()
    }
}

/// A typed point in a workflow's task graph: the events some task emits. Operators (`map`,
/// `filter`, `key_by`, `processor`, `replier`, …) add a task after it and return the new flow.
pub struct Flow<T> {
    pub(crate) wf: Rc<RefCell<WorkflowState>>,
    pub(crate) node: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Flow<T> {
    fn clone(&self) -> Self {
        Flow {
            wf: self.wf.clone(),
            node: self.node,
            _t: PhantomData,
        }
    }
}

impl<T: Data> Flow<T> {
    /// Adds a task node reading `inputs` and returns its flow.
    pub(crate) fn add<U: Data>(
        &self,
        name: &str,
        inputs: Vec<usize>,
        factory: TaskFactory,
    ) -> Flow<U> {
        self.add_with_hook::<U>(name, inputs, factory, None)
    }

    pub(crate) fn add_with_hook<U: Data>(
        &self,
        name: &str,
        inputs: Vec<usize>,
        factory: TaskFactory,
        hook: Option<Box<dyn Any>>,
    ) -> Flow<U> {
        let mut wf = self.wf.borrow_mut();
        let index = wf.nodes.len();
        wf.nodes.push(NodeSpec {
            name: format!("{name}-{index}"),
            inputs,
            factory: Some(factory),
            non_personal: false,
            keys: false,
        });
        wf.hooks.push(hook);
        Flow {
            wf: self.wf.clone(),
            node: index,
            _t: PhantomData,
        }
    }

    /// Marks this flow's node as setting keys, so partitions exchange its output by key.
    pub(crate) fn sets_keys(self) -> Flow<T> {
        if let Some(n) = self.wf.borrow_mut().nodes.get_mut(self.node) {
            n.keys = true;
        }
        self
    }

    /// Records an error to report at build time.
    pub(crate) fn error(&self, e: Error) {
        self.wf.borrow_mut().errors.push(e);
    }

    /// The hook slot of this flow's node, if it has one.
    pub(crate) fn with_hook<R>(&self, f: impl FnOnce(Option<&mut Box<dyn Any>>) -> R) -> R {
        let mut wf = self.wf.borrow_mut();
        let node = self.node;
        f(wf.hooks.get_mut(node).and_then(Option::as_mut))
    }

    /// Makes these events the workflow's output, and returns the output stream
    /// (`<workflow>/stream`). A workflow has at most one sink; without one it outputs nothing.
    pub fn sink(&self) -> StreamRef<T> {
        let mut wf = self.wf.borrow_mut();
        if wf.sink.is_some() {
            let e = Error::TwoSinks {
                workflow: wf.path.to_string(),
            };
            wf.errors.push(e);
        } else {
            wf.sink = Some((self.node, TypeInfo::of::<T>(), decode::<T>));
        }
        StreamRef::new(wf.path.join("stream"))
    }

    /// Declares that the task behind this flow emits non-personal data (an aggregate, say): its
    /// events, asks and replies no longer carry the envelope of their input.
    pub fn non_personal(self) -> Flow<T> {
        {
            let mut wf = self.wf.borrow_mut();
            if let Some(n) = wf.nodes.get_mut(self.node) {
                n.non_personal = true;
            }
        }
        self
    }

    /// The flow's position: the workflow path and node index (for diagnostics).
    pub fn describe(&self) -> String {
        let wf = self.wf.borrow();
        let name = wf
            .nodes
            .get(self.node)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        format!("{}#{}", wf.path(), name)
    }
}
