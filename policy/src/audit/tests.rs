//! Tamper detection, kind by kind, and as a property over random logs.

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn signer() -> Signer {
    Signer::from_seed(&[9; 32]).unwrap()
}

/// A log of `n` entries and its head.
fn log(n: u64) -> (Vec<Entry>, Head) {
    let s = signer();
    let mut chain = Chain::new();
    let entries = (0..n)
        .map(|i| {
            chain.append(
                &s,
                1_700_000_000 + i,
                "admin",
                "peer.add",
                json!({"name": format!("p{i}"), "n": i}),
            )
        })
        .collect();
    (entries, chain.head(&s))
}

/// An entry that looks right for `seq` after `prev`, signed by another key.
fn forged(seq: u64, prev: [u8; 32]) -> Entry {
    let other = Signer::from_seed(&[66; 32]).unwrap();
    let mut chain = Chain::resume(seq, prev);
    chain.append(&other, 1_800_000_000, "admin", "subject.erase", json!("x"))
}

fn key() -> [u8; 32] {
    signer().public_key()
}

fn check(entries: &[Entry], head: Option<&Head>) -> Result<Verified, Tamper> {
    match head {
        Some(h) => verify_against(entries.to_vec(), &key(), h),
        None => verify(entries.to_vec(), &key()),
    }
}

fn tamper(seq: u64, kind: TamperKind) -> Result<Verified, Tamper> {
    Err(Tamper { seq, kind })
}

#[test]
fn an_untouched_log_verifies_and_an_empty_one_too() {
    let (entries, head) = log(5);
    let v = check(&entries, Some(&head)).unwrap();
    assert_eq!((v.count, v.head), (5, entries[4].hash));
    let (empty, head) = log(0);
    assert_eq!(check(&empty, Some(&head)).unwrap().count, 0);
    assert_eq!(check(&empty, None).unwrap().head, GENESIS);
}

#[test]
fn an_edited_field_is_named() {
    let (entries, head) = log(4);
    let edits: [fn(&mut Entry); 7] = [
        |e| e.at += 1,
        |e| e.actor.push('x'),
        |e| e.action = "subject.erase".into(),
        |e| e.detail = json!({"name": "someone else"}),
        |e| e.prev[0] ^= 1,
        |e| e.hash[31] ^= 1,
        |e| e.seq += 7,
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut t = entries.clone();
        edit(&mut t[2]);
        assert_eq!(check(&t, None), tamper(2, TamperKind::Edited), "edit {i}");
        assert_eq!(
            check(&t, Some(&head)),
            tamper(2, TamperKind::Edited),
            "edit {i}"
        );
    }
}

#[test]
fn an_entry_hashed_again_or_a_changed_signature_fails_its_signature() {
    let (entries, head) = log(3);
    let mut t = entries.clone();
    t[1].detail = json!({"name": "mallory"});
    t[1].hash = t[1].compute_hash();
    assert_eq!(check(&t, Some(&head)), tamper(1, TamperKind::BadSignature));
    let mut t = entries;
    t[0].signature[5] ^= 0x10;
    assert_eq!(check(&t, None), tamper(0, TamperKind::BadSignature));
}

#[test]
fn a_removed_entry_is_named_and_the_last_only_against_the_head() {
    let (entries, head) = log(4);
    for k in 0..3 {
        let mut t = entries.clone();
        t.remove(k);
        assert_eq!(check(&t, None), tamper(k as u64, TamperKind::Removed));
        assert_eq!(
            check(&t, Some(&head)),
            tamper(k as u64, TamperKind::Removed)
        );
    }
    let mut t = entries;
    t.truncate(2);
    assert_eq!(check(&t, None).map(|v| v.count), Ok(2));
    assert_eq!(check(&t, Some(&head)), tamper(2, TamperKind::Removed));
}

#[test]
fn an_inserted_entry_is_named() {
    let (entries, head) = log(3);
    for k in 0..=3usize {
        let prev = if k == 0 { GENESIS } else { entries[k - 1].hash };
        let mut t = entries.clone();
        t.insert(k, forged(k as u64, prev));
        assert_eq!(
            check(&t, Some(&head)),
            tamper(k as u64, TamperKind::Inserted)
        );
        let without_head = if k == 3 {
            // After the last entry, only the head tells a forgery from an edit.
            TamperKind::BadSignature
        } else {
            TamperKind::Inserted
        };
        assert_eq!(check(&t, None), tamper(k as u64, without_head));
    }
    // A copy of a genuine entry, replayed later.
    let mut t = entries.clone();
    t.insert(2, entries[0].clone());
    assert_eq!(check(&t, None), tamper(2, TamperKind::Inserted));
}

