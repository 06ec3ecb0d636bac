//! Resuming workflows from what they committed in an earlier run: their state and step count,
//! and, where their input is replayable (a generator's stream of atoms or a range), their input
//! position, with the generator fast-forwarded past what every consumer has committed.

use super::{Core, Source, Unit};
use crate::builder::spec::Kind;
use crate::path::Path;
use crate::storage::Recovery;

/// What the workflows of `app` committed in an earlier run, as `storage` has it.
pub(crate) fn recoveries(
    app: &crate::builder::App,
    storage: &mut dyn crate::storage::Storage,
) -> Result<Vec<(Path, Recovery)>, crate::error::Error> {
    let mut out = Vec::new();
    for w in &app.elements.workflows {
        if let Some(r) = storage.recover(&w.path, w.path.stable_id())? {
            out.push((w.path.clone(), r));
        }
    }
    Ok(out)
}

/// Logs what resuming found.
pub(crate) fn report(recoveries: &[(Path, Recovery)], not_replayable: &[Path]) {
    for (path, r) in recoveries {
        tracing::info!(workflow = %path, step = r.step, values = r.values.len(), "resumed");
    }
    for path in not_replayable {
        tracing::warn!(workflow = %path, "its input is not replayable: state resumed, input read from its current head");
    }
}

impl Core {
    /// Resumes the workflows of `recoveries` (just launched, before any step). Returns the
    /// workflows whose input is not replayable: their state is restored, but their input is
    /// read from its current head.
    pub(crate) fn resume(&mut self, recoveries: &[(Path, Recovery)]) -> Vec<Path> {
        let mut not_replayable = Vec::new();
        let mut generators = Vec::new();
        for (path, recovery) in recoveries {
            let Some(u) = self.registry.get(path, Kind::Workflow).map(|e| e.target) else {
                continue;
            };
            let Some(Unit::Workflow(w)) = self.units.get_mut(u) else {
                continue;
            };
            if let Some(engine) = &mut w.engine {
                engine.restore(recovery);
            }
            let (stream, consumer) = w.input;
            let Some(input) = &recovery.input else {
                continue;
            };
            let producer = self.replayable_producer(stream);
            let same_stream = self
                .streams
                .get(stream)
                .is_some_and(|s| s.path == input.stream);
            match producer {
                Some(g) if same_stream => {
                    if let Some(s) = self.streams.get_mut(stream) {
                        s.resume(consumer, input.next);
                    }
                    if !generators.contains(&g) {
                        generators.push(g);
                    }
                }
                _ => not_replayable.push(path.clone()),
            }
        }
        for g in generators {
            self.fast_forward(g);
        }
        not_replayable
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
