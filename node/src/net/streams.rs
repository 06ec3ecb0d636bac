//! Streams between nodes, in the shell: serving pulls of exported streams (each pull also
//! acknowledges what the peer has, so the log can drop it), and pulling peers' streams into
//! local external generators.

use std::time::Instant;

use libp2p::PeerId;

use super::pulls::PULL_ATOMS;
use super::shell::{Sent, Shell, local_origin};
use super::wire::{self, ErrorCode, Frame, Request, RequestBody, Response, VERSION, WireError};
use crate::config::read;
use crate::store::Pulled;

/// The id under which `peer` reads `stream`: its row among the stream's readers.
pub(crate) fn reader_id(peer: &PeerId, stream: &str) -> u64 {
    let s = pods_sdk::Path::parse(stream).map_or(0, |p| p.stable_id());
    local_origin(peer, s)
}

impl Shell {
    /// Answers `peer`'s pull of `stream` from `from`: acknowledges what it has (below `from`),
    /// then sends what follows.
    pub(super) fn pull_in(
        &mut self,
        peer: &PeerId,
        name: &str,
        stream: &str,
        from: u64,
        max_atoms: u32,
    ) -> Response {
        if let Err(e) = self.allowed(name, &peer.to_string(), stream) {
            tracing::warn!(%peer, %stream, error = %e, "refused a pull");
            return Response::Refused(e);
        }
        let (horizon, max_bytes) = {
            let s = read(&self.settings);
            (s.limits.log_horizon_atoms, s.limits.max_message_bytes / 2)
        };
        let reader = reader_id(peer, stream);
        // An idle puller asks again from the same offset: nothing new to write.
        let moved = self.acked.get(&reader).is_none_or(|&at| from > at);
        let acked = if moved {
            self.node
                .system()
                .storage()
                .acknowledge(Some((reader, from)), stream, horizon)
        } else {
            Ok(())
        };
        if acked.is_ok() {
            self.acked.insert(reader, from);
        }
        if let Err(e) = acked {
            tracing::error!(%stream, error = %e, "cannot record a peer's position");
            return Response::Refused(WireError::new(ErrorCode::Unavailable, e.to_string()));
        }
        match self
            .streams
            .pull(stream, from, max_atoms.min(1024), max_bytes)
        {
            Ok(Pulled::Atoms(atoms)) => match self.atoms_out(name, stream, atoms) {
                Ok(atoms) => Response::Atoms(atoms),
                Err(e) => Response::Refused(e),
            },
            Ok(Pulled::Truncated { first }) => {
                tracing::warn!(%peer, %stream, from, first, "a peer pulled atoms the log no longer holds");
                Response::Refused(WireError::new(
                    ErrorCode::Truncated,
                    format!(
                        "{stream} holds atoms from {first} on; {from} to {} were dropped after the log horizon of {horizon} atoms",
                        first - 1
                    ),
                ))
            }
            Err(e) => Response::Refused(WireError::new(ErrorCode::Unavailable, e.to_string())),
        }
    }

    /// Applies the log horizon to every exported stream (also when no peer pulls).
    pub(super) fn trim_exports(&mut self) {
        let horizon = read(&self.settings).limits.log_horizon_atoms;
        for stream in &self.exported {
            if let Err(e) = self
                .node
                .system()
                .storage()
                .acknowledge(None, stream, horizon)
            {
                tracing::error!(%stream, error = %e, "cannot trim an exported stream's log");
            }
        }
    }

    /// Sends the pulls that are due, each from its generator's next offset.
    pub(super) fn pull_due(&mut self) {
        let now = Instant::now();
        for pull in self.pulls.due(now) {
            let into = self.pulls.mirrors()[pull.mirror].into.clone();
            let from = match self.node.system().feeder_next(&into) {
                Ok(n) => n,
                Err(e) => {
                    let why = format!(
                        "{into} cannot take the stream: {e}; fix the import's `into` in pods.toml and restart"
                    );
                    tracing::error!(error = %why, "an import has no generator to feed");
                    self.pulls.stop(pull.mirror, why);
                    continue;
                }
            };
            let Some((peer_id, _)) = self.by_name.get(&pull.peer) else {
                let e = WireError::new(ErrorCode::NotAllowed, "not a known peer");
                self.pulls.failed(pull.mirror, &e, now);
                continue;
            };
            let request = Request {
                version: VERSION,
                body: RequestBody::Pull {
                    stream: pull.stream,
                    from,
                    max_atoms: PULL_ATOMS,
                },
            };
            let frame = Frame::Bytes(wire::encode(&request));
            let rid = self.swarm.behaviour_mut().rr.send_request(peer_id, frame);
            self.batches.insert(rid, Sent::Pull(pull.mirror));
        }
    }

    /// Feeds what a pull brought to the mirror's generator.
    pub(super) fn pulled(&mut self, mirror: usize, response: Response) {
        let now = Instant::now();
        let Some(m) = self.pulls.mirrors().get(mirror) else {
            return;
        };
        let into = m.into.clone();
        match response {
            Response::Atoms(atoms) => {
                let mut fed = 0;
                for (offset, atom) in &atoms {
                    match self.node.system().feed_encoded(&into, *offset, atom) {
                        Ok(_) => fed += 1,
                        Err(e @ pods_sdk::Error::UndecodableAtom { .. }) => {
                            // Retrying cannot help: the peer sends what its log holds.
                            let why = format!(
                                "{e}; the peer's stream (or what its export's rule left of it, such as a redacted record) does not fit {into}'s type"
                            );
                            tracing::error!(%into, offset, error = %why, "an imported atom cannot be read; the import stops");
                            self.pulls.stop(mirror, why);
                            return;
                        }
                        Err(e) => {
                            // Full, or a gap: pull again later from the generator's next offset.
                            tracing::debug!(%into, offset, error = %e, "a pulled atom waits");
                            let e = WireError::new(ErrorCode::Unavailable, e.to_string());
                            self.pulls.failed(mirror, &e, now);
                            return;
                        }
                    }
                }
                self.pulls.fed(mirror, fed, now);
            }
            Response::Refused(e) if e.code == ErrorCode::TooLarge => {
                let why =
                    format!("{e}; raise limits.max_message_bytes here to at least the peer's");
                tracing::error!(%into, error = %why, "an imported stream's atoms do not fit");
                self.pulls.stop(mirror, why);
            }
            Response::Refused(e) => {
                if e.code == ErrorCode::Truncated {
                    tracing::error!(%into, error = %e, "an imported stream lost atoms at its peer; it stops here");
                } else {
                    tracing::debug!(%into, error = %e, "a pull was refused");
                }
                self.pulls.failed(mirror, &e, now);
            }
            Response::Replies(_) | Response::Erased(_) | Response::Rectified { .. } => {
                let e = WireError::new(ErrorCode::Malformed, "not atoms, in answer to a pull");
                self.pulls.failed(mirror, &e, now);
            }
        }
        self.pull_due();
    }
}
