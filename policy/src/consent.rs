//! Consent records: what a subject agreed to, when, until when, and whether they withdrew.
//! Records are never deleted by a withdrawal: the history shows that consent once existed.

use serde::{Deserialize, Serialize};

use crate::names::{Category, Purpose};

/// A consent record's id, unique within a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConsentId(pub u64);

/// One consent a subject gave: to processing for `purposes` (and the purposes below them) of
/// data in `categories` (and the categories below them), from `granted_at` until `expires_at`
/// or `withdrawn_at`, whichever is first. Times are seconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// The record's id.
    pub id: ConsentId,
    /// The data subject who consented.
    pub subject: String,
    /// The purposes consented to.
    pub purposes: Vec<Purpose>,
    /// The data categories consented to.
    pub categories: Vec<Category>,
    /// When it was given.
    pub granted_at: u64,
    /// When it lapses, if it does.
    pub expires_at: Option<u64>,
    /// When it was withdrawn, if it was.
    pub withdrawn_at: Option<u64>,
    /// Where it was collected (a form, a contract, an import), for the record.
    pub source: String,
}

impl Consent {
    /// `true` if the consent is in force at `now`.
    pub fn in_force(&self, now: u64) -> bool {
        self.granted_at <= now
            && self.expires_at.is_none_or(|t| now < t)
            && self.withdrawn_at.is_none_or(|t| now < t)
    }

    /// `true` if the consent, in force at `now`, allows `purpose` for `category`.
    pub fn allows(&self, purpose: &Purpose, category: &Category, now: u64) -> bool {
        self.in_force(now)
            && self.purposes.iter().any(|p| p.covers(purpose))
            && self.categories.iter().any(|c| c.covers(category))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent() -> Consent {
        Consent {
            id: ConsentId(1),
            subject: "ann".into(),
            purposes: vec![Purpose::new("research").unwrap()],
            categories: vec![Category::new("health").unwrap()],
            granted_at: 100,
            expires_at: Some(200),
            withdrawn_at: None,
            source: "form".into(),
        }
    }

    #[test]
    fn a_consent_is_in_force_from_grant_until_expiry_or_withdrawal() {
        let mut c = consent();
        let p = Purpose::new("research.cardiology").unwrap();
        let hr = Category::new("health.heart_rate").unwrap();
        assert!(!c.allows(&p, &hr, 99));
        assert!(c.allows(&p, &hr, 100));
        assert!(!c.allows(&p, &hr, 200));
        c.withdrawn_at = Some(150);
        assert!(c.allows(&p, &hr, 149));
        assert!(!c.allows(&p, &hr, 150));
        assert!(!c.allows(&Purpose::new("marketing").unwrap(), &hr, 120));
        assert!(!c.allows(&p, &Category::new("contact").unwrap(), 120));
    }
}
