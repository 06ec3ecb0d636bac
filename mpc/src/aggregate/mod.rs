//! Joint aggregate queries (count, sum, mean, variance, histogram per public group) with
//! suppression of groups below k, built on the secure sum.

mod query;
mod session;

pub use query::{GroupResult, GroupStats, Query, Row};
pub use session::{AggregateConfig, AggregateSession};
