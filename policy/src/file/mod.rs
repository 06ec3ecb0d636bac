//! The policy file (`policy.toml`): purposes, retention per category, datasets, and the purpose
//! and legal basis of every workflow, portal and export. Loading validates the whole file and
//! reports every problem with its line and column; a file with any problem loads nothing.

pub(crate) mod duration;
mod raw;

use std::collections::BTreeMap;

use serde::Serialize;
use toml::Spanned;

use crate::error::{PolicyError, Problem};
use crate::names::{Category, LegalBasis, Purpose};
use raw::{RawPolicy, RawRule};

/// A declared purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PurposeDecl {
    /// Its name.
    pub name: Purpose,
    /// What it is for, in words.
    pub description: String,
    /// Whether it processes personal data: events without a subject are then refused.
    pub personal: bool,
}

/// A dataset: the columns of a kind of record, which one names the subject, and the category
/// of each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dataset {
    /// Its name.
    pub name: String,
    /// The column naming the data subject.
    pub subject: String,
    /// Column → category.
    pub columns: BTreeMap<String, Category>,
    /// The external generator (a registry path) imported records are fed into as personal
    /// events, if any.
    pub feed: Option<String>,
}

/// The purpose and legal basis a workflow, portal or export runs under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// The registry path it applies to.
    pub path: String,
    /// Its purpose.
    pub purpose: Purpose,
    /// Its legal basis.
    pub basis: LegalBasis,
    /// The dataset whose columns are removed when their category lacks a basis; without it,
    /// such events are dropped.
    pub redact: Option<String>,
}

/// A validated policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    #[serde(skip)]
    source: String,
    purposes: Vec<PurposeDecl>,
    /// Category → seconds, most specific category first.
    retention: Vec<(Category, u64)>,
    datasets: BTreeMap<String, Dataset>,
    workflows: BTreeMap<String, Rule>,
    portals: BTreeMap<String, Rule>,
    exports: BTreeMap<String, Rule>,
}

impl Policy {
    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
        let lines = Lines::new(text);
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Invalid {
            file: file.to_owned(),
            problems: vec![lines.problem(
                e.span().map_or(0, |s| s.start),
                e.message().trim().to_owned(),
            )],
        })?;
        let mut check = Check {
            lines,
            problems: Vec::new(),
        };
        let policy = check.policy(raw, text);
        if check.problems.is_empty() {
            Ok(policy)
        } else {
            check.problems.sort_by_key(|p| (p.line, p.column));
            Err(PolicyError::Invalid {
                file: file.to_owned(),
                problems: check.problems,
            })
        }
    }

    /// The file's text, as loaded.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The declared purposes.
    pub fn purposes(&self) -> &[PurposeDecl] {
        &self.purposes
    }

    /// The declared purpose `name`.
    pub fn purpose(&self, name: &Purpose) -> Option<&PurposeDecl> {
        self.purposes.iter().find(|p| &p.name == name)
    }

    /// `true` if `name` is a declared purpose or an ancestor of one (what a consent may name).
    pub fn knows_purpose(&self, name: &Purpose) -> bool {
        self.purposes.iter().any(|p| name.covers(&p.name))
    }

    /// How long data of `category` may be kept, in seconds: the rule of the most specific
    /// category covering it; `None` if no rule covers it.
    pub fn retention_of(&self, category: &Category) -> Option<u64> {
        self.retention
            .iter()
            .find(|(c, _)| c.covers(category))
            .map(|(_, s)| *s)
    }

    /// The retention rules, most specific category first.
    pub fn retention(&self) -> &[(Category, u64)] {
        &self.retention
    }

    /// The dataset `name`.
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.get(name)
    }

    /// Every dataset.
    pub fn datasets(&self) -> impl Iterator<Item = &Dataset> {
        self.datasets.values()
    }

    /// The rule of the workflow at `path`.
    pub fn workflow(&self, path: &str) -> Option<&Rule> {
        self.workflows.get(path)
    }

    /// The rule of the portal at `path`.
    pub fn portal(&self, path: &str) -> Option<&Rule> {
        self.portals.get(path)
    }

    /// The rule of the export of `path` (a stream or a portal).
    pub fn export(&self, path: &str) -> Option<&Rule> {
        self.exports.get(path)
    }

    /// Every workflow and portal rule (what the gate checks).
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.workflows.values().chain(self.portals.values())
    }
}

/// Byte offsets → line and column.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn problem(&self, offset: usize, message: String) -> Problem {
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let column = offset - self.starts[line - 1] + 1;
        Problem {
            line,
            column,
            message,
        }
    }
}

