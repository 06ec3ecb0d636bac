//! The secure-sum state machine of one participant.

use std::fmt;

use k256::Scalar;
use rand::CryptoRng;

use crate::error::{Error, Result};
use crate::field::{Element, Fp, Vector};
use crate::ids::{ParticipantId, SessionId, ShareIndex};
use crate::protocol::config::{Layout, Mode, Release, SumConfig, check_positions};
use crate::protocol::engine::{Engine, Partial, Sent, SumOutput};
use crate::protocol::message::{Header, Outgoing, SumBody, SumMessage};
use crate::sharing::verifiable::{self, DealContext};
use crate::sharing::{additive, shamir};

enum Inner {
    Fast {
        input: Vec<Fp>,
        engine: Engine<Fp>,
    },
    Verifiable {
        input: Vec<Scalar>,
        engine: Engine<Scalar>,
    },
}

/// One participant's state in a secure sum of vectors.
///
/// Round 1 ([`SecureSum::start`]): the participant shares its input vector and sends each
/// other participant its share. Round 2: once it holds a share from every dealer, it adds
/// them up and sends this partial sum to the result receivers. A receiver reconstructs the
/// sum from n partial sums (additive mode) or from any t (Shamir modes); in Shamir modes every
/// further partial sum is checked against the others. Messages may arrive in any order,
/// including before `start`.
pub struct SecureSum {
    lay: Layout,
    mode: Mode,
    started: bool,
    inner: Inner,
}

