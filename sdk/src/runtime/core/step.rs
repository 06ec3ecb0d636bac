//! A unit's step in three parts: take the input ([`Core::begin`]), do the work
//! ([`Work::run`], outside the core), release the results ([`Core::finish`]).

use super::work::{Done, MoveLog, Work};
use super::{Core, Source, Unit};
use crate::path::Path;
use crate::runtime::stream::{End, Item};
use crate::storage::InputPosition;

/// What [`Core::begin`] did.
pub(crate) enum Begun {
    /// The unit could not take a step.
    Idle,
    /// The step was taken inside the core (a sequencer's move, an end marker, a feeder's atom).
    Done,
    /// Work to run outside the core, then to give to [`Core::finish`].
    Work(Work),
}

impl Core {
    /// Takes unit `u`'s next input. `pick(n)` chooses among `n` ready alternatives (the
    /// sequencer's inputs; a workflow's input, asks and replies).
    pub(crate) fn begin(&mut self, u: usize, pick: &mut dyn FnMut(usize) -> usize) -> Begun {
        if !self.runnable(u) {
            return Begun::Idle;
        }
        match &mut self.units[u] {
            Unit::Generator {
                stream,
                source,
                closed,
            } => {
                let stream = *stream;
                match source.take() {
                    Some(Source::Feeder(q)) => {
                        let next = match q.lock() {
                            Ok(mut queue) => match queue.atoms.pop_front() {
                                Some(a) => Some(Some(a)),
                                None if queue.sealed => Some(None),
                                None => None,
                            },
                            Err(_) => Some(None),
                        };
                        *source = Some(Source::Feeder(q));
                        match next {
                            Some(Some(atom)) => self.streams[stream].push_fed(atom),
                            Some(None) => {
                                *closed = true;
                                self.streams[stream].close(End::Seal);
                            }
                            None => return Begun::Idle,
                        }
                        Begun::Done
                    }
                    Some(s) => Begun::Work(Work::Generate(s)),
                    None => Begun::Idle,
                }
            }
            Unit::Sequencer { inputs, .. } => {
                let inputs = inputs.clone();
                let ready: Vec<usize> = (0..inputs.len())
                    .filter(|&i| self.ready(inputs[i]))
                    .collect();
                if ready.is_empty() {
                    return Begun::Idle;
                }
                let choice = ready[pick(ready.len()).min(ready.len() - 1)];
                let Unit::Sequencer {
                    inputs,
                    ended,
                    out,
                    path,
                } = &mut self.units[u]
                else {
                    return Begun::Idle;
                };
                let (stream, consumer) = inputs[choice];
                let out = *out;
                match self.streams[stream].take(consumer) {
                    Some(Item::Atom(atom)) if self.log_moves => {
                        // Logged before its consumers see it: the store keeps the choice.
                        let log = MoveLog {
                            unit: path.clone(),
                            input: InputPosition {
                                stream: self.streams[stream].path.clone(),
                                next: self.streams[stream].cursor(consumer),
                            },
                            outs: vec![(self.streams[out].path.clone(), self.streams[out].head())],
                        };
                        return Begun::Work(Work::Move(log, atom));
                    }
                    Some(Item::Atom(atom)) => self.streams[out].push(atom),
                    Some(Item::End(End::Seal)) => {
                        *ended += 1;
                        if *ended == inputs.len() {
                            self.streams[out].close(End::Seal);
                        }
                    }
                    Some(Item::End(End::Error(m))) => self.streams[out].close(End::Error(m)),
                    None => {}
                }
                Begun::Done
            }
            Unit::Splitter {
                path,
                input,
                router,
                outs,
                ended,
                pending,
            } => {
                if !pending.is_empty()
                    && let Ok(mut r) = router.lock()
                {
                    for predicate in pending.drain(..) {
                        r.add(predicate);
                    }
                }
                match self.streams[input.0].take(input.1) {
                    Some(Item::Atom(atom)) => {
                        let log = self.log_moves.then(|| MoveLog {
                            unit: path.clone(),
                            input: InputPosition {
                                stream: self.streams[input.0].path.clone(),
                                next: self.streams[input.0].cursor(input.1),
                            },
                            outs: outs
                                .iter()
                                .map(|o| (self.streams[*o].path.clone(), self.streams[*o].head()))
                                .collect(),
                        });
                        Begun::Work(Work::Split(router.clone(), atom, log))
                    }
                    Some(Item::End(end)) => {
                        for out in outs.iter() {
                            self.streams[*out].close(end.clone());
                        }
                        *ended = Some(end);
                        Begun::Done
                    }
                    None => Begun::Idle,
                }
            }
            Unit::Workflow(_) => self.begin_workflow(u, pick),
        }
    }

