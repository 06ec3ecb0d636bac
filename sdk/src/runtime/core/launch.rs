//! Launching an app into a running system.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::{Core, Source, Unit, WorkflowUnit};
use crate::builder::App;
use crate::builder::spec::{GeneratorSource, Kind, TypeInfo};
use crate::error::Error;
use crate::path::Path;
use crate::runtime::engine::WorkflowInstance;
use crate::runtime::registry::{Entry, check_launch};
use crate::runtime::stream::StreamLog;
use crate::runtime::units::FeederQueue;

impl Core {
    /// Launches `app`: checks every reference, type and path against what is running, then
    /// starts its elements. A failed check changes nothing.
    pub(crate) fn launch(&mut self, app: App) -> Result<(), Error> {
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
                    // Fed atoms cannot be produced again: a store may log them, and they are
                    // read back with the generator's type.
                    if let Some(s) = self.streams.get_mut(stream) {
                        s.decode = Some(g.decode);
                    }
                    Source::Feeder(FeederQueue::new(capacity))
                }
            };
            let unit = self.add_unit(Unit::Generator {
                stream,
                source: Some(source),
                closed: false,
            });
            self.register(&g.path, Kind::Generator, g.ty, None, unit, None);
        }
        for (s, out) in el.sequencers.into_iter().zip(sequencer_streams) {
            if let Some(log) = self.streams.get_mut(out) {
                log.decode = Some(s.decode);
            }
            let unit = self.add_unit(Unit::Sequencer {
                path: s.path.clone(),
                inputs: Vec::new(),
                ended: 0,
                out,
            });
            self.register(&s.path, Kind::Sequencer, s.ty, None, unit, None);
        }
        for s in el.splitters {
            let input = self.consume(&s.input);
            let splitter = Unit::Splitter {
                path: s.path.clone(),
                input,
                router: Arc::new(Mutex::new((s.factory)())),
                pending: Vec::new(),
                outs: Vec::new(),
                ended: None,
            };
            let unit = self.add_unit(splitter);
            self.register(&s.path, Kind::Splitter, s.ty, None, unit, None);
        }
        for (s, stream) in el.splits.into_iter().zip(split_streams) {
            if let Some(log) = self.streams.get_mut(stream) {
                log.decode = Some(s.decode);
            }
            let unit = self
                .registry
                .get(&s.splitter, Kind::Splitter)
                .map(|e| e.target);
            if let Some(Unit::Splitter {
                router,
                outs,
                ended,
                pending,
                ..
            }) = unit.and_then(|u| self.units.get_mut(u))
            {
                // The router may be busy routing an atom (user code, on a worker): then the
                // predicate waits for the splitter's next atom. Launch checked its type.
                match router.try_lock() {
                    Ok(mut r) if pending.is_empty() => {
                        if !r.add(s.predicate) {
                            continue;
                        }
                    }
                    _ => pending.push(s.predicate),
                }
                outs.push(stream);
                // A split added to a splitter that already ended ends the same way.
                if let Some(end) = ended.clone() {
                    self.streams[stream].close(end);
                }
            }
        }
        let mut sequencer_inputs = Vec::new();
        for c in el.connections {
            let input = self.consume(&c.from);
            let unit = self.registry.get(&c.to, Kind::Sequencer).map(|e| e.target);
            if let Some(Unit::Sequencer { inputs, out, .. }) =
                unit.and_then(|u| self.units.get_mut(u))
            {
                inputs.push(input);
                sequencer_inputs.push((*out, input.0));
            }
        }
        for (w, out) in el.workflows.iter().zip(workflow_streams) {
            let input = self.consume(&w.source);
            if let Some(s) = self.streams.get_mut(out) {
                s.decode = Some(w.out_decode);
            }
            let engine = Box::new(WorkflowInstance::new(w));
            let unit = self.add_unit(Unit::Workflow(Box::new(WorkflowUnit {
                path: w.path.clone(),
                log_output: engine.log_output.clone(),
                engine: Some(engine),
                pending: 0,
                input,
                out,
                asks: VecDeque::new(),
                replies: VecDeque::new(),
                input_ended: false,
                probation: self.group,
                unflushed: 0,
                failed: false,
                serves: !w.repliers.is_empty(),
                denied: 0,
                open: HashMap::default(),
            })));
            self.register(&w.path, Kind::Workflow, w.out_ty, None, unit, None);
            for i in 0..w.partitions.max(1) {
                let path = w.path.join("partitions").join(&i.to_string());
                self.register(&path, Kind::Partition, w.out_ty, None, unit, None);
            }
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
        // A stream feeding a sequencer whose output reaches it again closes a cycle: it is a
        // feedback edge and never makes its producer wait (bounded, the cycle could deadlock).
        for (out, input) in sequencer_inputs {
            if self.reaches(out, input)
                && let Some(s) = self.streams.get_mut(input)
            {
                s.set_bound(None);
            }
        }
        self.link();
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

    /// Whether stream `to` is `from` or lies downstream of it (through units that consume
    /// one stream and produce others).
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = vec![false; self.streams.len()];
        let mut todo = vec![from];
        while let Some(s) = todo.pop() {
            if s == to {
                return true;
            }
            if std::mem::replace(&mut seen[s], true) {
                continue;
            }
            for unit in &self.units {
                match unit {
                    Unit::Sequencer { inputs, out, .. } if inputs.iter().any(|i| i.0 == s) => {
                        todo.push(*out)
                    }
                    Unit::Splitter { input, outs, .. } if input.0 == s => {
                        todo.extend(outs.iter().copied())
                    }
                    Unit::Workflow(w) if w.input.0 == s => todo.push(w.out),
                    _ => {}
                }
            }
        }
        false
    }

    fn add_stream(&mut self, path: &Path, ty: TypeInfo) -> usize {
        let mut log = StreamLog::new(path.clone());
        log.set_bound(self.bound);
        self.streams.push(log);
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
