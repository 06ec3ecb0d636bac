//! Erasure of a data subject reaches the state workflows derived from their data: per-key
//! values that only their events wrote (through a stream, a portal's requests or a
//! continuation) are removed before each workflow's next step, and the removal is committed;
//! values of other subjects, and values several subjects' events wrote, stay.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pods_sdk::{
    AppBuilder, AskError, Ctx, Decision, Envelope, Event, Key, Path, PerKeyState, PerSubjectState,
    PolicyGate, SubjectId,
};

use crate::{Rt, Sys};

/// A gate that admits everyone but the subjects it erased, and counts its erasures.
#[derive(Default)]
struct Erasing {
    erased: Mutex<HashSet<String>>,
    count: AtomicU64,
}

impl Erasing {
    fn erase(&self, subject: &str) {
        if let Ok(mut e) = self.erased.lock()
            && e.insert(subject.to_owned())
        {
            self.count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl PolicyGate for Erasing {
    fn admit(&self, _workflow: &Path, envelope: Option<&Envelope>) -> Decision {
        match envelope {
            Some(e) if self.is_erased(&e.subject) => Decision::Deny,
            _ => Decision::Admit,
        }
    }
    fn erasures(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
    fn is_erased(&self, subject: &SubjectId) -> bool {
        self.erased.lock().is_ok_and(|e| e.contains(&subject.0))
    }
}

/// A visit: who, and in which ward.
type Visit = (String, String);

fn visit(who: &str, ward: &str) -> Event<Visit> {
    Event::personal(
        (who.to_owned(), ward.to_owned()),
        Envelope::new(who, &["health.visit"]),
    )
}

/// `visits` feeds `wards` (keyed by ward: one value per ward, shared when several people
/// visited it) and `desk`, which asks the `notes` portal per visit (keyed by person: the
/// replier's state is written under the request's envelope) and keeps, per person, the last
/// reply it got (written by the continuation, under the visit's envelope).
fn clinic(rt: Rt, gate: Arc<Erasing>) -> (Sys, pods_sdk::Feeder<Visit>) {
    let app = AppBuilder::new("clinic");
    let visits = app.generator_external::<Visit>("visits");
    let in_ward = PerKeyState::<u32>::new("in_ward");
    app.workflow("wards")
        .source(&visits)
        .key_by(|v: &Visit| v.1.clone())
        .processor(move |ctx: &mut Ctx<'_, ()>, _v: Visit| {
            in_ward.update(ctx, |n| *n += 1);
        })
        .sink();
    let notes = app.portal_keyed::<Visit, u32, String>("notes", |v: &Visit| v.0.clone());
    let none = app.generator_from_atoms::<Visit>("none", vec![]);
    let kept = PerKeyState::<u32>::new("notes");
    app.workflow("records")
        .source(&none)
        .replier(&notes, move |ctx, v: Visit, to| {
            let n = kept.update(ctx, |n| {
                *n += 1;
                *n
            });
            ctx.reply(to, n.unwrap_or(0));
            let _ = v;
        })
        .sink();
    let last = PerKeyState::<u32>::new("last");
    let p = notes.clone();
    app.workflow("desk")
        .source(&visits)
        .key_by(|v: &Visit| v.0.clone())
        .asker(&notes, move |ctx: &mut Ctx<'_, ()>, v: Visit| {
            let h = ctx.ask(&p, v);
            let last = last.clone();
            ctx.on_reply(h, move |ctx: &mut Ctx<'_, ()>, r: Result<u32, AskError>| {
                if let Ok(n) = r {
                    last.set(ctx, n);
                }
            });
        })
        .sink();
    let mut system = Sys::new(rt, 7);
    system.set_gate(gate);
    system.launch(app.build().expect("app")).expect("launch");
    let feeder = system
        .feeder::<Visit>("/clinic/generators/visits")
        .expect("feeder");
    (system, feeder)
}

/// The committed values of state `state` of workflow `workflow` of app `clinic` (or, with a
/// path, of that workflow), by key.
fn values<V: pods_sdk::Data>(system: &Sys, workflow: &str, state: &str) -> Vec<(Option<Key>, V)> {
    let path = if workflow.starts_with('/') {
        workflow.to_owned()
    } else {
        format!("/clinic/workflows/{workflow}")
    };
    system.storage().values::<V>(&path, state).expect("values")
}

fn by<K: std::hash::Hash>(pairs: &[(K, u32)]) -> Vec<(Option<Key>, u32)> {
    let mut v: Vec<_> = pairs.iter().map(|(k, n)| (Some(Key::of(k)), *n)).collect();
    v.sort();
    v
}

fn the_state_only_an_erased_subject_wrote_goes_before_the_next_step(rt: Rt) {
    let gate = Arc::new(Erasing::default());
    let (mut system, feeder) = clinic(rt, gate.clone());
    let s = |x: &str| x.to_owned();
    feeder
        .push_events(vec![
            visit("ann", "a"),
            visit("bob", "a"),
            visit("bob", "b"),
        ])
        .expect("push");
    system.run_until_quiescent();
    assert_eq!(
        values(&system, "wards", "in_ward"),
        by(&[(s("a"), 2), (s("b"), 1)])
    );
    assert_eq!(
        values(&system, "records", "notes"),
        by(&[(s("ann"), 1), (s("bob"), 2)])
    );
    assert_eq!(
        values(&system, "desk", "last"),
        by(&[(s("ann"), 1), (s("bob"), 2)])
    );

    gate.erase("bob");
    feeder
        .push_events(vec![visit("ann", "c"), visit("bob", "a")])
        .expect("push");
    system.run_until_quiescent();
    // Ward `a` was visited by ann and bob (shared: kept); `b` by bob alone (gone).
    assert_eq!(
        values(&system, "wards", "in_ward"),
        by(&[(s("a"), 2), (s("c"), 1)])
    );
    assert_eq!(values(&system, "records", "notes"), by(&[(s("ann"), 2)]));
    assert_eq!(values(&system, "desk", "last"), by(&[(s("ann"), 2)]));
}

/// `ward`: visits keyed by ward (`partitions` of them), each counted per patient in
/// per-subject state; emits (patient, visits so far in that partition).
fn ward(rt: Rt, gate: Arc<Erasing>, partitions: usize) -> (Sys, pods_sdk::Feeder<Visit>) {
    let app = AppBuilder::new("ward");
    let visits = app.generator_external::<Visit>("visits");
    let seen = PerSubjectState::<u32>::new("visits_of");
    app.workflow("by_ward")
        .partitions(partitions)
        .source(&visits)
        .key_by(|v: &Visit| v.1.clone())
        .processor(move |ctx: &mut Ctx<'_, (String, u32)>, v: Visit| {
            let n = seen.update(ctx, |n| {
                *n += 1;
                *n
            });
            ctx.emit((v.0, n.unwrap_or(0)));
        })
        .sink();
    let mut system = Sys::new(rt, 3);
    system.set_gate(gate);
    system.launch(app.build().expect("app")).expect("launch");
    let feeder = system
        .feeder::<Visit>("/ward/generators/visits")
        .expect("feeder");
    (system, feeder)
}

