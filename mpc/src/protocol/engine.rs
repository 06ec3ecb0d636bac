//! The field-generic core of the secure sum: collects shares and partial sums, computes this
//! participant's partial sum and reconstructs the result. Every operation first computes its
//! effect from references and commits only if nothing failed, so a refused input leaves the
//! engine unchanged.

use crate::error::{Error, Result};
use crate::field::Element;
use crate::protocol::config::Layout;
use crate::sharing::shamir::{combine, lagrange_at};

/// The revealed result of a secure sum.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SumOutput {
    /// The positions of the input vector that were revealed (`None`: all, in order).
    pub positions: Option<Vec<u32>>,
    /// The sums at those positions, decoded from the field's centered range.
    pub values: Vec<i128>,
}

/// A partial sum received from (or computed by) one participant.
#[derive(Clone, Debug)]
pub(crate) struct Partial<E> {
    pub positions: Option<Vec<u32>>,
    pub values: Vec<E>,
    pub echo: Option<Vec<[u8; 32]>>,
}

/// What a committed step produced: the partial sum to send, if it became ready.
pub(crate) type Sent<E> = Option<Partial<E>>;

pub(crate) struct Engine<E: Element> {
    shares: Vec<Option<Vec<E>>>,
    fingerprints: Vec<Option<[u8; 32]>>,
    /// `None` until the positions to reveal are known; `Some(None)` for all.
    release: Option<Option<Vec<u32>>>,
    partial_sent: bool,
    partials: Vec<Option<Partial<E>>>,
    output: Option<SumOutput>,
}

impl<E: Element> Engine<E> {
    pub fn new(n: usize, release: Option<Option<Vec<u32>>>) -> Self {
        Engine {
            shares: (0..n).map(|_| None).collect(),
            fingerprints: vec![None; n],
            release,
            partial_sent: false,
            partials: (0..n).map(|_| None).collect(),
            output: None,
        }
    }

    pub fn output(&self) -> Option<&SumOutput> {
        self.output.as_ref()
    }

    pub fn partial_sent(&self) -> bool {
        self.partial_sent
    }

    pub fn has_share(&self, pos: usize) -> bool {
        self.shares.get(pos).is_some_and(Option::is_some)
    }

    pub fn has_partial(&self, pos: usize) -> bool {
        self.partials.get(pos).is_some_and(Option::is_some)
    }

    pub fn released(&self) -> bool {
        self.release.is_some()
    }

    pub fn fingerprints(&self) -> Vec<[u8; 32]> {
        self.fingerprints
            .iter()
            .map(|f| f.unwrap_or([0; 32]))
            .collect()
    }

    /// Accepts the share vector dealt by `pos`.
    pub fn accept_share(
        &mut self,
        lay: &Layout,
        pos: usize,
        share: Vec<E>,
        fingerprint: Option<[u8; 32]>,
    ) -> Result<Sent<E>> {
        if let Some(fp) = fingerprint {
            for (q, p) in self.partials.iter().enumerate() {
                let echoed = p
                    .as_ref()
                    .and_then(|p| p.echo.as_ref())
                    .and_then(|e| e.get(pos));
                if echoed.is_some_and(|e| *e != fp) {
                    return Err(Error::Equivocation {
                        dealer: participant(lay, pos)?,
                        reported_by: participant(lay, q)?,
                    });
                }
            }
        }
        let step = self.step(lay, Some((pos, &share)), None, self.release.as_ref())?;
        if let Some(slot) = self.shares.get_mut(pos) {
            *slot = Some(share);
        }
        if let Some(slot) = self.fingerprints.get_mut(pos) {
            *slot = fingerprint;
        }
        Ok(self.commit(lay, step))
    }

    /// Accepts a partial sum revealed by `pos` (this participant is a receiver).
    pub fn accept_partial(&mut self, lay: &Layout, pos: usize, partial: Partial<E>) -> Result<()> {
        if let Some(echo) = &partial.echo {
            for (dealer, (mine, theirs)) in self.fingerprints.iter().zip(echo).enumerate() {
                if mine.is_some_and(|m| m != *theirs) {
                    return Err(Error::Equivocation {
                        dealer: participant(lay, dealer)?,
                        reported_by: participant(lay, pos)?,
                    });
                }
            }
        }
        let step = self.step(lay, None, Some((pos, &partial)), self.release.as_ref())?;
        if let Some(slot) = self.partials.get_mut(pos) {
            *slot = Some(partial);
        }
        let _ = self.commit(lay, step);
        Ok(())
    }

    /// Sets the positions to reveal.
    pub fn release(&mut self, lay: &Layout, positions: Option<Vec<u32>>) -> Result<Sent<E>> {
        let release = Some(positions);
        let step = self.step(lay, None, None, release.as_ref())?;
        self.release = release;
        Ok(self.commit(lay, step))
    }

