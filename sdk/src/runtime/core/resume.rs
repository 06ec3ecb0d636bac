//! Resuming workflows from what they committed in an earlier run: their state, step count and
//! output count, and their input position: on a replayable generator (atoms or a range), which
//! is fast-forwarded past what every consumer has committed, or on another workflow's output,
//! whose atoms the store logged and gives back.

use super::{Core, Source, Unit};
use crate::builder::App;
use crate::builder::spec::Kind;
use crate::error::{Error, StorageError};
use crate::path::Path;
use crate::storage::{InputPosition, Recovery, Storage, consumer_id};

/// Reads logged atoms of a stream from the store: `(stream, from, to)`.
pub(crate) type Fetch<'a> = dyn FnMut(&Path, u64, u64) -> Result<Vec<Vec<u8>>, StorageError> + 'a;

/// What an app's units committed in an earlier run.
#[derive(Default)]
pub(crate) struct Recovered {
    /// Per workflow.
    pub workflows: Vec<(Path, Recovery)>,
    /// Per input of a sequencer or splitter whose moves were logged: the unit, the input
    /// stream, and where the unit stood on it.
    pub movers: Vec<(Path, InputPosition)>,
}

/// What the workflows of `app`, and the sequencers and splitters reading its streams, committed
/// in an earlier run, as `storage` has it.
pub(crate) fn recoveries(app: &App, storage: &mut dyn Storage) -> Result<Recovered, Error> {
    let mut out = Recovered::default();
    for w in &app.elements.workflows {
        if let Some(r) = storage.recover(&w.path, w.path.stable_id())? {
            out.workflows.push((w.path.clone(), r));
        }
    }
    let inputs = app
        .elements
        .connections
        .iter()
        .map(|c| (&c.to, &c.from))
        .chain(app.elements.splitters.iter().map(|s| (&s.path, &s.input)));
    for (unit, input) in inputs {
        if let Some(r) = storage.recover(unit, consumer_id(unit, input))?
            && let Some(position) = r.input
        {
            out.movers.push((unit.clone(), position));
        }
    }
    Ok(out)
}

/// Where the log of each logged stream of `app` ends (external generators, sequencers,
/// splits), when `storage` logs atoms.
pub(crate) fn feed_heads(app: &App, storage: &mut dyn Storage) -> Result<Vec<(Path, u64)>, Error> {
    let mut out = Vec::new();
    if !storage.logs_atoms() {
        return Ok(out);
    }
    let external = app.elements.generators.iter().filter(|g| {
        matches!(
            g.source,
            crate::builder::spec::GeneratorSource::External { .. }
        )
    });
    let logged = external
        .map(|g| &g.stream)
        .chain(app.elements.sequencers.iter().map(|s| &s.stream))
        .chain(app.elements.splits.iter().map(|s| &s.stream));
    for stream in logged {
        let head = storage.logged_head(stream)?;
        if head > 0 {
            out.push((stream.clone(), head));
        }
    }
    Ok(out)
}

/// What resuming an app did.
#[derive(Default)]
pub(crate) struct Resumed {
    /// Workflows whose input is neither replayable nor logged: state restored, input read from
    /// its current head.
    pub not_replayable: Vec<Path>,
    /// Workflows launched for the first time (and inputs of sequencers and splitters read
    /// for the first time), with the id their position is kept under and where they start
    /// reading (to record).
    pub fresh: Vec<(Path, u64, InputPosition)>,
}

impl Resumed {
    /// Records where first-time workflows start, and logs what resuming found.
    pub(crate) fn finish(
        &self,
        recovered: &Recovered,
        storage: &mut dyn Storage,
    ) -> Result<(), Error> {
        for (path, id, input) in &self.fresh {
            storage.begin_consumer(path, *id, input)?;
        }
        for (unit, input) in &recovered.movers {
            tracing::info!(%unit, input = %input.stream, next = input.next, "resumed");
        }
        for (path, r) in &recovered.workflows {
            tracing::info!(workflow = %path, step = r.step, values = r.values.len(), "resumed");
        }
        for path in &self.not_replayable {
            tracing::warn!(workflow = %path, "its input is not durable: state resumed, input read from its current head");
        }
        Ok(())
    }
}

