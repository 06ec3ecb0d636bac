//! Streams that cross the system's edge without a typed handle: a stream exported to other
//! processes (its atoms logged, as for a local consumer), and atoms fed to an external
//! generator as encoded bytes at a given offset (a stream mirrored from another process).

use std::sync::{Arc, Mutex};

use super::{Core, Source, Unit};
use crate::batch::Decode;
use crate::builder::spec::Kind;
use crate::error::Error;
use crate::path::Path;
use crate::runtime::units::FeederQueue;
use crate::runtime::units::push_batch;

impl Core {
    /// Marks the stream at `path`, which a workflow produces, as read from outside: a store
    /// that logs atoms logs it from now on, as it does a stream with a local consumer.
    pub(crate) fn export_stream(&mut self, path: &str) -> Result<(), Error> {
        let (path, entry) = self.entry_of(path, Kind::Stream)?;
        let stream = entry.target;
        let producer = self.units.iter().find_map(|u| match u {
            Unit::Workflow(w) if w.out == stream => Some(w),
            _ => None,
        });
        let Some(w) = producer else {
            return Err(Error::WrongKind {
                path: path.to_string(),
                expected: "stream a workflow produces",
                found: "stream of a generator, sequencer or splitter",
            });
        };
        w.log_output
            .store(true, std::sync::atomic::Ordering::Release);
        self.exported.insert(stream);
        Ok(())
    }

    /// The offset the external generator at `path` gives its next atom (atoms fed in earlier
    /// runs count, when the store logs them).
    pub(crate) fn feeder_next(&self, path: &str) -> Result<u64, Error> {
        let (path, queue, _) = self.feeder_queue(path)?;
        let q = queue.lock().map_err(|_| Error::FeederSealed {
            path: path.to_string(),
        })?;
        Ok(q.next)
    }

    /// What feeding encoded atoms to the external generator at `path` needs; the feeding
    /// itself ([`FeedTarget::feed`]) happens without the system's lock (it wakes the system).
    pub(crate) fn feed_target(&self, path: &str) -> Result<FeedTarget, Error> {
        let (path, queue, stream) = self.feeder_queue(path)?;
        let decode = self
            .streams
            .get(stream)
            .and_then(|s| s.decode)
            .ok_or_else(|| Error::WrongKind {
                path: path.to_string(),
                expected: "external generator",
                found: "generator",
            })?;
        Ok(FeedTarget {
            path,
            queue,
            decode,
        })
    }

    fn feeder_queue(&self, path: &str) -> Result<(Path, Arc<Mutex<FeederQueue>>, usize), Error> {
        let path = Path::parse(path)?;
        let entry =
            self.registry
                .get(&path, Kind::Generator)
                .ok_or_else(|| Error::UnknownPath {
                    path: path.to_string(),
                    referrer: "the host".to_owned(),
                })?;
        match self.units.get(entry.target) {
            Some(Unit::Generator {
                source: Some(Source::Feeder(q)),
                stream,
                ..
            }) => Ok((path, q.clone(), *stream)),
            _ => Err(Error::WrongKind {
                path: path.to_string(),
                expected: "external generator",
                found: "generator",
            }),
        }
    }
}

/// An external generator fed with encoded atoms.
pub(crate) struct FeedTarget {
    path: Path,
    queue: Arc<Mutex<FeederQueue>>,
    decode: Decode,
}

impl FeedTarget {
    /// Feeds atom `offset`, given as its encoding (as stream logs hold it). An offset already
    /// taken is skipped (`Ok(false)`), so the same atom fed again after a restart is taken
    /// once; an offset past the next leaves a gap and is refused. The atom may be empty (its
    /// events withheld by the node it comes from): it still takes its offset, so that the
    /// offsets stay the source's.
    pub(crate) fn feed(&self, offset: u64, atom: &[u8]) -> Result<bool, Error> {
        let path = &self.path;
        let batch = (self.decode)(atom).map_err(|reason| Error::UndecodableAtom {
            path: path.to_string(),
            reason,
        })?;
        push_batch(path, &self.queue, Some(offset), batch, Some(atom))
    }
}