#[test]
fn swapped_entries_are_reordered() {
    let (entries, head) = log(5);
    for (i, j) in [(0, 1), (1, 3), (0, 4)] {
        let mut t = entries.clone();
        t.swap(i, j);
        assert_eq!(
            check(&t, Some(&head)),
            tamper(i as u64, TamperKind::Reordered)
        );
    }
}

/// A store keeps entries by `seq`: reordering or cutting its rows renumbers them.
fn renumber(entries: &mut [Entry]) {
    for (i, e) in entries.iter_mut().enumerate() {
        e.seq = i as u64;
    }
}

#[test]
fn renumbered_logs_are_explained_as_the_change_that_was_made() {
    let (entries, head) = log(5);
    // Two rows' contents swapped, each keeping its place's seq.
    let mut t = entries.clone();
    t.swap(1, 3);
    renumber(&mut t);
    assert_eq!(check(&t, Some(&head)), tamper(1, TamperKind::Reordered));
    let mut t = entries.clone();
    t.swap(3, 4);
    renumber(&mut t);
    assert_eq!(check(&t, Some(&head)), tamper(3, TamperKind::Reordered));
    // A row deleted and the later ones moved down.
    for k in 0..5 {
        let mut t = entries.clone();
        t.remove(k);
        renumber(&mut t);
        assert_eq!(
            check(&t, Some(&head)),
            tamper(k as u64, TamperKind::Removed)
        );
    }
    // A forged row put in and the later ones moved up.
    let mut t = entries.clone();
    t.insert(2, forged(2, entries[1].hash));
    renumber(&mut t);
    assert_eq!(check(&t, Some(&head)), tamper(2, TamperKind::Inserted));
    // A row moved to the end under a new seq.
    let mut t = entries.clone();
    let moved = t.remove(1);
    t.push(Entry { seq: 99, ..moved });
    assert_eq!(check(&t, Some(&head)), tamper(1, TamperKind::Reordered));
}

#[test]
fn a_forged_or_stale_head_is_named() {
    let (entries, head) = log(3);
    let mut forged_head = head.clone();
    forged_head.count = 2;
    assert_eq!(
        check(&entries[..2], Some(&forged_head)),
        tamper(2, TamperKind::HeadForged)
    );
    // A problem among the entries comes first.
    let mut t = entries.clone();
    t[0].actor.push('!');
    assert_eq!(check(&t, Some(&forged_head)), tamper(0, TamperKind::Edited));
    // Signed, with the right count, naming another last entry.
    let other = Chain::resume(3, [5; 32]).head(&signer());
    assert_eq!(
        check(&entries, Some(&other)),
        tamper(3, TamperKind::HeadMismatch)
    );
}

#[test]
fn entries_of_another_history_are_unlinked() {
    let s = signer();
    let (entries, _) = log(2);
    let mut fork = Chain::resume(1, [3; 32]);
    let stray = fork.append(&s, 5, "admin", "peer.add", json!(null));
    let t = vec![entries[0].clone(), stray];
    assert_eq!(check(&t, None), tamper(1, TamperKind::Unlinked));
}

#[test]
fn tamper_messages_name_the_entry() {
    let t = Tamper {
        seq: 3,
        kind: TamperKind::Removed,
    };
    assert_eq!(t.to_string(), "entry 3 was removed");
    let t = Tamper {
        seq: 0,
        kind: TamperKind::Edited,
    };
    assert!(t.to_string().starts_with("entry 0 was edited"), "{t}");
}

#[test]
fn entries_read_back_from_json_verify() {
    let (entries, head) = log(3);
    let text = serde_json::to_string(&entries).unwrap();
    assert!(text.contains(&to_hex(&entries[0].hash)), "hashes as hex");
    let back: Vec<Entry> = serde_json::from_str(&text).unwrap();
    assert_eq!(check(&back, Some(&head)).map(|v| v.count), Ok(3));
}

/// One change to a log.
#[derive(Clone, Debug)]
enum Change {
    /// A field of an entry changed (which field: 0..7).
    Field(prop::sample::Index, u8),
    /// An entry's actor changed and its hash computed again.
    Rehash(prop::sample::Index),
    /// A bit of an entry's signature flipped.
    Signature(prop::sample::Index),
    /// An entry removed.
    Remove(prop::sample::Index),
    /// A forged entry put in at a place (the end included).
    Insert(prop::sample::Index),
    /// A copy of an entry put in later.
    Duplicate(prop::sample::Index, prop::sample::Index),
    /// Two entries swapped.
    Swap(prop::sample::Index, prop::sample::Index),
}

