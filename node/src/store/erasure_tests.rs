//! Sealed atoms and erasure through the store: every place that keeps atoms seals their
//! personal events, and an eraser's erasure takes effect in the running store at once.

use pods_sdk::{Path, Storage};
use serde::{Deserialize, Serialize};

use super::*;

/// An atom's columns as the sdk encodes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Atom {
    values: Vec<String>,
    keys: Option<Vec<u64>>,
    envelopes: Option<Vec<Option<Envelope>>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Envelope {
    subject: String,
    categories: Vec<String>,
}

/// An atom of (value, subject) events.
fn atom(events: &[(&str, Option<&str>)]) -> Atom {
    Atom {
        values: events.iter().map(|(v, _)| (*v).to_owned()).collect(),
        keys: None,
        envelopes: Some(
            events
                .iter()
                .map(|(_, s)| {
                    s.map(|s| Envelope {
                        subject: s.to_owned(),
                        categories: vec!["health".to_owned()],
                    })
                })
                .collect(),
        ),
    }
}

fn cbor(a: &Atom) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(a, &mut out).unwrap();
    out
}

fn decode(bytes: &[u8]) -> Atom {
    ciborium::from_reader(bytes).unwrap()
}

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(dir, StoreOptions::default()).expect("open")
}

fn stored_tags(store: &SqliteStore, table: &str) -> Vec<u8> {
    let mut stmt = store
        .conn
        .prepare(&format!("SELECT atom FROM {table}"))
        .unwrap();
    stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| b.unwrap()[0])
        .collect()
}

#[test]
fn an_eraser_is_shared_across_threads() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Eraser>();
}

#[test]
fn logged_atoms_are_sealed_and_an_erasure_takes_effect_in_the_running_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let stream = Path::parse("/app/generators/g/stream").unwrap();
    let personal = atom(&[("a-1", Some("ann")), ("x-1", None), ("b-1", Some("bob"))]);
    let plain = Atom {
        values: vec!["y".to_owned()],
        keys: None,
        envelopes: None,
    };
    store.log_atom(&stream, 0, &cbor(&personal)).unwrap();
    store.log_atom(&stream, 1, &cbor(&plain)).unwrap();
    assert_eq!(stored_tags(&store, "atoms"), [1, 0], "sealed, then plain");
    let replayed = store.replay(&stream, 0, 2).unwrap();
    assert_eq!(decode(&replayed[0]), personal);
    assert_eq!(
        replayed[1],
        cbor(&plain),
        "a plain atom comes back as it was"
    );

    let eraser = store.eraser();
    let worker = std::thread::spawn(move || eraser.erase_subject("bob"));
    assert_eq!(worker.join().unwrap().unwrap(), ErasedKey { existed: true });
    let replayed = store.replay(&stream, 0, 1).unwrap();
    assert_eq!(
        decode(&replayed[0]),
        atom(&[("a-1", Some("ann")), ("x-1", None)])
    );
    // A new event of the erased subject gets a fresh key.
    store
        .log_atom(&stream, 2, &cbor(&atom(&[("b-2", Some("bob"))])))
        .unwrap();
    drop(store);
    let mut store = open(dir.path());
    let replayed = store.replay(&stream, 0, 3).unwrap();
    assert_eq!(decode(&replayed[0]).values, ["a-1", "x-1"]);
    assert_eq!(decode(&replayed[2]), atom(&[("b-2", Some("bob"))]));
    assert_eq!(
        store.eraser().erase_subject("nobody").unwrap(),
        ErasedKey { existed: false }
    );
}

#[test]
fn moves_quarantined_atoms_and_pulled_atoms_are_sealed_and_erased() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let unit = Path::parse("/app/sequencers/s").unwrap();
    let input = Path::parse("/app/generators/g/stream").unwrap();
    let output = Path::parse("/app/sequencers/s/stream").unwrap();
    let bytes = cbor(&atom(&[("a-1", Some("ann")), ("b-1", Some("bob"))]));
    let outputs = [(&output, 0, bytes.as_slice())];
    store
        .log_moved(&pods_sdk::Moved {
            unit: &unit,
            consumer_id: 9,
            input: &InputPosition {
                stream: input.clone(),
                next: 1,
            },
            outputs: &outputs,
        })
        .unwrap();
    let workflow = Path::parse("/app/workflows/wf").unwrap();
    store
        .set_aside(&workflow, 42, &input, 0, &bytes, "it crashed")
        .unwrap();
    assert_eq!(stored_tags(&store, "atoms"), [1]);
    assert_eq!(stored_tags(&store, "quarantine"), [1]);
    let mut reader = StreamReader::open(dir.path()).unwrap();
    let pulled =
        |reader: &mut StreamReader| match reader.pull(output.as_str(), 0, 10, 1 << 20).unwrap() {
            Pulled::Atoms(atoms) => decode(&atoms[0].1).values,
            other => panic!("{other:?}"),
        };
    assert_eq!(pulled(&mut reader), ["a-1", "b-1"]);
    assert!(store.eraser().erase_subject("ann").unwrap().existed);
    assert_eq!(
        pulled(&mut reader),
        ["b-1"],
        "the next pull reads without the key"
    );
    assert_eq!(
        decode(&store.quarantined().unwrap()[0].atom).values,
        ["b-1"]
    );
    assert_eq!(
        decode(&store.replay(&output, 0, 1).unwrap()[0]).values,
        ["b-1"]
    );
}

