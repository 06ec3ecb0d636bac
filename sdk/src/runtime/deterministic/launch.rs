//! Launching an app into a running deterministic system.

use std::collections::{HashMap, VecDeque};

use super::{DeterministicSystem, Source, Unit, WorkflowUnit};
use crate::builder::App;
use crate::builder::spec::{GeneratorSource, Kind, TypeInfo};
use crate::error::Error;
use crate::path::Path;
use crate::runtime::engine::WorkflowInstance;
use crate::runtime::registry::{Entry, check_launch};
use crate::runtime::stream::StreamLog;
use crate::runtime::units::FeederQueue;
use crate::storage::Storage;

impl<S: Storage> DeterministicSystem<S> {
    /// Launches `app`: checks every reference, type and path against what is running, then
    /// starts its elements. A failed check changes nothing.
    pub fn launch(&mut self, app: App) -> Result<(), Error> {
        check_launch(&app, &self.registry)?;
        self.check_open_sequencers(&app)?;
        let el = app.elements;
        // Every stream first, so that any element may consume any stream of the app.
        let generator_streams: Vec<usize> = el
            .generators
            .iter()
            .map(|g| self.add_stream(&g.stream, g.ty))
            .collect();
        let sequencer_streams: Vec<usize> = el
            .sequencers
            .iter()
            .map(|s| self.add_stream(&s.stream, s.ty))
            .collect();
        let workflow_streams: Vec<usize> = el
            .workflows
            .iter()
            .map(|w| self.add_stream(&w.stream, w.out_ty))
            .collect();
        let split_streams: Vec<usize> = el
            .splits
            .iter()
            .map(|s| self.add_stream(&s.stream, s.ty))
            .collect();

        for (g, stream) in el.generators.into_iter().zip(generator_streams) {
            let source = match g.source {
                GeneratorSource::Atoms(iter) => Source::Atoms(iter),
                GeneratorSource::External { capacity } => {
                    Source::Feeder(FeederQueue::new(capacity))
                }
            };
            let unit = self.add_unit(Unit::Generator {
                stream,
                source,
                closed: false,
            });
            self.register(&g.path, Kind::Generator, g.ty, None, unit, None);
        }
        for (s, out) in el.sequencers.into_iter().zip(sequencer_streams) {
            let unit = self.add_unit(Unit::Sequencer {
                inputs: Vec::new(),
                ended: 0,
                out,
            });
            self.register(&s.path, Kind::Sequencer, s.ty, None, unit, None);
        }
        for s in el.splitters {
            let input = self.consume(&s.input);
            let splitter = Unit::Splitter {
                input,
                router: (s.factory)(),
                outs: Vec::new(),
                ended: None,
            };
            let unit = self.add_unit(splitter);
            self.register(&s.path, Kind::Splitter, s.ty, None, unit, None);
        }
        for (s, stream) in el.splits.into_iter().zip(split_streams) {
            let unit = self
                .registry
                .get(&s.splitter, Kind::Splitter)
                .map(|e| e.target);
            if let Some(Unit::Splitter {
                router,
                outs,
                ended,
                ..
            }) = unit.and_then(|u| self.units.get_mut(u))
                && router.add(s.predicate)
            {
                outs.push(stream);
                // A split added to a splitter that already ended ends the same way.
                if let Some(end) = ended.clone() {
                    self.streams[stream].close(end);
                }
            }
        }
        for c in el.connections {
            let input = self.consume(&c.from);
            let unit = self.registry.get(&c.to, Kind::Sequencer).map(|e| e.target);
            if let Some(Unit::Sequencer { inputs, .. }) = unit.and_then(|u| self.units.get_mut(u)) {
                inputs.push(input);
            }
        }
        for (w, out) in el.workflows.iter().zip(workflow_streams) {
            let input = self.consume(&w.source);
            let unit = self.add_unit(Unit::Workflow(Box::new(WorkflowUnit {
                engine: WorkflowInstance::new(w),
                input,
                out,
                asks: VecDeque::new(),
                replies: VecDeque::new(),
                input_ended: false,
                failed: false,
                serves: !w.repliers.is_empty(),
                denied: 0,
                open: HashMap::default(),
            })));
            self.register(&w.path, Kind::Workflow, w.out_ty, None, unit, None);
            for (portal, node) in &w.repliers {
                if let Some(p) = el.portals.iter().find(|p| &p.path == portal) {
                    self.register(
                        &p.path,
                        Kind::Portal,
                        p.req,
                        Some(p.rep),
                        unit,
                        Some((unit, *node)),
                    );
                }
            }
        }
        self.registry.apps.insert(app.path.clone());
        tracing::debug!(app = %app.path, "launched");
        Ok(())
    }

    /// Refuses connections to a sequencer of a running app whose inputs all ended: what it
    /// would be given could go nowhere.
    fn check_open_sequencers(&self, app: &App) -> Result<(), Error> {
        for c in &app.elements.connections {
            let Some(unit) = self.registry.get(&c.to, Kind::Sequencer).map(|e| e.target) else {
                continue;
            };
            if let Some(Unit::Sequencer { out, .. }) = self.units.get(unit)
                && self.streams.get(*out).is_some_and(StreamLog::is_closed)
            {
                return Err(Error::Ended {
                    path: c.to.to_string(),
                });
            }
        }
        Ok(())
    }

    fn add_stream(&mut self, path: &Path, ty: TypeInfo) -> usize {
        self.streams.push(StreamLog::new(path.clone()));
        let id = self.streams.len() - 1;
        self.register(path, Kind::Stream, ty, None, id, None);
        id
    }

    fn add_unit(&mut self, unit: Unit) -> usize {
        self.units.push(unit);
        self.units.len() - 1
    }

    fn register(
        &mut self,
        path: &Path,
        kind: Kind,
        ty: TypeInfo,
        ty2: Option<TypeInfo>,
        target: usize,
        replier: Option<(usize, usize)>,
    ) {
        self.registry.entries.insert(
            path.clone(),
            Entry {
                kind,
                ty,
                ty2,
                target,
                replier,
            },
        );
    }

    /// A new consumer of the stream at `path`. Launch checked that the path is a stream of a
    /// running app or of this app, and this app's streams are created before any consumer, so
    /// the lookup succeeds; a consumer of no stream would never be ready.
    fn consume(&mut self, path: &Path) -> (usize, usize) {
        let id = self.registry.get(path, Kind::Stream).map(|e| e.target);
        match id.and_then(|id| self.streams.get_mut(id).map(|s| (id, s.add_consumer()))) {
            Some(consumer) => consumer,
            None => {
                tracing::error!(stream = %path, "consumer of a stream that does not exist");
                (usize::MAX, usize::MAX)
            }
        }
    }
}
