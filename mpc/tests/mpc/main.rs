//! Integration tests of `pods-mpc`: properties, refusals, privacy statistics, aggregates, PSI.

mod aggregate;
mod common;
mod privacy;
mod props;
mod psi;
mod refusal;