#[test]
fn an_erasure_leaves_no_key_in_the_files_and_pending_ones_complete_at_opening() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let stream = Path::parse("/app/generators/g/stream").unwrap();
    store
        .log_atom(
            &stream,
            0,
            &cbor(&atom(&[("a", Some("ann")), ("b", Some("bob"))])),
        )
        .unwrap();
    let key_of = |store: &SqliteStore, who: &str| -> Vec<u8> {
        store
            .conn
            .query_row(
                "SELECT key FROM subject_keys WHERE subject = ?1",
                [&seal::digest(who)[..]],
                |r| r.get(0),
            )
            .unwrap()
    };
    let (ann, bob) = (key_of(&store, "ann"), key_of(&store, "bob"));
    let in_files = |key: &[u8]| {
        std::fs::read_dir(dir.path()).unwrap().any(|e| {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            bytes.windows(key.len()).any(|w| w == key)
        })
    };
    assert!(in_files(&ann) && in_files(&bob));
    store.eraser().erase_subject("bob").unwrap();
    assert!(
        !in_files(&bob),
        "the erased key is gone while the store is open"
    );
    assert!(in_files(&ann));
    // An erasure recorded but not checkpointed (a crash) completes when the store opens.
    store
        .conn
        .execute("INSERT INTO erasures DEFAULT VALUES", [])
        .unwrap();
    drop(store);
    let store = open(dir.path());
    let pending: i64 = store
        .conn
        .query_row("SELECT count(*) FROM erasures", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0);
    let secure: i64 = store
        .conn
        .query_row("PRAGMA secure_delete", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        secure, 2,
        "the store's own deletions are zeroed in their pages"
    );
    let eraser_conn = schema::open(&dir.path().join(DATABASE), false).unwrap();
    let secure: i64 = eraser_conn
        .query_row("PRAGMA secure_delete", [], |r| r.get(0))
        .unwrap();
    assert_eq!(secure, 1, "an eraser's connection zeroes freed pages too");
    assert!(Eraser::open(&dir.path().join("absent")).is_err());
}

/// Writes a clear value, replaces it, compacts both records away and checkpoints the WAL
/// away; returns whether the first value is still somewhere in the files.
fn replaced_value_lingers(options: StoreOptions, unscrubbed: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path(), options).expect("open");
    if unscrubbed {
        store
            .conn
            .pragma_update(None, "secure_delete", "OFF")
            .unwrap();
    }
    commit_owned(&mut store, 1, &[(4, Some("OLD-PLAIN-VALUE"), None)]);
    commit_owned(&mut store, 2, &[(4, Some("NEW-PLAIN-VALUE"), None)]);
    assert!(in_files(dir.path(), "OLD-PLAIN-VALUE"));
    assert_eq!(store.compact(super::tests::WF).unwrap(), 2);
    store
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    assert!(in_files(dir.path(), "NEW-PLAIN-VALUE"));
    in_files(dir.path(), "OLD-PLAIN-VALUE")
}

#[test]
fn the_stores_own_deletions_leave_no_trace_in_their_pages() {
    assert!(!replaced_value_lingers(StoreOptions::default(), false));
    let full = StoreOptions {
        scrub: Scrub::Full,
        ..StoreOptions::default()
    };
    assert!(!replaced_value_lingers(full, false));
    // The scan would see it: without scrubbing, the deleted record stays in its page.
    assert!(replaced_value_lingers(StoreOptions::default(), true));
}

