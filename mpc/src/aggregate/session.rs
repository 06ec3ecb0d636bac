//! The aggregate-query state machine: two secure sums dealt together, counts revealed first,
//! statistics revealed only for groups that reach k.

use std::fmt;

use crate::aggregate::query::{GroupResult, Query, Row};
use crate::error::{Error, Result};
use crate::ids::{ParticipantId, SessionId};
use crate::protocol::{Outgoing, Receivers, Release, SecureSum, SumConfig, SumMessage};

/// Configuration of one aggregate query session.
#[derive(Clone, PartialEq, Debug)]
pub struct AggregateConfig {
    /// The session id agreed by all participants.
    pub session: SessionId,
    /// All participants.
    pub participants: Vec<ParticipantId>,
    /// This participant.
    pub me: ParticipantId,
    /// Who learns the statistics (every participant learns the per-group counts).
    pub receivers: Receivers,
    /// The query.
    pub query: Query,
}

/// One participant's state in an aggregate query.
///
/// Both sub-sessions deal in the first round. Counts per group are revealed to every
/// participant; each then releases the statistics positions of the groups whose count is at
/// least k, so sums, sums of squares and histograms of suppressed groups are never
/// reconstructed. The small counts themselves are revealed to the participants.
pub struct AggregateSession {
    query: Query,
    counts: SecureSum,
    stats: SecureSum,
    released: bool,
}

impl fmt::Debug for AggregateSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateSession")
            .field("counts", &self.counts)
            .field("stats", &self.stats)
            .finish()
    }
}

impl AggregateSession {
    /// A participant with its local (already policy-filtered) rows.
    pub fn new(config: &AggregateConfig, rows: &[Row]) -> Result<Self> {
        let q = &config.query;
        q.validate(config.participants.len())?;
        let (counts, stats) = q.local(rows)?;
        let base = |label: &str, len: usize| SumConfig {
            session: config.session.derive(label),
            participants: config.participants.clone(),
            me: config.me,
            mode: q.mode,
            receivers: Receivers::All,
            len,
            release: Release::Immediate,
        };
        let count_cfg = base("aggregate/counts", counts.len());
        let mut stats_cfg = base("aggregate/stats", stats.len());
        stats_cfg.receivers = config.receivers.clone();
        stats_cfg.release = Release::OnRequest;
        Ok(AggregateSession {
            query: q.clone(),
            counts: SecureSum::new(&count_cfg, &counts)?,
            stats: SecureSum::new(&stats_cfg, &stats)?,
            released: false,
        })
    }

    /// Deals the shares of both sub-sessions, with randomness from the OS.
    pub fn start(&mut self) -> Result<Vec<Outgoing<SumMessage>>> {
        let mut out = self.counts.start()?;
        out.extend(self.stats.start()?);
        out.extend(self.after_counts()?);
        Ok(out)
    }

    /// Handles a message of either sub-session. On error the state is unchanged.
    pub fn handle(
        &mut self,
        from: ParticipantId,
        msg: SumMessage,
    ) -> Result<Vec<Outgoing<SumMessage>>> {
        if msg.header.session == self.stats.session() {
            return self.stats.handle(from, msg);
        }
        if msg.header.session != self.counts.session() {
            return Err(Error::ForeignSession {
                expected: self.counts.session(),
                got: msg.header.session,
            });
        }
        let mut out = self.counts.handle(from, msg)?;
        out.extend(self.after_counts()?);
        Ok(out)
    }

    fn after_counts(&mut self) -> Result<Vec<Outgoing<SumMessage>>> {
        match self.counts.output() {
            Some(counts) if !self.released => {
                let kept = self.query.kept_positions(&counts.values);
                let out = self.stats.release(kept)?;
                self.released = true;
                Ok(out)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The per-group results (in the query's group order), once this participant has them.
    pub fn results(&self) -> Option<Result<Vec<GroupResult>>> {
        let counts = self.counts.output()?;
        let stats = self.stats.output()?;
        Some(self.query.results(&counts.values, &stats.values))
    }

    /// Whether this participant has nothing more to do.
    pub fn is_finished(&self) -> bool {
        self.counts.is_finished() && self.stats.is_finished()
    }
}