fn change() -> impl Strategy<Value = Change> {
    use prop::sample::Index;
    prop_oneof![
        (any::<Index>(), 0u8..7).prop_map(|(i, f)| Change::Field(i, f)),
        any::<Index>().prop_map(Change::Rehash),
        any::<Index>().prop_map(Change::Signature),
        any::<Index>().prop_map(Change::Remove),
        any::<Index>().prop_map(Change::Insert),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Change::Duplicate(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Change::Swap(a, b)),
    ]
}

fn random_log() -> impl Strategy<Value = Vec<(u64, String, String, i64)>> {
    prop::collection::vec(
        (any::<u64>(), "[a-z]{0,6}", "[a-z.]{1,12}", any::<i64>()),
        2..9,
    )
}

/// Applies `change` to `entries`; returns the expected tamper with and without the head
/// (`None`: the log still verifies).
fn apply(entries: &mut Vec<Entry>, change: &Change) -> (Tamper, Option<Tamper>) {
    let n = entries.len();
    let at = |seq: usize, kind| Tamper {
        seq: seq as u64,
        kind,
    };
    match change {
        Change::Field(i, field) => {
            let k = i.index(n);
            let e = &mut entries[k];
            match field {
                0 => e.at = e.at.wrapping_add(1),
                1 => e.actor.push('x'),
                2 => e.action.push('x'),
                3 => e.detail = json!([e.detail.clone()]),
                4 => e.prev[7] ^= 0x80,
                5 => e.hash[0] ^= 1,
                _ => e.seq = e.seq.wrapping_add(1 + n as u64),
            }
            let t = at(k, TamperKind::Edited);
            (t, Some(t))
        }
        Change::Rehash(i) => {
            let k = i.index(n);
            entries[k].actor.push('y');
            entries[k].hash = entries[k].compute_hash();
            let t = at(k, TamperKind::BadSignature);
            (t, Some(t))
        }
        Change::Signature(i) => {
            let k = i.index(n);
            entries[k].signature[i.index(64)] ^= 4;
            let t = at(k, TamperKind::BadSignature);
            (t, Some(t))
        }
        Change::Remove(i) => {
            let k = i.index(n);
            entries.remove(k);
            let t = at(k, TamperKind::Removed);
            (t, (k + 1 < n).then_some(t))
        }
        Change::Insert(i) => {
            let k = i.index(n + 1);
            let prev = if k == 0 { GENESIS } else { entries[k - 1].hash };
            entries.insert(k, forged(k as u64, prev));
            let without = if k == n {
                TamperKind::BadSignature
            } else {
                TamperKind::Inserted
            };
            (at(k, TamperKind::Inserted), Some(at(k, without)))
        }
        Change::Duplicate(a, b) => {
            let j = a.index(n);
            let k = j + 1 + b.index(n - j);
            entries.insert(k, entries[j].clone());
            let t = at(k, TamperKind::Inserted);
            (t, Some(t))
        }
        Change::Swap(a, b) => {
            let i = a.index(n - 1);
            let j = i + 1 + b.index(n - 1 - i);
            entries.swap(i, j);
            let t = at(i, TamperKind::Reordered);
            (t, Some(t))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// An untouched log verifies; one change of any kind is found, at exactly the first bad
    /// entry, and named by its kind.
    #[test]
    fn one_change_of_any_kind_is_found_at_the_first_bad_entry(
        acts in random_log(),
        change in change(),
    ) {
        let s = signer();
        let mut chain = Chain::new();
        let mut entries: Vec<Entry> = acts
            .into_iter()
            .map(|(at, actor, action, n)| {
                chain.append(&s, at, &actor, &action, json!({"n": n, "actor": actor}))
            })
            .collect();
        let head = chain.head(&s);
        prop_assert_eq!(check(&entries, Some(&head)).map(|v| v.count), Ok(entries.len() as u64));
        let (with_head, without_head) = apply(&mut entries, &change);
        prop_assert_eq!(check(&entries, Some(&head)), Err(with_head));
        match without_head {
            Some(t) => prop_assert_eq!(check(&entries, None), Err(t)),
            None => prop_assert!(check(&entries, None).is_ok()),
        }
    }
}
