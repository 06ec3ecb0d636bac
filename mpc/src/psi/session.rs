//! The PSI-cardinality state machine of one participant.

use std::collections::HashSet;
use std::fmt;

use elliptic_curve::Group;
use elliptic_curve::ff::Field;
use k256::{ProjectivePoint, Scalar};
use rand::CryptoRng;

use super::group::{POINT_BYTES, decode_points, exponentiate_sorted, hash_to_point};
use super::message::{EncodedSet, PsiBody, PsiMessage};
use crate::error::{Error, Result};
use crate::ids::{ParticipantId, Round, SessionId};
use crate::protocol::{Header, MAX_PARTICIPANTS, Outgoing};

/// Configuration of one PSI-cardinality session.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PsiConfig {
    /// The session id agreed by all participants.
    pub session: SessionId,
    /// All participants (any order; the ring follows the sorted order).
    pub participants: Vec<ParticipantId>,
    /// This participant.
    pub me: ParticipantId,
    /// The participant that compares the blinded sets and announces the count.
    pub receiver: ParticipantId,
    /// Largest set any participant may send; larger ones are refused.
    pub max_set_size: usize,
}

/// One participant's state in a PSI-cardinality session.
pub struct PsiSession {
    session: SessionId,
    participants: Vec<ParticipantId>,
    me: ParticipantId,
    my_pos: usize,
    receiver_pos: usize,
    max_set_size: usize,
    input: Vec<Vec<u8>>,
    key: Option<Scalar>,
    seen: HashSet<(ParticipantId, u8, Option<ParticipantId>)>,
    finals: Vec<Option<Vec<[u8; POINT_BYTES]>>>,
    cardinality: Option<u64>,
}

impl fmt::Debug for PsiSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PsiSession")
            .field("session", &self.session)
            .field("me", &self.me)
            .field("cardinality", &self.cardinality)
            .finish_non_exhaustive()
    }
}

impl PsiSession {
    /// A participant with its private set (duplicates are removed).
    pub fn new(config: &PsiConfig, set: Vec<Vec<u8>>) -> Result<Self> {
        let mut participants = config.participants.clone();
        participants.sort_unstable();
        let m = participants.len();
        if participants.windows(2).any(|w| w[0] == w[1]) || !(2..=MAX_PARTICIPANTS).contains(&m) {
            return Err(Error::InvalidConfig(format!(
                "need 2..={MAX_PARTICIPANTS} distinct participants"
            )));
        }
        let my_pos = participants
            .binary_search(&config.me)
            .map_err(|_| Error::InvalidConfig("this node is not a participant".into()))?;
        let receiver_pos = participants
            .binary_search(&config.receiver)
            .map_err(|_| Error::InvalidConfig("the receiver is not a participant".into()))?;
        let mut input = set;
        input.sort_unstable();
        input.dedup();
        if input.len() > config.max_set_size {
            return Err(Error::InvalidConfig("own set exceeds max_set_size".into()));
        }
        Ok(PsiSession {
            session: config.session,
            finals: vec![None; m],
            participants,
            me: config.me,
            my_pos,
            receiver_pos,
            max_set_size: config.max_set_size,
            input,
            key: None,
            seen: HashSet::new(),
            cardinality: None,
        })
    }

    fn m(&self) -> usize {
        self.participants.len()
    }

    fn at(&self, pos: usize) -> Result<ParticipantId> {
        self.participants
            .get(pos % self.m())
            .copied()
            .ok_or(Error::InvalidState("position"))
    }

    fn position(&self, p: ParticipantId) -> Option<usize> {
        self.participants.binary_search(&p).ok()
    }

    /// Blinds this participant's set and sends it on, with randomness from the OS.
    pub fn start(&mut self) -> Result<Vec<Outgoing<PsiMessage>>> {
        let mut rng = crate::random::os_rng()?;
        self.start_with_rng(&mut rng)
    }

    /// Blinds this participant's set and sends it on, with the given generator.
    pub fn start_with_rng<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Vec<Outgoing<PsiMessage>>> {
        if self.key.is_some() {
            return Err(Error::InvalidState("already started"));
        }
        let key = loop {
            let k = <Scalar as Field>::random(&mut *rng);
            if !bool::from(k.is_zero()) {
                break k;
            }
        };
        let points = self
            .input
            .iter()
            .map(|x| hash_to_point(x))
            .collect::<Result<Vec<_>>>()?;
        let blinded = exponentiate_sorted(&points, &key);
        self.key = Some(key);
        self.forward(self.me, 1, blinded)
    }

    /// Routes a set that has `hops` keys applied: on around the ring, or to the receiver.
    fn forward(
        &mut self,
        origin: ParticipantId,
        hops: usize,
        set: Vec<[u8; POINT_BYTES]>,
    ) -> Result<Vec<Outgoing<PsiMessage>>> {
        if hops < self.m() {
            let to = self.at(self.my_pos + 1)?;
            let hops = u8::try_from(hops).map_err(|_| Error::InvalidState("too many hops"))?;
            let body = PsiBody::Pass {
                origin,
                hops,
                set: EncodedSet(set),
            };
            return Ok(vec![self.message(to, Round(hops), body)]);
        }
        if self.my_pos == self.receiver_pos {
            let pos = self.position(origin).ok_or(Error::NotParticipant(origin))?;
            if let Some(slot) = self.finals.get_mut(pos) {
                *slot = Some(set);
            }
            return self.try_count();
        }
        let to = self.at(self.receiver_pos)?;
        Ok(vec![self.message(
            to,
            Round::REVEAL,
            PsiBody::Final {
                origin,
                set: EncodedSet(set),
            },
        )])
    }

