//! Erasure and export of one data subject among 1,000,000 stored, on a real `policy.db` and
//! `pods.db` in a temporary directory; beside them, in the same run, a plain indexed SQLite
//! delete of the same rows (no `secure_delete`, no checkpoint, no receipt): what any erasure
//! must at least do.
//!
//! The records are 1,000,000 rows of 100,000 subjects (ten each) in one dataset; `pods
//! subject erase` then deletes one subject's records, consents and processing rows with
//! `secure_delete`, destroys the subject's payload key in the store, checkpoints both WALs with
//! truncation and signs a receipt.
//!
//! Then the cost an erasure adds to a running workflow: a workflow holding per-key state of
//! 100,000 subjects (one value each, so each is its subject's) removes the erased subject's
//! value before its next step, which looks at every value's owner; beside it, in the same run,
//! the same one-event step without an erasure.
//!
//! Last, the erasure with a peer on loopback, through two real daemons, each holding 1,000,000
//! records: from the request until the peer's signed acknowledgement is in the receipt, beside
//! an erasure through the same daemon whose subject's data went nowhere ([`peer_erasure`]).
//!
//! Target: an erasure, including the peer's acknowledgement, within 1 s. Run with
//! `cargo bench --bench erasure`.

use std::sync::Arc;
use std::time::Instant;

use pods_node::privacy::{Format, Privacy};
use pods_node::{AuditLog, SqliteStore, StoreOptions};
use pods_policy::{Category, Grant, ManualClock, Purpose};

mod peer_erasure;

const SUBJECTS: usize = 100_000;
const PER_SUBJECT: usize = 10;

const POLICY: &str = r#"
[[purpose]]
name = "research"
[[dataset]]
name = "patients"
subject = "pid"
columns = { pid = "identity.id", name = "contact.name", pulse = "health.pulse" }
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let key = libp2p::identity::Keypair::generate_ed25519();
    let audit = AuditLog::open(dir.path(), &key)?;
    let store = SqliteStore::open(dir.path(), StoreOptions::default())?;
    let privacy = Privacy::open(dir.path(), Arc::new(ManualClock::at(1_000_000)))?;
    let eraser = store.eraser();
    privacy.set_key_eraser(Arc::new(move |s: &str| {
        eraser.erase_subject_for_good(s).map(|k| k.existed)
    }));
    privacy.load_policy("policy.toml", POLICY)?;

    eprintln!(
        "importing {} records of {SUBJECTS} subjects…",
        SUBJECTS * PER_SUBJECT
    );
    let started = Instant::now();
    let mut text = String::with_capacity(SUBJECTS * PER_SUBJECT * 48);
    for r in 0..PER_SUBJECT {
        for s in 0..SUBJECTS {
            text.push_str(&format!(
                "{{\"pid\":\"s{s}\",\"name\":\"name {s} {r}\",\"pulse\":\"{}\"}}\n",
                60 + (s + r) % 40
            ));
        }
    }
    let report = privacy.import("patients", Format::Jsonl, &text, false)?;
    drop(text);
    for s in (0..SUBJECTS).step_by(100) {
        privacy.grant(Grant {
            subject: format!("s{s}"),
            purposes: vec![Purpose::new("research")?],
            categories: vec![Category::new("health")?],
            expires_at: None,
            source: "bench".into(),
        })?;
    }
    eprintln!(
        "{} records imported in {:.1?}",
        report.imported,
        started.elapsed()
    );

    // Export and erase a few subjects, each once; the median is reported.
    let mut exports = Vec::new();
    let mut erasures = Vec::new();
    for s in [500, 20_000, 41_100, 77_700, 99_900] {
        let subject = format!("s{s}");
        let t = Instant::now();
        let export = privacy.export_subject(&subject)?;
        exports.push(t.elapsed());
        assert_eq!(export.records.len(), PER_SUBJECT);
        let t = Instant::now();
        let receipt = privacy.erase(&subject, "bench", &audit)?;
        erasures.push(t.elapsed());
        assert_eq!(receipt.erased.records, PER_SUBJECT as u64);
    }

    // Baseline: the same delete on a plain table of the same shape, indexed by subject.
    let plain = rusqlite::Connection::open(dir.path().join("plain.db"))?;
    plain.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE records (id INTEGER PRIMARY KEY, subject TEXT NOT NULL, body TEXT NOT NULL);
         CREATE INDEX records_subject ON records (subject);",
    )?;
    {
        let tx = plain.unchecked_transaction()?;
        let mut insert = tx.prepare("INSERT INTO records (subject, body) VALUES (?1, ?2)")?;
        for r in 0..PER_SUBJECT {
            for s in 0..SUBJECTS {
                insert.execute(rusqlite::params![format!("s{s}"), format!("name {s} {r}")])?;
            }
        }
        drop(insert);
        tx.commit()?;
    }
    let mut deletes = Vec::new();
    for s in [500, 20_000, 41_100, 77_700, 99_900] {
        let t = Instant::now();
        plain.execute("DELETE FROM records WHERE subject = ?1", [format!("s{s}")])?;
        deletes.push(t.elapsed());
    }

    use peer_erasure::median;
    let (erase, export, delete) = (
        median(&mut erasures),
        median(&mut exports),
        median(&mut deletes),
    );
    println!(
        "erasure of one subject among {} records ({} subjects)",
        SUBJECTS * PER_SUBJECT,
        SUBJECTS
    );
    println!("  plain indexed delete (baseline)  {:>10.2?}", delete);
    println!(
        "  pods erase (local)               {:>10.2?}  {:.0}x baseline  target <= 1 s: {}",
        erase,
        erase.as_secs_f64() / delete.as_secs_f64().max(1e-9),
        if erase.as_secs_f64() <= 1.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!("  pods subject export              {:>10.2?}", export);
    state_purge()?;
    peer_erasure::run()
}