/// Validation, collecting every problem.
struct Check {
    lines: Lines,
    problems: Vec<Problem>,
}

impl Check {
    fn at<T>(&mut self, place: &Spanned<T>, message: String) {
        let p = self.lines.problem(place.span().start, message);
        self.problems.push(p);
    }

    fn name<N>(
        &mut self,
        text: &Spanned<String>,
        make: impl Fn(String) -> Result<N, PolicyError>,
    ) -> Option<N> {
        match make(text.get_ref().clone()) {
            Ok(n) => Some(n),
            Err(e) => {
                self.at(text, e.to_string());
                None
            }
        }
    }

    fn policy(&mut self, raw: RawPolicy, text: &str) -> Policy {
        let mut policy = Policy {
            source: text.to_owned(),
            ..Policy::default()
        };
        for p in &raw.purpose {
            let Some(name) = self.name(&p.name, Purpose::new) else {
                continue;
            };
            if policy.purposes.iter().any(|d| d.name == name) {
                self.at(&p.name, format!("purpose `{name}` is declared twice"));
                continue;
            }
            policy.purposes.push(PurposeDecl {
                name,
                description: p.description.clone(),
                personal: p.personal,
            });
        }
        for (category, period) in &raw.retention {
            let category = self.name(category, Category::new);
            match duration::parse(period.get_ref()) {
                Ok(seconds) => policy.retention.extend(category.map(|c| (c, seconds))),
                Err(e) => self.at(period, format!("retention {e}")),
            }
        }
        // Most specific first: a longer name below a shorter one is found before it.
        policy
            .retention
            .sort_by_key(|r| std::cmp::Reverse(r.0.as_str().len()));
        for d in raw.dataset {
            let name = d.name.get_ref().clone();
            if name.is_empty() || policy.datasets.contains_key(&name) {
                self.at(
                    &d.name,
                    format!("dataset name `{name}` is empty or used twice"),
                );
                continue;
            }
            let mut columns = BTreeMap::new();
            for (column, category) in d.columns.get_ref() {
                if let Some(c) = self.name(category, Category::new) {
                    columns.insert(column.get_ref().clone(), c);
                }
            }
            if !columns.contains_key(d.subject.get_ref()) {
                self.at(
                    &d.subject,
                    format!(
                        "subject column `{}` is not among dataset `{name}`'s columns",
                        d.subject.get_ref()
                    ),
                );
            }
            if let Some(feed) = &d.feed
                && let Err(e) = pods_sdk::Path::parse(feed.get_ref())
            {
                self.at(feed, format!("feed `{}`: {e}", feed.get_ref()));
            }
            policy.datasets.insert(
                name.clone(),
                Dataset {
                    name,
                    subject: d.subject.into_inner(),
                    columns,
                    feed: d.feed.map(Spanned::into_inner),
                },
            );
        }
        policy.workflows = self.rules("workflow", raw.workflow, &policy);
        policy.portals = self.rules("portal", raw.portal, &policy);
        policy.exports = self.rules("export", raw.export, &policy);
        policy
    }

    fn rules(&mut self, kind: &str, raw: Vec<RawRule>, policy: &Policy) -> BTreeMap<String, Rule> {
        let mut out = BTreeMap::new();
        for r in raw {
            let path = r.path.get_ref().clone();
            if let Err(e) = pods_sdk::Path::parse(&path) {
                self.at(&r.path, format!("{kind} path `{path}`: {e}"));
            } else if out.contains_key(&path) {
                self.at(&r.path, format!("{kind} `{path}` is declared twice"));
            }
            let purpose = self.name(&r.purpose, Purpose::new);
            if let Some(p) = &purpose
                && policy.purpose(p).is_none()
            {
                self.at(
                    &r.purpose,
                    format!("purpose `{p}` is not declared: add a [[purpose]] named `{p}`"),
                );
            }
            let basis = serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                serde::de::value::Error,
            >::new(r.basis.get_ref()));
            if basis.is_err() {
                self.at(
                    &r.basis,
                    format!(
                        "unknown legal basis `{}`: use one of {}",
                        r.basis.get_ref(),
                        LegalBasis::ALL.join(", ")
                    ),
                );
            }
            if let Some(d) = &r.redact
                && policy.dataset(d.get_ref()).is_none()
            {
                self.at(d, format!("dataset `{}` is not declared", d.get_ref()));
            }
            if let (Some(purpose), Ok(basis)) = (purpose, basis) {
                out.insert(
                    path.clone(),
                    Rule {
                        path,
                        purpose,
                        basis,
                        redact: r.redact.map(Spanned::into_inner),
                    },
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