impl Core {
    /// Resumes the workflows of `app` (just launched, before any step) from `recoveries`;
    /// `fetch` reads logged atoms back from the store.
    pub(crate) fn resume(
        &mut self,
        app: &Path,
        recovered: &Recovered,
        feeds: &[(Path, u64)],
        fetch: &mut Fetch<'_>,
    ) -> Result<Resumed, Error> {
        let recoveries = &recovered.workflows;
        let mut resumed = Resumed::default();
        // First every producer: external generators continue after their logged atoms...
        for (stream, head) in feeds {
            let Some(s) = self.registry.get(stream, Kind::Stream).map(|e| e.target) else {
                continue;
            };
            if let Some(log) = self.streams.get_mut(s) {
                log.advance(head.saturating_sub(log.head()));
            }
            for unit in &self.units {
                if let Unit::Generator {
                    stream: gs,
                    source: Some(Source::Feeder(q)),
                    ..
                } = unit
                    && *gs == s
                    && let Ok(mut q) = q.lock()
                {
                    q.next = q.next.max(*head);
                }
            }
        }
        // ...and workflows take up their state and output offsets where they left off.
        for (path, recovery) in recoveries {
            if let Some(Unit::Workflow(w)) = self.workflow_mut(path) {
                if let Some(engine) = &mut w.engine {
                    engine.restore(recovery);
                }
                let out = w.out;
                if let Some(s) = self.streams.get_mut(out) {
                    s.advance(recovery.produced.saturating_sub(s.head()));
                }
            }
        }
        // Then every consumer's input.
        let mut generators = Vec::new();
        for (path, recovery) in recoveries {
            let Some(u) = self.registry.get(path, Kind::Workflow).map(|e| e.target) else {
                continue;
            };
            let Some(Unit::Workflow(w)) = self.units.get(u) else {
                continue;
            };
            let (stream, consumer) = w.input;
            let Some(input) = &recovery.input else {
                continue;
            };
            if self
                .streams
                .get(stream)
                .is_none_or(|s| s.path != input.stream)
            {
                resumed.not_replayable.push(path.clone());
                continue;
            }
            if !self.resume_reader((stream, consumer), input.next, fetch, &mut generators)? {
                resumed.not_replayable.push(path.clone());
            }
        }
        // Sequencers and splitters whose moves were logged read on where they stood.
        for (unit, input) in &recovered.movers {
            let Some((stream, consumer)) = self.mover_input(unit, &input.stream) else {
                continue;
            };
            if !self.resume_reader((stream, consumer), input.next, fetch, &mut generators)? {
                resumed.not_replayable.push(unit.clone());
            }
        }
        for g in generators {
            self.fast_forward(g);
        }
        if self.log_moves {
            self.fresh_movers(recovered, &mut resumed);
        }
        // Workflows of this app launched for the first time: where they start reading.
        let prefix = format!("{app}/");
        for (path, entry) in self.registry.entries.iter() {
            if entry.kind != Kind::Workflow
                || !path.as_str().starts_with(&prefix)
                || recoveries.iter().any(|(p, _)| p == path)
            {
                continue;
            }
            if let Some(Unit::Workflow(w)) = self.units.get(entry.target)
                && let Some(s) = self.streams.get(w.input.0)
            {
                let next = s.cursor(w.input.1);
                resumed.fresh.push((
                    path.clone(),
                    path.stable_id(),
                    InputPosition {
                        stream: s.path.clone(),
                        next,
                    },
                ));
            }
        }
        Ok(resumed)
    }

    /// Puts reader `consumer` of `stream` back at offset `next`: on a replayable generator
    /// (which `generators` collects, to fast-forward), or on a logged stream (refilled from the
    /// log). `false` if the stream is neither.
    fn resume_reader(
        &mut self,
        (stream, consumer): (usize, usize),
        next: u64,
        fetch: &mut Fetch<'_>,
        generators: &mut Vec<usize>,
    ) -> Result<bool, Error> {
        if let Some(g) = self.replayable_producer(stream) {
            self.streams[stream].resume(consumer, next);
            if !generators.contains(&g) {
                generators.push(g);
            }
            return Ok(true);
        }
        if self.streams[stream].decode.is_none() {
            return Ok(false);
        }
        self.refill(stream, next, fetch)?;
        self.streams[stream].resume(consumer, next);
        Ok(true)
    }