impl fmt::Debug for SecureSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureSum")
            .field("session", &self.lay.session)
            .field("me", &self.lay.me)
            .field("mode", &self.mode)
            .field("started", &self.started)
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl SecureSum {
    /// A participant with its private `input` (length `config.len`). Values must lie in the
    /// field's centered range: ±(2^60 − 1) in the fast modes; any `i64` in verifiable mode.
    /// Sums are exact while their magnitude stays below 2^60 (fast) or 2^127 (verifiable).
    pub fn new(config: &SumConfig, input: &[i64]) -> Result<Self> {
        let lay = Layout::new(config)?;
        if input.len() != lay.len {
            return Err(Error::LengthMismatch {
                expected: lay.len,
                got: input.len(),
            });
        }
        let release = match config.release {
            Release::Immediate => Some(None),
            Release::OnRequest => None,
        };
        let inner = match config.mode {
            Mode::Additive | Mode::Shamir { .. } => Inner::Fast {
                input: input
                    .iter()
                    .map(|v| Fp::encode_i64(*v))
                    .collect::<Result<_>>()?,
                engine: Engine::new(lay.n, release),
            },
            Mode::Verifiable { .. } => Inner::Verifiable {
                input: input
                    .iter()
                    .map(|v| Scalar::encode_i64(*v))
                    .collect::<Result<_>>()?,
                engine: Engine::new(lay.n, release),
            },
        };
        Ok(SecureSum {
            lay,
            mode: config.mode,
            started: false,
            inner,
        })
    }

    /// The session this state machine belongs to.
    pub fn session(&self) -> SessionId {
        self.lay.session
    }

    /// Deals this participant's shares, with randomness from the operating system.
    pub fn start(&mut self) -> Result<Vec<Outgoing<SumMessage>>> {
        let mut rng = crate::random::os_rng()?;
        self.start_with_rng(&mut rng)
    }

    /// Deals this participant's shares with the given cryptographically secure generator.
    pub fn start_with_rng<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Vec<Outgoing<SumMessage>>> {
        if self.started {
            return Err(Error::InvalidState("already started"));
        }
        let lay = &self.lay;
        let mut out = Vec::with_capacity(lay.n);
        let sent = match &mut self.inner {
            Inner::Fast { input, engine } => {
                let mut shares = match self.mode {
                    Mode::Additive => additive::deal(input, lay.n, lay.my_pos, rng),
                    _ => shamir::deal(input, lay.t, lay.n, rng),
                };
                let own = std::mem::take(
                    shares
                        .get_mut(lay.my_pos)
                        .ok_or(Error::InvalidState("position"))?,
                );
                for (pos, share) in shares.into_iter().enumerate() {
                    if pos != lay.my_pos {
                        let body = SumBody::FastShare {
                            shares: Vector(share),
                        };
                        out.push(message(lay, pos, body)?);
                    }
                }
                let sent = engine.accept_share(lay, lay.my_pos, own, None)?;
                fast_partials(lay, sent)?
            }
            Inner::Verifiable { input, engine } => {
                let ctx = DealContext {
                    session: lay.session,
                    dealer: lay.me,
                };
                let deal = verifiable::deal(&ctx, input, lay.t, lay.n, rng)?;
                let fingerprint = deal.public.fingerprint();
                let mut own = Vec::new();
                for (pos, (mut share, salt)) in deal.shares.into_iter().zip(deal.salts).enumerate()
                {
                    if pos == lay.my_pos {
                        share.truncate(lay.len);
                        own = share;
                    } else {
                        let body = SumBody::VerifiableShare {
                            shares: Vector(share),
                            salt,
                            public: deal.public.clone(),
                        };
                        out.push(message(lay, pos, body)?);
                    }
                }
                let sent = engine.accept_share(lay, lay.my_pos, own, Some(fingerprint))?;
                verifiable_partials(lay, engine, sent)?
            }
        };
        self.started = true;
        out.extend(sent);
        Ok(out)
    }

    /// Handles a message delivered by the transport from the authenticated peer `from`.
    /// On error the message is refused and the state is unchanged.
    pub fn handle(
        &mut self,
        from: ParticipantId,
        msg: SumMessage,
    ) -> Result<Vec<Outgoing<SumMessage>>> {
        let pos = check_header(&self.lay, from, &msg.header)?;
        if msg.header.round != msg.body.round() {
            return Err(Error::Unexpected {
                from,
                reason: "round does not match the body",
            });
        }
        let lay = &self.lay;
        let replay = || Error::Replayed {
            from,
            round: msg.header.round,
        };
        match (&mut self.inner, msg.body) {
            (Inner::Fast { engine, .. }, SumBody::FastShare { shares }) => {
                if engine.has_share(pos) {
                    return Err(replay());
                }
                expect_len(lay.len, shares.len())?;
                let sent = engine.accept_share(lay, pos, shares.0, None)?;
                fast_partials(lay, sent)
            }
            (
                Inner::Verifiable { engine, .. },
                SumBody::VerifiableShare {
                    shares,
                    salt,
                    public,
                },
            ) => {
                if engine.has_share(pos) {
                    return Err(replay());
                }
                expect_len(lay.len.saturating_add(1), shares.len())?;
                let ctx = DealContext {
                    session: lay.session,
                    dealer: from,
                };
                let index = ShareIndex::from_position(lay.my_pos)?;
                verifiable::verify(&ctx, &public, lay.t, lay.n, index, &salt, &shares.0).map_err(
                    |reason| Error::CheatingDealer {
                        dealer: from,
                        reason,
                    },
                )?;
                let mut values = shares.0;
                values.truncate(lay.len);
                let sent = engine.accept_share(lay, pos, values, Some(public.fingerprint()))?;
                verifiable_partials(lay, engine, sent)
            }
            (Inner::Fast { engine, .. }, SumBody::FastPartial { positions, values }) => {
                check_partial(
                    lay,
                    from,
                    engine.has_partial(pos),
                    positions.as_deref(),
                    values.len(),
                    replay,
                )?;
                engine.accept_partial(
                    lay,
                    pos,
                    Partial {
                        positions,
                        values: values.0,
                        echo: None,
                    },
                )?;
                Ok(Vec::new())
            }
            (
                Inner::Verifiable { engine, .. },
                SumBody::VerifiablePartial {
                    positions,
                    values,
                    echo,
                },
            ) => {
                check_partial(
                    lay,
                    from,
                    engine.has_partial(pos),
                    positions.as_deref(),
                    values.len(),
                    replay,
                )?;
                expect_len(lay.n, echo.len())?;
                engine.accept_partial(
                    lay,
                    pos,
                    Partial {
                        positions,
                        values: values.0,
                        echo: Some(echo),
                    },
                )?;
                Ok(Vec::new())
            }
            _ => Err(Error::Unexpected {
                from,
                reason: "message of another sharing mode",
            }),
        }
    }

    /// Decodes CBOR bytes and handles the message.
    pub fn handle_bytes(
        &mut self,
        from: ParticipantId,
        bytes: &[u8],
    ) -> Result<Vec<Outgoing<SumMessage>>> {
        self.handle(from, SumMessage::decode(bytes)?)
    }

    /// Reveals the sum at `positions` (ascending) only; for sessions configured with
    /// [`Release::OnRequest`]. Every participant must release the same positions.
    pub fn release(&mut self, positions: Vec<u32>) -> Result<Vec<Outgoing<SumMessage>>> {
        check_positions(&positions, self.lay.len)?;
        let lay = &self.lay;
        match &mut self.inner {
            Inner::Fast { engine, .. } => {
                if engine.released() {
                    return Err(Error::InvalidState("already released"));
                }
                let sent = engine.release(lay, Some(positions))?;
                fast_partials(lay, sent)
            }
            Inner::Verifiable { engine, .. } => {
                if engine.released() {
                    return Err(Error::InvalidState("already released"));
                }
                let sent = engine.release(lay, Some(positions))?;
                verifiable_partials(lay, engine, sent)
            }
        }
    }

    /// The revealed sum, once this participant (a result receiver) has it.
    pub fn output(&self) -> Option<&SumOutput> {
        match &self.inner {
            Inner::Fast { engine, .. } => engine.output(),
            Inner::Verifiable { engine, .. } => engine.output(),
        }
    }

    /// Whether this participant has nothing more to do: it has the result, or it is not a
    /// receiver and has sent its partial sum.
    pub fn is_finished(&self) -> bool {
        let (sent, out) = match &self.inner {
            Inner::Fast { engine, .. } => (engine.partial_sent(), engine.output().is_some()),
            Inner::Verifiable { engine, .. } => (engine.partial_sent(), engine.output().is_some()),
        };
        if self.lay.is_receiver() { out } else { sent }
    }
}

