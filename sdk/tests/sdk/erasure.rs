//! Erasure of a data subject reaches the state workflows derived from their data: per-key
//! values that only their events wrote (through a stream, a portal's requests or a
//! continuation) are removed before each workflow's next step, and the removal is committed;
//! values of other subjects, and values several subjects' events wrote, stay.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pods_sdk::{
    AppBuilder, AskError, Ctx, Decision, Envelope, Event, Key, Path, PerKeyState, PolicyGate,
    SubjectId,
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

fn values(system: &Sys, workflow: &str, state: &str) -> Vec<(Option<Key>, u32)> {
    let path = format!("/clinic/workflows/{workflow}");
    system
        .storage()
        .values::<u32>(&path, state)
        .expect("values")
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

crate::on_both_runtimes!(the_state_only_an_erased_subject_wrote_goes_before_the_next_step);
