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
    assert_eq!(secure, 1, "deleted content is overwritten");
    assert!(Eraser::open(&dir.path().join("absent")).is_err());
}
