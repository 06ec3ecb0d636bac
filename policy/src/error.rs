//! The crate's errors.

use std::fmt;

/// One thing wrong in a policy file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Line, counted from 1.
    pub line: usize,
    /// Column, counted from 1.
    pub column: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Everything that can go wrong in `pods-policy`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// A purpose or category name is not a dotted name.
    #[error(
        "`{name}` is not a valid {kind} name: use dotted lowercase segments such as `research.cardiology`"
    )]
    BadName {
        /// `purpose` or `category`.
        kind: &'static str,
        /// The name as given.
        name: String,
    },
    /// A policy file has problems; nothing of it was loaded.
    #[error("{file} is not a valid policy, nothing was loaded:\n{}", list(.problems))]
    Invalid {
        /// The file (or a name for the text).
        file: String,
        /// Every problem found, in the order of the file.
        problems: Vec<Problem>,
    },
    /// A consent names a purpose the policy does not declare.
    #[error("purpose `{0}` is not in the policy: declare it with [[purpose]] first")]
    UnknownPurpose(String),
    /// A consent is malformed.
    #[error("invalid consent: {0}")]
    BadConsent(String),
    /// No consent record has this id.
    #[error("no consent with id {0}")]
    NoSuchConsent(u64),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