    /// The input of sequencer or splitter `unit` reading `stream`: (stream, consumer).
    fn mover_input(&self, unit: &Path, stream: &Path) -> Option<(usize, usize)> {
        let entry = self
            .registry
            .get(unit, Kind::Sequencer)
            .or_else(|| self.registry.get(unit, Kind::Splitter))?;
        let inputs: &[(usize, usize)] = match self.units.get(entry.target)? {
            Unit::Sequencer { inputs, .. } => inputs,
            Unit::Splitter { input, .. } => std::slice::from_ref(input),
            _ => return None,
        };
        inputs
            .iter()
            .copied()
            .find(|(s, _)| self.streams.get(*s).is_some_and(|l| &l.path == stream))
    }

    /// Inputs of sequencers and splitters read for the first time: where they start reading.
    fn fresh_movers(&self, recovered: &Recovered, resumed: &mut Resumed) {
        for unit in &self.units {
            let (path, inputs): (&Path, &[(usize, usize)]) = match unit {
                Unit::Sequencer { path, inputs, .. } => (path, inputs),
                Unit::Splitter { path, input, .. } => (path, std::slice::from_ref(input)),
                _ => continue,
            };
            for &(stream, consumer) in inputs {
                let Some(s) = self.streams.get(stream) else {
                    continue;
                };
                let known = recovered
                    .movers
                    .iter()
                    .any(|(u, i)| u == path && i.stream == s.path);
                let id = consumer_id(path, &s.path);
                if known || resumed.fresh.iter().any(|(_, i, _)| *i == id) {
                    continue;
                }
                let input = InputPosition {
                    stream: s.path.clone(),
                    next: s.cursor(consumer),
                };
                resumed.fresh.push((path.clone(), id, input));
            }
        }
    }

    fn workflow_mut(&mut self, path: &Path) -> Option<&mut Unit> {
        let u = self.registry.get(path, Kind::Workflow).map(|e| e.target)?;
        self.units.get_mut(u)
    }

    /// Puts the logged atoms of `stream` from offset `from` up to the oldest it holds back
    /// into it (a consumer resumes at `from`).
    fn refill(&mut self, stream: usize, from: u64, fetch: &mut Fetch<'_>) -> Result<(), Error> {
        let log = &mut self.streams[stream];
        let to = log.base();
        if from >= to {
            return Ok(());
        }
        let Some(decode) = log.decode else {
            return Ok(());
        };
        let bytes = fetch(&log.path, from, to)?;
        if bytes.len() as u64 != to - from {
            return Err(Error::Storage(StorageError::Backend(format!(
                "the log of {} holds {} atoms from offset {from}, {} were committed",
                log.path,
                bytes.len(),
                to - from
            ))));
        }
        let mut atoms = Vec::with_capacity(bytes.len());
        for (i, b) in bytes.iter().enumerate() {
            let atom = decode(b).map_err(|e| {
                Error::Storage(StorageError::Backend(format!(
                    "atom {} of {} cannot be read: {e}",
                    from + i as u64,
                    log.path
                )))
            })?;
            atoms.push(atom);
        }
        tracing::info!(stream = %log.path, from, atoms = atoms.len(), "atoms read back from the log, to replay");
        log.prepend(from, atoms);
        Ok(())
    }

    /// The generator unit producing `stream`, if its atoms can be produced again.
    fn replayable_producer(&self, stream: usize) -> Option<usize> {
        self.units.iter().position(|unit| {
            matches!(unit, Unit::Generator { stream: s, source: Some(Source::Atoms(_)), .. } if *s == stream)
        })
    }

    /// Skips the atoms of generator `g` that every consumer of its stream has committed.
    fn fast_forward(&mut self, g: usize) {
        let Some(Unit::Generator {
            stream,
            source: Some(Source::Atoms(iter)),
            ..
        }) = self.units.get_mut(g)
        else {
            return;
        };
        let Some(log) = self.streams.get_mut(*stream) else {
            return;
        };
        let (Some(min), head) = (log.min_cursor(), log.head()) else {
            return;
        };
        let mut skipped = 0;
        while head + skipped < min {
            if iter.next().is_none() {
                break;
            }
            skipped += 1;
        }
        log.advance(skipped);
        tracing::info!(stream = %log.path, atoms = skipped, "replayable source fast-forwarded");
    }
}
