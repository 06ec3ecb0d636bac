use std::sync::Arc;

use pods_policy::{Category, ManualClock, PolicyError, Purpose};
use serde_json::{Map, Value};

use super::*;

const POLICY: &str = r#"
[[purpose]]
name = "research.cardiology"

[retention]
health = "30d"

[[dataset]]
name = "patients"
subject = "pid"
columns = { pid = "identity.id", name = "contact.name", pulse = "health.pulse" }

[[workflow]]
path = "/clinic/workflows/study"
purpose = "research.cardiology"
basis = "consent"
"#;

fn grant(subject: &str, purpose: &str) -> Grant {
    Grant {
        subject: subject.into(),
        purposes: vec![Purpose::new(purpose).unwrap()],
        categories: vec![Category::new("health").unwrap()],
        expires_at: None,
        source: "test".into(),
    }
}

fn open(dir: &Path, clock: &ManualClock) -> Privacy {
    Privacy::open(dir, Arc::new(clock.clone())).unwrap()
}

/// Every byte of every file in `dir` (the database and its WAL).
fn bytes_of(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap_or_default());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_bad_policy_changes_nothing_and_a_good_one_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let p = open(dir.path(), &clock);
    p.load_policy("policy.toml", POLICY).unwrap();
    let err = p
        .load_policy("bad.toml", "[[purpose]]\nname = \"Bad Name\"\n")
        .unwrap_err();
    let NodeError::Policy(PolicyError::Invalid { file, problems }) = &err else {
        panic!("{err}");
    };
    assert_eq!((file.as_str(), problems[0].line), ("bad.toml", 2));
    assert_eq!(p.policy_info().unwrap().text, POLICY);
    drop(p);
    let p = open(dir.path(), &clock);
    let info = p.policy_info().unwrap();
    assert_eq!(
        (info.text.as_str(), info.loaded_at, info.purposes),
        (POLICY, Some(1_000), 1)
    );
}

#[test]
fn consents_and_their_history_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let p = open(dir.path(), &clock);
    let err = p.grant(grant("ann", "research")).unwrap_err();
    assert!(err.to_string().contains("not in the policy"), "{err}");
    p.load_policy("policy.toml", POLICY).unwrap();
    let first = p.grant(grant("ann", "research")).unwrap();
    clock.advance(10);
    let withdrawn = p.withdraw("ann", None).unwrap();
    assert_eq!(withdrawn.len(), 1);
    let second = p.grant(grant("ann", "research.cardiology")).unwrap();
    p.restrict("bob", true).unwrap();
    drop(p);
    let p = open(dir.path(), &clock);
    let history = p.consents(Some("ann"));
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[0].id, history[0].withdrawn_at),
        (first.id, Some(1_010))
    );
    assert_eq!((history[1].id, history[1].withdrawn_at), (second.id, None));
    assert!(p.export_subject("bob").unwrap().restricted);
    let third = p.grant(grant("cy", "research")).unwrap();
    assert!(third.id > second.id);
}

#[test]
fn an_import_with_bad_rows_imports_nothing_unless_skipping() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let p = open(dir.path(), &clock);
    let csv = "pid,name,pulse\nann,Ann,61\n,Nobody,70\nbob,Bob,72\n";
    let err = p.import("patients", Format::Csv, csv, false).unwrap_err();
    assert!(err.to_string().contains("not in the policy"), "{err}");
    p.load_policy("policy.toml", POLICY).unwrap();
    let err = p.import("patients", Format::Csv, csv, false).unwrap_err();
    let NodeError::ImportRefused { bad } = &err else {
        panic!("{err}")
    };
    assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![3]);
    assert!(err.to_string().contains("line 3"), "{err}");
    assert!(p.records_of("ann").unwrap().is_empty());
    let report = p.import("patients", Format::Csv, csv, true).unwrap();
    assert_eq!(
        (report.imported, report.subjects, report.skipped.len()),
        (2, 2, 1)
    );
    let ann = p.records_of("ann").unwrap();
    assert_eq!(ann.len(), 1);
    assert_eq!(
        ann[0].fields.get("pulse"),
        Some(&Value::String("61".into()))
    );
}

#[test]
fn rectification_leaves_no_old_value_in_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let p = open(dir.path(), &clock);
    p.load_policy("policy.toml", POLICY).unwrap();
    let jsonl = "{\"pid\":\"ann\",\"name\":\"OLD-NAME-MARKER-1\"}\n{\"pid\":\"bob\",\"name\":\"BOB-MARKER-2\"}\n";
    p.import("patients", Format::Jsonl, jsonl, false).unwrap();
    assert!(contains(&bytes_of(dir.path()), "OLD-NAME-MARKER-1"));
    let mut changes = Map::new();
    changes.insert("name".into(), Value::String("NEW-NAME".into()));
    assert_eq!(
        p.rectify("ann", "patients", &changes).unwrap(),
        Corrected {
            records: 1,
            atoms: 0,
            peers: vec![]
        }
    );
    let all = bytes_of(dir.path());
    assert!(!contains(&all, "OLD-NAME-MARKER-1"));
    assert!(contains(&all, "BOB-MARKER-2"));
    assert_eq!(
        p.records_of("ann").unwrap()[0].fields.get("name"),
        Some(&Value::String("NEW-NAME".into()))
    );
    let mut bad = Map::new();
    bad.insert("pid".into(), Value::String("eve".into()));
    assert!(p.rectify("ann", "patients", &bad).is_err());
    bad.clear();
    bad.insert("email".into(), Value::Null);
    assert!(p.rectify("ann", "patients", &bad).is_err());
}

#[test]
fn records_past_retention_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let p = open(dir.path(), &clock);
    p.load_policy("policy.toml", POLICY).unwrap();
    p.import("patients", Format::Jsonl, "{\"pid\":\"ann\"}\n", false)
        .unwrap();
    clock.advance(29 * 86_400);
    assert_eq!(p.purge_expired().unwrap(), 0);
    p.import("patients", Format::Jsonl, "{\"pid\":\"bob\"}\n", false)
        .unwrap();
    clock.advance(86_400);
    assert_eq!(p.purge_expired().unwrap(), 1);
    assert!(p.records_of("ann").unwrap().is_empty());
    assert_eq!(p.records_of("bob").unwrap().len(), 1);
}