    fn begin_workflow(&mut self, u: usize, pick: &mut dyn FnMut(usize) -> usize) -> Begun {
        #[derive(Clone, Copy)]
        enum Choice {
            Input,
            Asks,
            Replies,
        }
        let Unit::Workflow(w) = &self.units[u] else {
            return Begun::Idle;
        };
        let mut choices = [Choice::Input; 3];
        let mut count = 0;
        for (available, choice) in [
            (self.takes_input(w), Choice::Input),
            (!w.asks.is_empty(), Choice::Asks),
            (!w.replies.is_empty(), Choice::Replies),
        ] {
            if available {
                choices[count] = choice;
                count += 1;
            }
        }
        if count == 0 {
            return Begun::Idle;
        }
        let choice = choices[pick(count).min(count - 1)];
        let gate = self.gate.clone();
        let Unit::Workflow(w) = &mut self.units[u] else {
            return Begun::Idle;
        };
        match choice {
            Choice::Input => {
                let (stream, consumer) = w.input;
                let log = &mut self.streams[stream];
                match log.take(consumer) {
                    Some(Item::Atom(atom)) => {
                        let position = InputPosition {
                            stream: log.path.clone(),
                            next: log.cursor(consumer),
                        };
                        let mut atoms = vec![(atom, position)];
                        let probe = w.probation > 0;
                        w.probation = w.probation.saturating_sub(1);
                        // Atoms queued behind it commit with it (group commit).
                        while !probe && atoms.len() < self.group && log.has_atom(consumer) {
                            let Some(Item::Atom(atom)) = log.take(consumer) else {
                                break;
                            };
                            let position = InputPosition {
                                stream: log.path.clone(),
                                next: log.cursor(consumer),
                            };
                            atoms.push((atom, position));
                        }
                        match w.engine.take() {
                            Some(e) => Begun::Work(Work::Atoms(e, atoms, gate, probe)),
                            None => Begun::Idle,
                        }
                    }
                    Some(Item::End(End::Seal)) => {
                        w.input_ended = true;
                        self.maybe_seal(u);
                        Begun::Done
                    }
                    Some(Item::End(End::Error(m))) => {
                        let message = format!("input {} failed: {m}", log.path);
                        self.fail(u, message);
                        Begun::Done
                    }
                    None => Begun::Idle,
                }
            }
            Choice::Asks => {
                let Some((node, asks)) = next_asks(&mut w.asks) else {
                    return Begun::Idle;
                };
                match w.engine.take() {
                    Some(e) => Begun::Work(Work::Asks(e, node, asks, gate)),
                    None => {
                        w.asks.push_front((node, asks));
                        Begun::Idle
                    }
                }
            }
            Choice::Replies => match (w.replies.is_empty(), w.engine.take()) {
                (false, Some(e)) => match w.replies.pop_front() {
                    Some(replies) => Begun::Work(Work::Replies(e, replies, gate)),
                    None => Begun::Idle,
                },
                (_, e) => {
                    w.engine = e;
                    Begun::Idle
                }
            },
        }
    }

    /// Releases what unit `u`'s work produced.
    pub(crate) fn finish(&mut self, u: usize, done: Done) {
        self.steps += 1;
        match (done, &mut self.units[u]) {
            (Done::Moved(moved), Unit::Sequencer { out, .. }) => match moved {
                Ok(atom) => self.streams[*out].push(atom),
                Err(message) => {
                    tracing::error!(unit = u, error = %message, "a sequencer's move was not logged");
                    self.streams[*out].close(End::Error(message));
                }
            },
            (
                Done::Generated(s, next),
                Unit::Generator {
                    stream,
                    source,
                    closed,
                },
            ) => {
                *source = Some(s);
                match next {
                    Some(atom) => self.streams[*stream].push(atom),
                    None => {
                        *closed = true;
                        self.streams[*stream].close(End::Seal);
                    }
                }
            }
            (
                Done::Split(parts),
                Unit::Splitter {
                    outs, ended, input, ..
                },
            ) => match parts {
                Ok(parts) => {
                    for (part, out) in parts.into_iter().zip(outs.iter()) {
                        if let Some(part) = part {
                            self.streams[*out].push(part.into());
                        }
                    }
                }
                Err(message) => {
                    let end = End::Error(message);
                    for out in outs.iter() {
                        self.streams[*out].close(end.clone());
                    }
                    *ended = Some(end);
                    // It reads nothing more: its input keeps no atoms for it.
                    if let Some(s) = self.streams.get_mut(input.0) {
                        s.drop_consumer(input.1);
                    }
                }
            },
            (
                Done::Stepped {
                    engine,
                    denied,
                    opened,
                    refused,
                    released,
                    result,
                },
                Unit::Workflow(w),
            ) => {
                w.denied += denied;
                w.pending = engine.pending();
                w.unflushed = engine.unflushed();
                w.engine = Some(engine);
                // Requests the step answered itself, in the order it took them (the usual
                // case), are not kept as open only to be dropped again when the replies leave.
                if !answers_all(&opened, &released) {
                    w.open.extend(opened);
                }
                if !refused.is_empty() {
                    self.route_replies(refused);
                }
                for out in released {
                    self.released(u, out);
                }
                match result {
                    Some(Err(e)) => self.fail(u, e.message),
                    Some(Ok(())) | None => self.maybe_seal(u),
                }
            }
            _ => tracing::error!(unit = u, "finished work of another kind of unit"),
        }
    }
}