    fn message(&self, to: ParticipantId, round: Round, body: PsiBody) -> Outgoing<PsiMessage> {
        let header = Header {
            session: self.session,
            from: self.me,
            to,
            round,
        };
        Outgoing {
            to,
            message: PsiMessage { header, body },
        }
    }

    fn try_count(&mut self) -> Result<Vec<Outgoing<PsiMessage>>> {
        let Some(sets) = self
            .finals
            .iter()
            .map(Option::as_ref)
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(Vec::new());
        };
        let mut common: HashSet<&[u8; POINT_BYTES]> =
            sets.first().map(|s| s.iter().collect()).unwrap_or_default();
        for s in sets.iter().skip(1) {
            let other: HashSet<&[u8; POINT_BYTES]> = s.iter().collect();
            common.retain(|x| other.contains(x));
        }
        let cardinality = common.len() as u64;
        self.cardinality = Some(cardinality);
        let mut out = Vec::new();
        for pos in 0..self.m() {
            if pos != self.my_pos {
                out.push(self.message(
                    self.at(pos)?,
                    Round::RESULT,
                    PsiBody::Result { cardinality },
                ));
            }
        }
        Ok(out)
    }

    /// Handles a message delivered by the transport from the authenticated peer `from`.
    /// On error the message is refused and the state is unchanged.
    pub fn handle(
        &mut self,
        from: ParticipantId,
        msg: PsiMessage,
    ) -> Result<Vec<Outgoing<PsiMessage>>> {
        let h = &msg.header;
        if h.session != self.session {
            return Err(Error::ForeignSession {
                expected: self.session,
                got: h.session,
            });
        }
        let from_pos = self.position(from).ok_or(Error::NotParticipant(from))?;
        if h.from != from {
            return Err(Error::SenderMismatch {
                claimed: h.from,
                transport: from,
            });
        }
        if h.to != self.me {
            return Err(Error::WrongRecipient(h.to));
        }
        if self.seen.contains(&msg.replay_key()) {
            return Err(Error::Replayed {
                from,
                round: h.round,
            });
        }
        let m = self.m();
        let key = msg.replay_key();
        let out = match msg.body {
            PsiBody::Pass { origin, hops, set } => {
                let Some(k) = self.key else {
                    return Err(Error::Unexpected {
                        from,
                        reason: "set arrived before this participant started",
                    });
                };
                let origin_pos = self.position(origin).ok_or(Error::NotParticipant(origin))?;
                if (from_pos + 1) % m != self.my_pos {
                    return Err(Error::Unexpected {
                        from,
                        reason: "sets come only from the ring predecessor",
                    });
                }
                let expected = (from_pos + m - origin_pos) % m + 1;
                if usize::from(hops) != expected || expected >= m || h.round != Round(hops) {
                    return Err(Error::Unexpected {
                        from,
                        reason: "wrong hop count for this origin",
                    });
                }
                let points = self.parse(&set)?;
                let blinded = exponentiate_sorted(&points, &k);
                self.forward(origin, expected + 1, blinded)?
            }
            PsiBody::Final { origin, set } => {
                let origin_pos = self.position(origin).ok_or(Error::NotParticipant(origin))?;
                if self.my_pos != self.receiver_pos || h.round != Round::REVEAL {
                    return Err(Error::Unexpected {
                        from,
                        reason: "final sets go to the receiver",
                    });
                }
                if (origin_pos + m - 1) % m != from_pos {
                    return Err(Error::Unexpected {
                        from,
                        reason: "final set from the wrong participant",
                    });
                }
                self.parse(&set)?;
                if let Some(slot) = self.finals.get_mut(origin_pos) {
                    *slot = Some(set.0);
                }
                self.try_count()?
            }
            PsiBody::Result { cardinality } => {
                if from_pos != self.receiver_pos || h.round != Round::RESULT {
                    return Err(Error::Unexpected {
                        from,
                        reason: "only the receiver announces the result",
                    });
                }
                self.cardinality = Some(cardinality);
                Vec::new()
            }
        };
        self.seen.insert(key);
        Ok(out)
    }

    /// Checks size, order and validity of a received set and decodes its points.
    fn parse(&self, set: &EncodedSet) -> Result<Vec<ProjectivePoint>> {
        if set.0.len() > self.max_set_size {
            return Err(Error::LengthMismatch {
                expected: self.max_set_size,
                got: set.0.len(),
            });
        }
        if set.0.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Malformed("set not sorted or has duplicates".into()));
        }
        let points =
            decode_points(set.0.as_flattened()).ok_or(Error::NonCanonical("curve point"))?;
        if points.iter().any(|p| bool::from(p.is_identity())) {
            return Err(Error::NonCanonical("curve point"));
        }
        Ok(points)
    }

    /// Decodes CBOR bytes and handles the message.
    pub fn handle_bytes(
        &mut self,
        from: ParticipantId,
        bytes: &[u8],
    ) -> Result<Vec<Outgoing<PsiMessage>>> {
        self.handle(from, PsiMessage::decode(bytes)?)
    }

    /// The size of the intersection, once known.
    pub fn cardinality(&self) -> Option<u64> {
        self.cardinality
    }
}