/// Subjects with a per-key value in [`state_purge`]'s workflow.
const OWNED: u32 = 100_000;

/// Times a one-event step of a workflow holding one value per subject for `OWNED` subjects,
/// without an erasure and just after one (which removes that subject's value); medians of 5.
fn state_purge() -> Result<(), Box<dyn std::error::Error>> {
    use pods_sdk::{AppBuilder, Ctx, DeterministicSystem, Envelope, Event, PerKeyState};
    const WARD: &str = r#"
[[purpose]]
name = "care"
[[workflow]]
path = "/ward/workflows/last"
purpose = "care"
basis = "legitimate_interests"
"#;
    let policy = pods_policy::Policy::parse("policy.toml", WARD)?;
    let clock = Arc::new(ManualClock::at(1_000_000));
    let gate = Arc::new(pods_policy::Gate::new(
        policy,
        pods_policy::Registry::new(),
        clock,
    ));
    let app = AppBuilder::new("ward");
    let visits = app.generator_external::<u32>("visits");
    let last = PerKeyState::<u32>::new("last");
    app.workflow("last")
        .source(&visits)
        .key_by(|v: &u32| *v)
        .processor(move |ctx: &mut Ctx<'_, ()>, v: u32| last.set(ctx, v))
        .sink();
    let mut system = DeterministicSystem::new(1);
    system.set_gate(gate.clone());
    system.launch(app.build()?)?;
    let feeder = system.feeder::<u32>("/ward/generators/visits")?;
    let event = |s: u32| Event::personal(s, Envelope::new(format!("s{s}"), &["health.pulse"]));
    for start in (0..OWNED).step_by(1_000) {
        feeder.push_events((start..start + 1_000).map(event).collect())?;
    }
    system.run_until_quiescent();
    let (mut plain, mut after) = (Vec::new(), Vec::new());
    for i in 0..5 {
        let t = Instant::now();
        feeder.push_events(vec![event(i)])?;
        system.run_until_quiescent();
        plain.push(t.elapsed());
        gate.write()
            .registry_mut()
            .erase(&format!("s{}", 1_000 + i));
        let t = Instant::now();
        feeder.push_events(vec![event(i)])?;
        system.run_until_quiescent();
        after.push(t.elapsed());
    }
    let kept = system
        .storage()
        .values::<u32>("/ward/workflows/last", "last")?;
    assert_eq!(
        kept.len(),
        OWNED as usize - 5,
        "each erased subject's value went"
    );
    let (plain, after) = (
        peer_erasure::median(&mut plain),
        peer_erasure::median(&mut after),
    );
    println!("a workflow step with per-key state of {OWNED} subjects (one value each)");
    println!("  step without an erasure (baseline) {plain:>10.2?}");
    println!(
        "  first step after an erasure       {after:>10.2?}  {:.0}x baseline",
        after.as_secs_f64() / plain.as_secs_f64().max(1e-9)
    );
    Ok(())
}