/// Per-subject state follows the event's subject, not its key, and goes with the subject.
fn per_subject_state_is_the_subjects_whatever_the_key(rt: Rt) {
    let gate = Arc::new(Erasing::default());
    let (mut system, feeder) = ward(rt, gate.clone(), 1);
    let out = system
        .subscribe::<(String, u32)>("/ward/workflows/by_ward/stream")
        .expect("subscribe");
    feeder
        .push_events(vec![
            visit("ann", "a"),
            visit("bob", "a"),
            visit("ann", "b"),
        ])
        .expect("push");
    system.run_until_quiescent();
    let s = |x: &str| x.to_owned();
    let state = "/ward/workflows/by_ward";
    assert_eq!(
        values::<u32>(&system, state, "visits_of"),
        by(&[(s("ann"), 2), (s("bob"), 1)])
    );
    gate.erase("bob");
    feeder
        .push_events(vec![visit("ann", "c"), visit("bob", "c")])
        .expect("push");
    system.run_until_quiescent();
    assert_eq!(
        values::<u32>(&system, state, "visits_of"),
        by(&[(s("ann"), 3)])
    );
    assert_eq!(
        out.values().concat(),
        vec![(s("ann"), 1), (s("bob"), 1), (s("ann"), 2), (s("ann"), 3)]
    );
}

/// An event without a subject cannot reach per-subject state: the task fails, saying why.
fn per_subject_state_refuses_an_event_without_a_subject(rt: Rt) {
    let (mut system, feeder) = ward(rt, Arc::new(Erasing::default()), 1);
    let out = system
        .subscribe::<(String, u32)>("/ward/workflows/by_ward/stream")
        .expect("subscribe");
    feeder
        .push_events(vec![Event::new(("nobody".to_owned(), "a".to_owned()))])
        .expect("push");
    system.run_until_quiescent();
    let items = out.items();
    let Some(pods_sdk::StreamItem::Error(message)) = items.last() else {
        panic!("the workflow did not fail: {items:?}");
    };
    assert!(
        message.contains("per-subject state 'visits_of' used for an event without a data subject"),
        "{message}"
    );
}