/// Checks session, sender and recipient; returns the sender's position.
pub(crate) fn check_header(lay: &Layout, from: ParticipantId, h: &Header) -> Result<usize> {
    if h.session != lay.session {
        return Err(Error::ForeignSession {
            expected: lay.session,
            got: h.session,
        });
    }
    let pos = lay.position(from).ok_or(Error::NotParticipant(from))?;
    if h.from != from {
        return Err(Error::SenderMismatch {
            claimed: h.from,
            transport: from,
        });
    }
    if h.to != lay.me {
        return Err(Error::WrongRecipient(h.to));
    }
    if pos == lay.my_pos {
        return Err(Error::Unexpected {
            from,
            reason: "message from this participant itself",
        });
    }
    Ok(pos)
}

fn check_partial(
    lay: &Layout,
    from: ParticipantId,
    seen: bool,
    positions: Option<&[u32]>,
    got: usize,
    replay: impl Fn() -> Error,
) -> Result<()> {
    if !lay.is_receiver() {
        return Err(Error::Unexpected {
            from,
            reason: "this participant is not a result receiver",
        });
    }
    if seen {
        return Err(replay());
    }
    let expected = match positions {
        Some(p) => {
            check_positions(p, lay.len)?;
            p.len()
        }
        None => lay.len,
    };
    expect_len(expected, got)
}

fn expect_len(expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::LengthMismatch { expected, got })
    }
}

fn message(lay: &Layout, pos: usize, body: SumBody) -> Result<Outgoing<SumMessage>> {
    let to = *lay
        .participants
        .get(pos)
        .ok_or(Error::InvalidState("position"))?;
    let header = Header {
        session: lay.session,
        from: lay.me,
        to,
        round: body.round(),
    };
    Ok(Outgoing {
        to,
        message: SumMessage { header, body },
    })
}

fn receivers_except_me(lay: &Layout) -> impl Iterator<Item = usize> + '_ {
    lay.receivers
        .iter()
        .enumerate()
        .filter(|(i, r)| **r && *i != lay.my_pos)
        .map(|(i, _)| i)
}

fn fast_partials(lay: &Layout, sent: Sent<Fp>) -> Result<Vec<Outgoing<SumMessage>>> {
    let Some(p) = sent else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let mut values = Some(p.values);
    let targets: Vec<usize> = receivers_except_me(lay).collect();
    for (k, pos) in targets.iter().enumerate() {
        // move the vector into the last message instead of cloning it
        let v = if k + 1 == targets.len() {
            values.take().unwrap_or_default()
        } else {
            values.clone().unwrap_or_default()
        };
        out.push(message(
            lay,
            *pos,
            SumBody::FastPartial {
                positions: p.positions.clone(),
                values: Vector(v),
            },
        )?);
    }
    Ok(out)
}

fn verifiable_partials(
    lay: &Layout,
    engine: &Engine<Scalar>,
    sent: Sent<Scalar>,
) -> Result<Vec<Outgoing<SumMessage>>> {
    let Some(p) = sent else { return Ok(Vec::new()) };
    let echo = engine.fingerprints();
    receivers_except_me(lay)
        .map(|pos| {
            let body = SumBody::VerifiablePartial {
                positions: p.positions.clone(),
                values: Vector(p.values.clone()),
                echo: echo.clone(),
            };
            message(lay, pos, body)
        })
        .collect()
}
