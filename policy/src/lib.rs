//! `pods-policy`: consent, purposes, data categories, retention, erasure and audit.
//!
//! This crate will implement the sdk's policy gate ([`pods_sdk::PolicyGate`]). Until then the
//! runtime admits every event through [`pods_sdk::AllowAll`]. Its [`audit`] module is the
//! node's hash-chained, signed audit log.
#![warn(missing_docs)]

pub mod audit;
