//! The policy file as written: serde's view of `policy.toml`, with the location of every value
//! that validation may need to point at.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default)]
    pub purpose: Vec<RawPurpose>,
    /// Category → how long its data may be kept ("30d").
    #[serde(default)]
    pub retention: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub dataset: Vec<RawDataset>,
    #[serde(default)]
    pub workflow: Vec<RawRule>,
    #[serde(default)]
    pub portal: Vec<RawRule>,
    #[serde(default)]
    pub export: Vec<RawRule>,
}

/// A `[[purpose]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPurpose {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    /// Whether the purpose processes personal data (the default): events without a subject
    /// are then refused.
    #[serde(default = "yes")]
    pub personal: bool,
}

fn yes() -> bool {
    true
}

/// A `[[dataset]]`: the columns of a kind of record and their categories.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataset {
    pub name: Spanned<String>,
    /// The column naming the data subject.
    pub subject: Spanned<String>,
    /// Column → category.
    pub columns: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
    /// The external generator that imported records are fed into, if any.
    #[serde(default)]
    pub feed: Option<Spanned<String>>,
}

/// A `[[workflow]]`, `[[portal]]` or `[[export]]`: a path, its purpose and legal basis.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub path: Spanned<String>,
    pub purpose: Spanned<String>,
    pub basis: Spanned<String>,
    /// A dataset whose columns are removed from an event when their category lacks a basis
    /// (instead of dropping the event).
    #[serde(default)]
    pub redact: Option<Spanned<String>>,
}