    fn commit(&mut self, lay: &Layout, step: Step<E>) -> Sent<E> {
        if let Some(out) = step.output {
            self.output = Some(out);
        }
        let sent = step.my_partial;
        if let Some(p) = &sent {
            self.partial_sent = true;
            if lay.is_receiver()
                && let Some(slot) = self.partials.get_mut(lay.my_pos)
            {
                *slot = Some(p.clone());
            }
        }
        sent
    }

    /// Computes, without mutating, what the engine would do with the given new input.
    fn step(
        &self,
        lay: &Layout,
        new_share: Option<(usize, &Vec<E>)>,
        new_partial: Option<(usize, &Partial<E>)>,
        release: Option<&Option<Vec<u32>>>,
    ) -> Result<Step<E>> {
        let shares: Vec<Option<&Vec<E>>> = self
            .shares
            .iter()
            .enumerate()
            .map(|(i, s)| match new_share {
                Some((p, v)) if p == i => Some(v),
                _ => s.as_ref(),
            })
            .collect();
        let mut my_partial = None;
        if !self.partial_sent
            && let (Some(rel), Some(all)) =
                (release, shares.iter().copied().collect::<Option<Vec<_>>>())
        {
            my_partial = Some(Partial {
                positions: rel.clone(),
                values: partial_sum(&all, rel.as_deref(), lay.len),
                echo: None,
            });
        }
        let mut output = None;
        if lay.is_receiver() {
            let own = my_partial.as_ref().map(|p| (lay.my_pos, p));
            let partials: Vec<Option<&Partial<E>>> = self
                .partials
                .iter()
                .enumerate()
                .map(|(i, p)| match (new_partial, own) {
                    (Some((q, v)), _) if q == i => Some(v),
                    (_, Some((q, v))) if q == i => Some(v),
                    _ => p.as_ref(),
                })
                .collect();
            if let Some(rel) = release {
                let fresh = reconstruct(lay, &partials, rel)?;
                if self.output.is_none() {
                    output = fresh;
                }
            }
        }
        Ok(Step { my_partial, output })
    }
}

struct Step<E> {
    my_partial: Option<Partial<E>>,
    output: Option<SumOutput>,
}

fn participant(lay: &Layout, pos: usize) -> Result<crate::ids::ParticipantId> {
    lay.participants
        .get(pos)
        .copied()
        .ok_or(Error::InvalidState("position out of range"))
}

/// Σ of all dealers' shares, at `positions` (all if `None`).
fn partial_sum<E: Element>(shares: &[&Vec<E>], positions: Option<&[u32]>, len: usize) -> Vec<E> {
    match positions {
        None => {
            let mut acc = vec![E::zero(); len];
            for s in shares {
                crate::sharing::additive::add_into(&mut acc, s);
            }
            acc
        }
        Some(pos) => pos
            .iter()
            .map(|p| {
                shares.iter().fold(E::zero(), |acc, s| {
                    acc + s.get(*p as usize).copied().unwrap_or(E::zero())
                })
            })
            .collect(),
    }
}

/// Reconstructs the sum from the partials that reveal `release`; checks every partial beyond
/// the `needed` used for reconstruction against the polynomial they define.
fn reconstruct<E: Element>(
    lay: &Layout,
    partials: &[Option<&Partial<E>>],
    release: &Option<Vec<u32>>,
) -> Result<Option<SumOutput>> {
    let matching: Vec<(usize, &Partial<E>)> = partials
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.filter(|p| p.positions == *release).map(|p| (i, p)))
        .collect();
    if matching.len() < lay.needed {
        return Ok(None);
    }
    let len = matching.first().map(|(_, p)| p.values.len()).unwrap_or(0);
    let (base, extra) = matching.split_at(lay.needed);
    let point = |pos: usize| E::from_u64(pos as u64 + 1);
    let base_values: Vec<&[E]> = base.iter().map(|(_, p)| p.values.as_slice()).collect();
    let sum = if lay.additive {
        let mut acc = vec![E::zero(); len];
        for v in &base_values {
            crate::sharing::additive::add_into(&mut acc, v);
        }
        acc
    } else {
        let xs: Vec<E> = base.iter().map(|(i, _)| point(*i)).collect();
        let weights = lagrange_at(&xs, E::zero())?;
        let sum = combine(&weights, &base_values, len);
        for (i, p) in extra {
            let w = lagrange_at(&xs, point(*i))?;
            if combine(&w, &base_values, len) != p.values {
                let from = participant(lay, *i)?;
                return Err(Error::InconsistentReveal { from });
            }
        }
        sum
    };
    let values = sum
        .iter()
        .map(|v| v.decode_signed())
        .collect::<Option<Vec<i128>>>()
        .ok_or_else(|| Error::ValueOutOfRange("revealed sum outside the signed range".into()))?;
    Ok(Some(SumOutput {
        positions: release.clone(),
        values,
    }))
}
