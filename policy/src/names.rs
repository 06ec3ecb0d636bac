//! Dotted names: purposes (`research.cardiology`) and data categories (`health.heart_rate`),
//! each covering the names below it; and the legal bases of processing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// Checks a dotted name: non-empty segments of lowercase letters, digits, `_` or `-`.
fn check(kind: &'static str, name: &str) -> Result<(), PolicyError> {
    let ok_segment = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if name.split('.').all(ok_segment) {
        Ok(())
    } else {
        Err(PolicyError::BadName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// `true` if `outer` is `inner` or one of its ancestors (`a` covers `a` and `a.b`, not `ab`).
pub(crate) fn dotted_covers(outer: &str, inner: &str) -> bool {
    inner == outer
        || (inner.len() > outer.len()
            && inner.starts_with(outer)
            && inner.as_bytes()[outer.len()] == b'.')
}

macro_rules! dotted {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a dotted name, refusing empty segments and characters other than
            /// lowercase letters, digits, `_` and `-`.
            pub fn new(name: impl Into<String>) -> Result<$name, PolicyError> {
                let name = name.into();
                check($kind, &name)?;
                Ok($name(name))
            }

            /// `true` if this name is `other` or one of its ancestors.
            pub fn covers(&self, other: &$name) -> bool {
                dotted_covers(&self.0, &other.0)
            }

            /// The name as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = PolicyError;
            fn try_from(s: String) -> Result<$name, PolicyError> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

dotted!(
    /// A purpose of processing; consent to a purpose covers the purposes below it
    /// (`research` covers `research.cardiology`, not the reverse).
    Purpose,
    "purpose"
);
dotted!(
    /// A data category; consent to a category covers the categories below it (`health`
    /// covers `health.heart_rate`).
    Category,
    "category"
);

/// The lawful basis a workflow, portal or export processes personal data under (GDPR art. 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// The subject consented to the purpose and categories.
    Consent,
    /// Needed to perform a contract with the subject.
    Contract,
    /// Needed to comply with a legal obligation.
    LegalObligation,
    /// Needed to protect someone's vital interests.
    VitalInterests,
    /// Needed for a task in the public interest.
    PublicTask,
    /// The organization's legitimate interests.
    LegitimateInterests,
}

impl LegalBasis {
    /// Every basis, for messages that list them.
    pub const ALL: [&'static str; 6] = [
        "consent",
        "contract",
        "legal_obligation",
        "vital_interests",
        "public_task",
        "legitimate_interests",
    ];
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(Purpose::new("research.cardiology").is_ok());
        for bad in ["", "a..b", ".a", "a.", "A", "a b", "é"] {
            assert!(Purpose::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_ancestor_covers_and_a_sibling_prefix_does_not() {
        let p = |s: &str| Purpose::new(s).unwrap();
        assert!(p("research").covers(&p("research.cardiology")));
        assert!(p("research").covers(&p("research")));
        assert!(!p("research.cardiology").covers(&p("research")));
        assert!(!p("research").covers(&p("researchers")));
        assert!(!p("research.a").covers(&p("research.ab")));
    }

    fn name() -> impl Strategy<Value = String> {
        prop::collection::vec("[a-c]{1,2}", 1..4).prop_map(|s| s.join("."))
    }

    proptest! {
        #[test]
        fn covering_is_the_prefix_order_on_segments(a in name(), b in name()) {
            let (pa, pb) = (Category::new(&a).unwrap(), Category::new(&b).unwrap());
            let sa: Vec<&str> = a.split('.').collect();
            let sb: Vec<&str> = b.split('.').collect();
            prop_assert_eq!(pa.covers(&pb), sb.starts_with(&sa));
            // Antisymmetric, and transitive through every ancestor of b.
            if pa.covers(&pb) && pb.covers(&pa) { prop_assert_eq!(&a, &b); }
            for i in 1..=sb.len() {
                let mid = Category::new(sb[..i].join(".")).unwrap();
                if pa.covers(&mid) { prop_assert!(pa.covers(&pb)); }
            }
        }
    }
}