/// Whether `released` holds exactly one reply to each request of `opened`, in order.
fn answers_all(
    opened: &[(crate::portal::AskId, super::OpenRequest)],
    released: &[crate::runtime::engine::StepOutput],
) -> bool {
    let mut replies = released.iter().flat_map(|o| &o.replies);
    opened
        .iter()
        .all(|(id, _)| replies.next().is_some_and(|r| r.id == *id))
        && replies.next().is_none()
}

/// Most asks one replier step takes when it merges queued batches.
const MERGED_ASKS: usize = 4096;

/// The next batch of asks for one replier node: the first queued batch, merged with the
/// batches queued behind it for the same node from other askers (up to [`MERGED_ASKS`]), so
/// many askers cost the replier one step. Batches of one asker stay apart, so that each of its
/// steps gets its replies in a batch of their own; asks from other processes, whose replies
/// leave one by one, merge with any.
fn next_asks(
    queue: &mut std::collections::VecDeque<(usize, Vec<crate::portal::AskMsg>)>,
) -> Option<(usize, Vec<crate::portal::AskMsg>)> {
    let (node, mut asks) = queue.pop_front()?;
    let mut askers: std::collections::HashSet<Path> = local_askers(&asks).collect();
    while let Some((next, batch)) = queue.front() {
        let mergeable = *next == node
            && asks.len() + batch.len() <= MERGED_ASKS
            && local_askers(batch).all(|p| !askers.contains(&p));
        if !mergeable {
            break;
        }
        let Some((_, batch)) = queue.pop_front() else {
            break;
        };
        askers.extend(local_askers(&batch));
        asks.extend(batch);
    }
    Some((node, asks))
}

/// The asking workflows of a batch of asks (not other processes), each once per run of asks
/// from it (a batch usually comes from one asker).
fn local_askers(batch: &[crate::portal::AskMsg]) -> impl Iterator<Item = Path> + '_ {
    let mut last: Option<&Path> = None;
    let local = batch.iter().filter(|a| !a.from.is_external());
    local.filter_map(move |a| {
        let path = &a.from.workflow;
        if last.is_some_and(|l| l == path) {
            return None;
        }
        last = Some(path);
        Some(path.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::{AskId, Origin, ReplyMsg};
    use crate::runtime::core::OpenRequest;
    use crate::runtime::engine::StepOutput;

    fn origin() -> Origin {
        Origin {
            workflow: Path::placeholder("/a/workflows/asker"),
            partition: 0,
            task: 1,
        }
    }

    fn opened(seqs: &[u32]) -> Vec<(AskId, OpenRequest)> {
        let open = |_| OpenRequest {
            from: origin(),
            portal: Path::placeholder("/a/portals/p"),
            envelope: None,
        };
        seqs.iter()
            .map(|s| (AskId::numbered(*s), open(*s)))
            .collect()
    }

    fn released(batches: &[&[u32]]) -> Vec<StepOutput> {
        let reply = |seq: u32| ReplyMsg {
            id: AskId::numbered(seq),
            to: origin(),
            reply: Ok(Box::new(seq)),
            envelope: None,
        };
        batches
            .iter()
            .map(|seqs| StepOutput {
                output: None,
                asks: Vec::new(),
                replies: seqs.iter().map(|s| reply(*s)).collect(),
            })
            .collect()
    }

    #[test]
    fn requests_answered_in_order_by_their_own_step_need_not_stay_open() {
        assert!(answers_all(
            &opened(&[0, 1, 2]),
            &released(&[&[0, 1], &[2]])
        ));
        assert!(answers_all(&opened(&[]), &released(&[])));
    }

    #[test]
    fn requests_left_unanswered_or_answered_otherwise_stay_open() {
        let cases: [(&[u32], &[&[u32]]); 5] = [
            (&[0, 1, 2], &[&[0, 1]]),
            (&[0, 1], &[&[1, 0]]),
            (&[0, 1], &[&[0, 1, 7]]),
            (&[0, 0], &[&[0]]),
            (&[], &[&[7]]),
        ];
        for (open, out) in cases {
            assert!(
                !answers_all(&opened(open), &released(out)),
                "{open:?} {out:?}"
            );
        }
    }
}