/// Commits step `step` of `/app/workflows/wf` writing, per (key, value, owner), one value of
/// per-key state 7 (`None` value: removed).
fn commit_owned(
    store: &mut SqliteStore,
    step: u64,
    writes: &[(u64, Option<&str>, Option<pods_sdk::ValueOwner<'_>>)],
) {
    let state = pods_sdk::StateName {
        workflow: Path::parse("/app/workflows/wf").unwrap(),
        task: 1,
        name: std::sync::Arc::from("last"),
        id: 7,
    };
    let values: Vec<Option<String>> = writes.iter().map(|w| w.1.map(str::to_owned)).collect();
    let writes: Vec<pods_sdk::StateWrite<'_>> = writes
        .iter()
        .zip(&values)
        .map(|(w, v)| pods_sdk::StateWrite {
            state: &state,
            key: Some(pods_sdk::Key(w.0)),
            value: v.as_ref().map(|v| v as &dyn pods_sdk::StateValue),
            owner: w.2,
        })
        .collect();
    super::tests::commit_step(store, (step, 1), None, &writes, &[]).expect("commit");
}

/// The state values of `/app/workflows/wf` read back: (key, value, owner).
fn owned_values(store: &SqliteStore) -> Vec<(u64, String, Option<Option<String>>)> {
    let r = store.recover(super::tests::WF).expect("recover");
    r.values
        .iter()
        .map(|(slot, bytes)| {
            let value: String = ciborium::from_reader(bytes.as_slice()).unwrap();
            let owner = r.owners.get(slot).map(|o| o.clone().map(|s| s.0));
            (slot.1.map_or(0, |k| k.0), value, owner)
        })
        .collect()
}

/// Whether any file of `dir` holds `needle`.
fn in_files(dir: &std::path::Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[test]
fn state_of_one_subject_is_sealed_and_goes_with_their_key_in_snapshot_and_changelog() {
    use pods_sdk::{SubjectId, ValueOwner};
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let (ann, bob) = (SubjectId("ann".into()), SubjectId("bob".into()));
    commit_owned(
        &mut store,
        1,
        &[
            (1, Some("ANN-STATE-1"), Some(ValueOwner::Subject(&ann))),
            (2, Some("BOB-STATE-1"), Some(ValueOwner::Subject(&bob))),
            (3, Some("SHARED-STATE"), Some(ValueOwner::Shared)),
            (4, Some("PLAIN-STATE"), None),
        ],
    );
    // Step 1 goes to the snapshot; step 2 stays in the changelog.
    assert_eq!(store.compact(super::tests::WF).unwrap(), 1);
    commit_owned(
        &mut store,
        2,
        &[
            (1, Some("ANN-STATE-2"), Some(ValueOwner::Subject(&ann))),
            (5, Some("BOB-STATE-2"), Some(ValueOwner::Subject(&bob))),
        ],
    );
    for secret in ["ANN-STATE", "BOB-STATE"] {
        assert!(!in_files(dir.path(), secret), "{secret} in clear");
    }
    for clear in ["SHARED-STATE", "PLAIN-STATE"] {
        assert!(in_files(dir.path(), clear), "the scan finds {clear}");
    }
    let some = |s: &str| Some(Some(s.to_owned()));
    let all = vec![
        (1, "ANN-STATE-2".to_owned(), some("ann")),
        (2, "BOB-STATE-1".to_owned(), some("bob")),
        (3, "SHARED-STATE".to_owned(), Some(None)),
        (4, "PLAIN-STATE".to_owned(), None),
        (5, "BOB-STATE-2".to_owned(), some("bob")),
    ];
    assert_eq!(owned_values(&store), all);

    assert!(store.eraser().erase_subject("bob").unwrap().existed);
    let left: Vec<_> = all
        .iter()
        .filter(|v| v.0 != 2 && v.0 != 5)
        .cloned()
        .collect();
    assert_eq!(owned_values(&store), left, "the running store");
    drop(store);
    let store = open(dir.path());
    assert_eq!(owned_values(&store), left, "reopened");

    // A sealed value altered in the snapshot is a bad record, not a value gone.
    let mut value: Vec<u8> = store
        .conn
        .query_row("SELECT value FROM snapshot WHERE key = 1", [], |r| r.get(0))
        .unwrap();
    if let Some(last) = value.last_mut() {
        *last ^= 1;
    }
    store
        .conn
        .execute("UPDATE snapshot SET value = ?1 WHERE key = 1", [value])
        .unwrap();
    let err = store.recover(super::tests::WF).err();
    assert!(
        matches!(&err, Some(NodeError::BadRecord { what, .. }) if what == "snapshot value"),
        "{err:?}"
    );
}

/// An atom of records (column → value), each with its subject's envelope or none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Records {
    values: Vec<std::collections::BTreeMap<String, String>>,
    keys: Option<Vec<u64>>,
    envelopes: Option<Vec<Option<Envelope>>>,
}

/// A record's (column, value) pairs, and its subject.
type Row<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);

fn records(rows: &[Row<'_>]) -> Records {
    Records {
        values: rows
            .iter()
            .map(|(r, _)| r.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect())
            .collect(),
        keys: None,
        envelopes: Some(
            rows.iter()
                .map(|(_, s)| {
                    s.map(|s| Envelope {
                        subject: s.to_owned(),
                        categories: vec!["contact.name".to_owned()],
                    })
                })
                .collect(),
        ),
    }
}

#[test]
fn a_subjects_records_are_rectified_in_logged_and_quarantined_atoms() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let stream = Path::parse("/app/generators/g/stream").unwrap();
    let first = records(&[
        (&[("pid", "ann"), ("name", "Ann A")], Some("ann")),
        (&[("pid", "bob"), ("name", "Bob B")], Some("bob")),
        (&[("name", "not personal")], None),
    ]);
    let second = records(&[(&[("pid", "ann"), ("pulse", "70")], Some("ann"))]);
    let bytes = |r: &Records| {
        let mut out = Vec::new();
        ciborium::into_writer(r, &mut out).unwrap();
        out
    };
    store.log_atom(&stream, 0, &bytes(&first)).unwrap();
    store.log_atom(&stream, 1, &bytes(&second)).unwrap();
    let workflow = Path::parse("/app/workflows/wf").unwrap();
    store
        .set_aside(&workflow, 42, &stream, 0, &bytes(&first), "it crashed")
        .unwrap();

    let name = ciborium::Value::Text("Ann B".into());
    let changes = vec![("name".to_owned(), Some(name))];
    let elsewhere = ["/app/generators/other/stream".to_owned()];
    assert_eq!(
        store
            .eraser()
            .rectify_subject("ann", &changes, Some(&elsewhere))
            .unwrap(),
        0,
        "only the streams named"
    );
    assert_eq!(
        store
            .eraser()
            .rectify_subject("ann", &changes, None)
            .unwrap(),
        2
    );
    let corrected = records(&[
        (&[("pid", "ann"), ("name", "Ann B")], Some("ann")),
        (&[("pid", "bob"), ("name", "Bob B")], Some("bob")),
        (&[("name", "not personal")], None),
    ]);
    let read = |store: &mut SqliteStore| -> Vec<Records> {
        store
            .replay(&stream, 0, 2)
            .unwrap()
            .iter()
            .map(|a| ciborium::from_reader(a.as_slice()).unwrap())
            .collect()
    };
    assert_eq!(read(&mut store), [corrected.clone(), second.clone()]);
    let quarantined = store.quarantined().unwrap();
    let aside: Records = ciborium::from_reader(quarantined[0].atom.as_slice()).unwrap();
    assert_eq!(aside, corrected);
    assert_eq!(stored_tags(&store, "atoms"), [1, 1], "sealed again");
    // Again: nothing left to change. Removing the column takes it out.
    assert_eq!(
        store
            .eraser()
            .rectify_subject("ann", &changes, None)
            .unwrap(),
        0
    );
    let removed = vec![("pulse".to_owned(), None)];
    assert_eq!(
        store
            .eraser()
            .rectify_subject("ann", &removed, None)
            .unwrap(),
        1
    );
    drop(store);
    let mut store = open(dir.path());
    let ann_only = records(&[(&[("pid", "ann")], Some("ann"))]);
    assert_eq!(read(&mut store), [corrected, ann_only]);
}

#[test]
fn a_subject_erased_for_good_gets_no_key_again_and_what_is_sealed_for_them_never_opens() {
    use pods_sdk::{SubjectId, ValueOwner};
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let stream = Path::parse("/app/generators/g/stream").unwrap();
    store
        .log_atom(&stream, 0, &cbor(&atom(&[("b-0", Some("bob"))])))
        .unwrap();
    let erased = store.eraser().erase_subject_for_good("bob").unwrap();
    assert_eq!(erased, ErasedKey { existed: true });
    // A step that admitted bob's data before the erasure commits after it.
    store
        .log_atom(
            &stream,
            1,
            &cbor(&atom(&[("a-1", Some("ann")), ("b-1", Some("bob"))])),
        )
        .unwrap();
    let bob = SubjectId("bob".into());
    commit_owned(
        &mut store,
        1,
        &[(9, Some("BOB-LATE"), Some(ValueOwner::Subject(&bob)))],
    );
    let replayed = store.replay(&stream, 0, 2).unwrap();
    assert_eq!(decode(&replayed[0]).values, Vec::<String>::new());
    assert_eq!(decode(&replayed[1]), atom(&[("a-1", Some("ann"))]));
    assert_eq!(
        owned_values(&store),
        Vec::new(),
        "bob's late value does not open"
    );
    let keys: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM subject_keys WHERE subject = ?1",
            [&digest_of("bob")[..]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(keys, 0, "no key stored for bob again");
    assert_eq!(
        store.eraser().erase_subject_for_good("bob").unwrap(),
        ErasedKey { existed: false }
    );
    drop(store);
    let mut store = open(dir.path());
    assert_eq!(
        decode(&store.replay(&stream, 1, 2).unwrap()[0]).values,
        ["a-1"]
    );
}

fn digest_of(subject: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, subject.as_bytes())
        .as_ref()
        .to_vec()
}
