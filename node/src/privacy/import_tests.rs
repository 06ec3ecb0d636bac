use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pods_policy::ManualClock;

use super::*;
use crate::privacy::Feeds;

const POLICY: &str = r#"
[[purpose]]
name = "research"

[[dataset]]
name = "patients"
subject = "pid"
columns = { pid = "identity.id", name = "contact.name", pulse = "health.pulse" }
feed = "/clinic/generators/visits"

[[workflow]]
path = "/clinic/workflows/study"
purpose = "research"
basis = "consent"
"#;

const PATH: &str = "/clinic/generators/visits";
const CSV: &str = "pid,name,pulse\nann,Ann,61\nbob,Bob,72\n";

/// An atom fed: the generator, the offset, the events.
type Fed = (String, u64, Vec<Event<Row>>);

/// Generators as the runtime keeps them: each atom at the next offset, an offset taken once.
#[derive(Default)]
struct Generators {
    next: Mutex<HashMap<String, u64>>,
    atoms: Mutex<Vec<Fed>>,
    broken: AtomicBool,
}

impl Generators {
    fn at(&self, next: u64) {
        self.next.lock().unwrap().insert(PATH.into(), next);
    }
    fn fed(&self) -> Vec<Fed> {
        self.atoms.lock().unwrap().clone()
    }
}

impl Feeds for Generators {
    fn next(&self, path: &str) -> Result<u64, NodeError> {
        Ok(*self.next.lock().unwrap().entry(path.into()).or_default())
    }
    fn feed(&self, path: &str, offset: u64, events: Vec<Event<Row>>) -> Result<bool, NodeError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(NodeError::Privacy("the generator is sealed".into()));
        }
        let mut next = self.next.lock().unwrap();
        let n = next.entry(path.into()).or_default();
        if offset < *n {
            return Ok(false);
        }
        if offset > *n {
            return Err(NodeError::Privacy(format!("gap: {offset} past {n}")));
        }
        *n += 1;
        self.atoms
            .lock()
            .unwrap()
            .push((path.into(), offset, events));
        Ok(true)
    }
}

fn setup() -> (tempfile::TempDir, Privacy, Arc<Generators>) {
    let dir = tempfile::tempdir().unwrap();
    let p = Privacy::open(dir.path(), Arc::new(ManualClock::at(5_000))).unwrap();
    p.load_policy("policy.toml", POLICY).unwrap();
    let generators = Arc::new(Generators::default());
    p.set_feed(generators.clone());
    (dir, p, generators)
}

fn notes(p: &Privacy) -> i64 {
    p.db()
        .unwrap()
        .query_row("SELECT count(*) FROM feeds", [], |r| r.get(0))
        .unwrap()
}

/// The two rows of [`CSV`] as the generator receives them.
fn visits() -> Vec<Event<Row>> {
    // CSV cells are text.
    let row = |pid: &str, name: &str, pulse: &str| {
        let mut r = Row::new();
        r.insert("pid".into(), pid.into());
        r.insert("name".into(), name.into());
        r.insert("pulse".into(), pulse.into());
        let envelope = Envelope::new(pid, &["contact.name", "health.pulse"]).collected_at(5_000);
        Event::personal(r, envelope)
    };
    vec![row("ann", "Ann", "61"), row("bob", "Bob", "72")]
}

fn resumed(records: u64, fed: bool) -> ResumedImport {
    ResumedImport {
        dataset: "patients".into(),
        records,
        fed,
    }
}

#[test]
fn an_import_is_fed_as_one_atom_at_the_generators_next_offset() {
    let (_dir, p, generators) = setup();
    generators.at(3);
    let report = p.import("patients", Format::Csv, CSV, false).unwrap();
    assert_eq!((report.imported, report.subjects), (2, 2));
    assert_eq!(generators.fed(), vec![(PATH.to_owned(), 3, visits())]);
    assert_eq!(notes(&p), 0, "the note goes once the atom is fed");
    assert_eq!(p.resume_feeds().unwrap(), vec![]);
    assert_eq!(generators.fed().len(), 1);
}

#[test]
fn an_import_that_cannot_be_fed_stores_nothing() {
    let (_dir, p, generators) = setup();
    generators.broken.store(true, Ordering::SeqCst);
    assert!(p.import("patients", Format::Csv, CSV, false).is_err());
    assert!(p.records_of("ann").unwrap().is_empty());
    assert_eq!(notes(&p), 0);
}

/// Puts back the note of the import of records 1 and 2 (the first import), to `offset`: what a
/// crash after the commit leaves.
fn cut(p: &Privacy, offset: u64) {
    p.db()
        .unwrap()
        .execute(
            "INSERT INTO feeds (dataset, path, offset, first, last)
             VALUES ('patients', ?1, ?2, 1, 2)",
            params![PATH, offset as i64],
        )
        .unwrap();
}

#[test]
fn an_import_cut_before_its_feed_is_fed_once_at_the_next_start() {
    let (_dir, p, generators) = setup();
    p.import("patients", Format::Csv, CSV, false).unwrap();
    // Cut after the atom was fed (offset 0 taken): the start only drops the note.
    cut(&p, 0);
    assert_eq!(p.resume_feeds().unwrap(), vec![resumed(2, false)]);
    assert_eq!((generators.fed().len(), notes(&p)), (1, 0));
    // Cut before it was fed (the generator's next offset is the note's): fed from the stored
    // records, the same events; a second start feeds nothing.
    cut(&p, 1);
    assert_eq!(p.resume_feeds().unwrap(), vec![resumed(2, true)]);
    assert_eq!(generators.fed()[1], (PATH.to_owned(), 1, visits()));
    assert_eq!(p.resume_feeds().unwrap(), vec![]);
    assert_eq!((generators.fed().len(), notes(&p)), (2, 0));
}

#[test]
fn records_gone_before_the_restart_are_not_fed() {
    let (_dir, p, generators) = setup();
    p.import("patients", Format::Csv, CSV, false).unwrap();
    cut(&p, 1);
    p.db()
        .unwrap()
        .execute("DELETE FROM records WHERE subject = 'ann'", [])
        .unwrap();
    assert_eq!(p.resume_feeds().unwrap(), vec![resumed(1, true)]);
    assert_eq!(
        generators.fed()[1],
        (PATH.to_owned(), 1, visits()[1..].to_vec())
    );
    p.db().unwrap().execute("DELETE FROM records", []).unwrap();
    cut(&p, 2);
    assert_eq!(p.resume_feeds().unwrap(), vec![resumed(0, false)]);
    assert_eq!((generators.fed().len(), notes(&p)), (2, 0));
}

#[test]
fn a_note_past_the_generators_next_offset_is_an_error_that_keeps_it() {
    let (_dir, p, _generators) = setup();
    p.import("patients", Format::Csv, CSV, false).unwrap();
    cut(&p, 9);
    let e = p.resume_feeds().unwrap_err().to_string();
    assert!(e.contains("atom 9") && e.contains("next atom is 1"), "{e}");
    assert_eq!(notes(&p), 1);
}