/// With partitions, each holds its own value per subject (keyed into its own key range), and
/// an erasure removes the subject's value from each.
fn per_subject_state_in_partitions_goes_from_each(rt: Rt) {
    let gate = Arc::new(Erasing::default());
    let (mut system, feeder) = ward(rt, gate.clone(), 3);
    let wards = ["a", "b", "c", "d", "e", "f"];
    let atom = wards
        .iter()
        .flat_map(|w| [visit("ann", w), visit("bob", w)])
        .collect();
    feeder.push_events(atom).expect("push");
    system.run_until_quiescent();
    let state = "/ward/workflows/by_ward";
    let held = |system: &Sys| -> u32 {
        values::<u32>(system, state, "visits_of")
            .iter()
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(held(&system), 12, "every visit counted in some partition");
    gate.erase("bob");
    feeder.push_events(vec![visit("ann", "a")]).expect("push");
    system.run_until_quiescent();
    assert_eq!(
        held(&system),
        7,
        "bob's six visits gone from every partition"
    );
}

crate::on_both_runtimes!(
    the_state_only_an_erased_subject_wrote_goes_before_the_next_step,
    per_subject_state_is_the_subjects_whatever_the_key,
    per_subject_state_refuses_an_event_without_a_subject,
    per_subject_state_in_partitions_goes_from_each,
);

/// One round of the property: events (subject, key, amount), then the subjects erased after
/// it.
type Round = (Vec<(usize, u8, i64)>, Vec<usize>);

const PEOPLE: [&str; 4] = ["ann", "bob", "cy", "dan"];

/// What the per-key sums should be: a key's value, and the subjects whose events wrote it
/// since it was (re)made.
#[derive(Default)]
struct Model {
    keys: std::collections::BTreeMap<u8, (i64, HashSet<usize>)>,
    erased: HashSet<usize>,
}

impl Model {
    fn round(&mut self, events: &[(usize, u8, i64)], erase: &[usize]) {
        for &(s, k, n) in events {
            if self.erased.contains(&s) {
                continue;
            }
            let (sum, writers) = self.keys.entry(k).or_default();
            *sum += n;
            writers.insert(s);
        }
        for &s in erase {
            self.erased.insert(s);
            self.keys
                .retain(|_, (_, writers)| !(writers.len() == 1 && writers.contains(&s)));
        }
    }

    fn values(&self) -> Vec<(Option<Key>, i64)> {
        let mut v: Vec<_> = self
            .keys
            .iter()
            .map(|(k, (sum, _))| (Some(Key::of(k)), *sum))
            .collect();
        v.sort();
        v
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// For random events and erasures, a workflow's per-key sums after each step are exactly
    /// the model's: a value only erased subjects' events wrote is gone from the step after the
    /// erasure on, and every other value is intact.
    #[test]
    fn erasure_removes_exactly_the_values_only_the_erased_wrote(
        rounds in proptest::collection::vec(
            (proptest::collection::vec((0..4usize, 0..6u8, 1..5i64), 1..6),
             proptest::collection::vec(0..4usize, 0..2)),
            1..6),
    ) {
        let gate = Arc::new(Erasing::default());
        let app = AppBuilder::new("app");
        let input = app.generator_external::<(u8, i64)>("input");
        let sum = PerKeyState::<i64>::new("sum");
        app.workflow("sums")
            .source(&input)
            .key_by(|e: &(u8, i64)| e.0)
            .processor(move |ctx: &mut Ctx<'_, ()>, e: (u8, i64)| {
                sum.update(ctx, |s| *s += e.1);
            })
            .sink();
        let mut system = Sys::new(Rt::Deterministic, 5);
        system.set_gate(gate.clone());
        system.launch(app.build().expect("app")).expect("launch");
        let feeder = system.feeder::<(u8, i64)>("/app/generators/input").expect("feeder");
        let mut model = Model::default();
        let rounds: Vec<Round> = rounds;
        for (events, erase) in &rounds {
            let atom = events
                .iter()
                .map(|&(s, k, n)| Event::personal((k, n), Envelope::new(PEOPLE[s], &["c"])))
                .collect();
            feeder.push_events(atom).expect("push");
            system.run_until_quiescent();
            // The values before this round's erasures: the step ran before them.
            model.round(events, &[]);
            proptest::prop_assert_eq!(values::<i64>(&system, "/app/workflows/sums", "sum"), model.values());
            for &s in erase {
                gate.erase(PEOPLE[s]);
            }
            model.round(&[], erase);
        }
        // One more step (of a subject never erased), which removes what the last erasures
        // left.
        let last = 100;
        feeder
            .push_events(vec![Event::personal((last, 1), Envelope::new("eve", &["c"]))])
            .expect("push");
        system.run_until_quiescent();
        model.round(&[], &[]);
        let mut want = model.values();
        want.push((Some(Key::of(&last)), 1));
        want.sort();
        proptest::prop_assert_eq!(values::<i64>(&system, "/app/workflows/sums", "sum"), want);
    }
}
