//! Session configuration for the secure sum, and its validation.

use crate::error::{Error, Result};
use crate::ids::{ParticipantId, SessionId};

/// Most participants a session may have.
pub const MAX_PARTICIPANTS: usize = 256;
/// Longest input vector a session may have (2^24 elements).
pub const MAX_LEN: usize = 1 << 24;

/// How inputs are shared. A query names its mode; every participant must use the same.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Additive n-of-n sharing in GF(2^61 − 1): fastest; every participant must stay until it
    /// has revealed its partial sum.
    Additive,
    /// Shamir t-of-n sharing in GF(2^61 − 1): the sum is revealed if at least `threshold`
    /// participants reveal after all have dealt.
    Shamir {
        /// Shares needed to reconstruct (2 ≤ t ≤ n).
        threshold: usize,
    },
    /// Feldman-verifiable Shamir t-of-n sharing over the secp256k1 scalar field: every share
    /// is checked and a dealer whose shares are inconsistent is named.
    Verifiable {
        /// Shares needed to reconstruct (2 ≤ t ≤ n).
        threshold: usize,
    },
}

/// Who learns the sum.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum Receivers {
    /// Every participant.
    All,
    /// Only these participants (a non-empty subset).
    Only(Vec<ParticipantId>),
}

/// When partial sums are revealed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum Release {
    /// As soon as all shares have arrived, for the whole vector.
    Immediate,
    /// Only the positions later passed to `SecureSum::release` (used to suppress groups).
    OnRequest,
}

/// Configuration of one secure-sum session, the same at every participant except `me`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SumConfig {
    /// The session id agreed by all participants.
    pub session: SessionId,
    /// All participants (any order; positions are taken after sorting).
    pub participants: Vec<ParticipantId>,
    /// This participant.
    pub me: ParticipantId,
    /// Sharing mode.
    pub mode: Mode,
    /// Who learns the result.
    pub receivers: Receivers,
    /// Length of every participant's input vector.
    pub len: usize,
    /// When partial sums are revealed.
    pub release: Release,
}

impl SumConfig {
    /// A configuration where everyone learns the whole sum as soon as possible.
    pub fn new(
        session: SessionId,
        participants: Vec<ParticipantId>,
        me: ParticipantId,
        mode: Mode,
        len: usize,
    ) -> Self {
        SumConfig {
            session,
            participants,
            me,
            mode,
            receivers: Receivers::All,
            len,
            release: Release::Immediate,
        }
    }
}

/// A validated configuration with positions resolved.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub session: SessionId,
    pub participants: Vec<ParticipantId>,
    pub me: ParticipantId,
    pub my_pos: usize,
    pub n: usize,
    /// Partial sums needed to reconstruct (n for additive).
    pub needed: usize,
    /// Polynomial threshold (t) for Shamir modes, n for additive.
    pub t: usize,
    pub receivers: Vec<bool>,
    pub len: usize,
    /// Additive (n-of-n) sharing rather than Shamir.
    pub additive: bool,
}

impl Layout {
    pub fn new(cfg: &SumConfig) -> Result<Self> {
        let mut participants = cfg.participants.clone();
        participants.sort_unstable();
        let n = participants.len();
        if participants.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::InvalidConfig("duplicate participant".into()));
        }
        if !(2..=MAX_PARTICIPANTS).contains(&n) {
            return Err(Error::InvalidConfig(format!(
                "need 2..={MAX_PARTICIPANTS} participants, got {n}"
            )));
        }
        if !(1..=MAX_LEN).contains(&cfg.len) {
            return Err(Error::InvalidConfig(format!(
                "vector length must be 1..={MAX_LEN}"
            )));
        }
        let my_pos = participants
            .binary_search(&cfg.me)
            .map_err(|_| Error::InvalidConfig("this node is not a participant".into()))?;
        let t = match cfg.mode {
            Mode::Additive => n,
            Mode::Shamir { threshold } | Mode::Verifiable { threshold } => {
                if threshold < 2 || threshold > n {
                    return Err(Error::InvalidConfig(format!(
                        "threshold must be in 2..={n}, got {threshold}"
                    )));
                }
                threshold
            }
        };
        let receivers = match &cfg.receivers {
            Receivers::All => vec![true; n],
            Receivers::Only(list) => {
                if list.is_empty() {
                    return Err(Error::InvalidConfig("no result receiver".into()));
                }
                let mut flags = vec![false; n];
                for r in list {
                    let pos = participants.binary_search(r).map_err(|_| {
                        Error::InvalidConfig(format!("receiver {r} is not a participant"))
                    })?;
                    if let Some(f) = flags.get_mut(pos) {
                        *f = true;
                    }
                }
                flags
            }
        };
        let additive = matches!(cfg.mode, Mode::Additive);
        Ok(Layout {
            session: cfg.session,
            participants,
            me: cfg.me,
            my_pos,
            n,
            needed: t,
            t,
            receivers,
            len: cfg.len,
            additive,
        })
    }

    /// Position of a participant, if it is one.
    pub fn position(&self, p: ParticipantId) -> Option<usize> {
        self.participants.binary_search(&p).ok()
    }

    /// Whether this participant learns the result.
    pub fn is_receiver(&self) -> bool {
        self.receivers.get(self.my_pos).copied().unwrap_or(false)
    }
}

/// Checks a list of positions to reveal: ascending, unique, below `len`.
pub(crate) fn check_positions(positions: &[u32], len: usize) -> Result<()> {
    if positions.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::Malformed("positions not strictly ascending".into()));
    }
    if positions.last().is_some_and(|p| *p as usize >= len) {
        return Err(Error::Malformed("position out of range".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: u32, me: u32, mode: Mode) -> SumConfig {
        SumConfig::new(
            SessionId([0; 32]),
            (0..n).map(ParticipantId).collect(),
            ParticipantId(me),
            mode,
            4,
        )
    }

    #[test]
    fn invalid_configurations_are_refused() {
        assert!(Layout::new(&cfg(1, 0, Mode::Additive)).is_err());
        assert!(Layout::new(&cfg(3, 5, Mode::Additive)).is_err());
        assert!(Layout::new(&cfg(3, 0, Mode::Shamir { threshold: 1 })).is_err());
        assert!(Layout::new(&cfg(3, 0, Mode::Shamir { threshold: 4 })).is_err());
        let mut c = cfg(3, 0, Mode::Additive);
        c.participants.push(ParticipantId(1));
        assert!(Layout::new(&c).is_err());
        let mut c = cfg(3, 0, Mode::Additive);
        c.receivers = Receivers::Only(vec![ParticipantId(9)]);
        assert!(Layout::new(&c).is_err());
        let l = Layout::new(&cfg(3, 2, Mode::Shamir { threshold: 2 })).ok();
        assert_eq!(l.map(|l| (l.my_pos, l.needed)), Some((2, 2)));
    }

    #[test]
    fn positions_are_checked() {
        assert!(check_positions(&[0, 2, 3], 4).is_ok());
        assert!(check_positions(&[0, 0], 4).is_err());
        assert!(check_positions(&[2, 1], 4).is_err());
        assert!(check_positions(&[4], 4).is_err());
    }
}
