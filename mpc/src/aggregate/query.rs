//! Aggregate queries over public groups: what each participant computes locally, how it is
//! laid out in the shared vectors, and how the revealed sums turn into statistics.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::field::FP_SIGNED_MAX;
use crate::protocol::Mode;

/// One local record: its (public) group and its (private) value. Values are integers; scale
/// fixed-point quantities before (e.g. cents, tenths of a year).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Row {
    /// The group key; rows of groups the query does not name are not part of the query.
    pub group: String,
    /// The value aggregated.
    pub value: i64,
}

/// A joint aggregate query: count, sum, mean, variance and a histogram of `value` per group,
/// with groups whose overall count is below `min_group_size` suppressed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Query {
    /// The public groups, in an order agreed by all participants.
    pub groups: Vec<String>,
    /// Public histogram bucket edges, strictly ascending: bucket 0 is `value < edges[0]`,
    /// bucket i is `edges[i-1] <= value < edges[i]`, the last is `value >= edges[last]`.
    pub bucket_edges: Vec<i64>,
    /// k: groups with fewer rows overall are suppressed.
    pub min_group_size: u64,
    /// Largest |value| any participant may contribute.
    pub max_abs_value: i64,
    /// Most rows any participant may contribute.
    pub max_rows: u64,
    /// The sharing mode.
    pub mode: Mode,
}

/// Statistics of one released group.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct GroupStats {
    /// Number of rows.
    pub count: u64,
    /// Sum of values.
    pub sum: i128,
    /// Sum of squared values.
    pub sum_of_squares: i128,
    /// sum / count.
    pub mean: f64,
    /// Population variance: sum_of_squares / count − mean².
    pub variance: f64,
    /// Rows per bucket (`bucket_edges.len() + 1` buckets).
    pub histogram: Vec<u64>,
}

/// The answer for one group.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub enum GroupResult {
    /// Fewer than k rows overall: nothing but this fact is reported.
    Suppressed,
    /// The group's statistics.
    Released(GroupStats),
}

impl Query {
    /// Elements per group in the statistics vector: sum, sum of squares, buckets.
    pub(crate) fn stats_width(&self) -> usize {
        2 + self.bucket_edges.len() + 1
    }

    /// Checks the query for `n` participants: non-empty distinct groups, ascending edges, and
    /// bounds under which no sum can leave the field's signed range.
    pub fn validate(&self, n: usize) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_string()));
        if self.groups.is_empty() {
            return bad("no groups");
        }
        let mut g = self.groups.clone();
        g.sort_unstable();
        if g.windows(2).any(|w| w[0] == w[1]) {
            return bad("duplicate group");
        }
        if self.bucket_edges.windows(2).any(|w| w[0] >= w[1]) {
            return bad("bucket edges not strictly ascending");
        }
        if self.max_abs_value < 0 || self.min_group_size == 0 {
            return bad("max_abs_value must be ≥ 0 and min_group_size ≥ 1");
        }
        let per_party = i128::from(self.max_rows)
            .checked_mul(i128::from(self.max_abs_value))
            .and_then(|x| x.checked_mul(i128::from(self.max_abs_value)));
        let limit = match self.mode {
            Mode::Additive | Mode::Shamir { .. } => i128::from(FP_SIGNED_MAX),
            Mode::Verifiable { .. } => i128::from(i64::MAX),
        };
        let total = per_party.and_then(|p| p.checked_mul(n as i128));
        match (per_party, total) {
            (Some(p), Some(t))
                if p <= i128::from(i64::MAX)
                    && (t <= limit || matches!(self.mode, Mode::Verifiable { .. })) =>
            {
                Ok(())
            }
            _ => bad("max_rows · max_abs_value² · participants exceeds the field's signed range"),
        }
    }

    fn bucket(&self, v: i64) -> usize {
        self.bucket_edges.partition_point(|e| *e <= v)
    }

    /// This participant's local vectors: counts per group, then (sum, sum of squares,
    /// buckets) per group.
    pub(crate) fn local(&self, rows: &[Row]) -> Result<(Vec<i64>, Vec<i64>)> {
        if rows.len() as u64 > self.max_rows {
            return Err(Error::ValueOutOfRange(format!(
                "more than {} rows",
                self.max_rows
            )));
        }
        let w = self.stats_width();
        let mut counts = vec![0i64; self.groups.len()];
        let mut stats = vec![0i64; self.groups.len().saturating_mul(w)];
        for row in rows {
            let Some(g) = self.groups.iter().position(|x| *x == row.group) else {
                continue;
            };
            if row.value.unsigned_abs() > self.max_abs_value.unsigned_abs() {
                return Err(Error::ValueOutOfRange(format!(
                    "|{}| > {}",
                    row.value, self.max_abs_value
                )));
            }
            let overflow = || Error::ValueOutOfRange("local aggregate overflow".into());
            let base = g.checked_mul(w).ok_or_else(overflow)?;
            let slot = |i: usize| base.checked_add(i).ok_or_else(overflow);
            let square = row.value.checked_mul(row.value).ok_or_else(overflow)?;
            let bucket = self.bucket(row.value);
            for (i, add) in [(0, row.value), (1, square), (2 + bucket, 1)] {
                let s = stats.get_mut(slot(i)?).ok_or_else(overflow)?;
                *s = s.checked_add(add).ok_or_else(overflow)?;
            }
            if let Some(c) = counts.get_mut(g) {
                *c = c.checked_add(1).ok_or_else(overflow)?;
            }
        }
        Ok((counts, stats))
    }

    /// Positions of the statistics vector for the groups whose count reaches k.
    pub(crate) fn kept_positions(&self, counts: &[i128]) -> Vec<u32> {
        let w = self.stats_width();
        let k = i128::from(self.min_group_size);
        counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c >= k)
            .flat_map(|(g, _)| (g * w..(g + 1) * w).map(|p| p as u32))
            .collect()
    }

    /// Builds the per-group results from the revealed counts and kept statistics.
    pub(crate) fn results(&self, counts: &[i128], kept: &[i128]) -> Result<Vec<GroupResult>> {
        let w = self.stats_width();
        let k = i128::from(self.min_group_size);
        let mut chunks = kept.chunks_exact(w);
        let neg = || Error::ValueOutOfRange("revealed count is negative".into());
        counts
            .iter()
            .map(|c| {
                if *c < k {
                    return Ok(GroupResult::Suppressed);
                }
                let s = chunks
                    .next()
                    .ok_or(Error::InvalidState("missing group statistics"))?;
                let count = u64::try_from(*c).map_err(|_| neg())?;
                let (sum, sq) = (
                    s.first().copied().unwrap_or(0),
                    s.get(1).copied().unwrap_or(0),
                );
                let mean = sum as f64 / count as f64;
                let variance = sq as f64 / count as f64 - mean * mean;
                let histogram = s
                    .get(2..)
                    .unwrap_or(&[])
                    .iter()
                    .map(|h| u64::try_from(*h).map_err(|_| neg()))
                    .collect::<Result<Vec<u64>>>()?;
                Ok(GroupResult::Released(GroupStats {
                    count,
                    sum,
                    sum_of_squares: sq,
                    mean,
                    variance,
                    histogram,
                }))
            })
            .collect()
    }
}
