use std::sync::{Arc, Mutex};

use pods_sdk::{AppBuilder, DeterministicSystem, Envelope, Event, Redaction};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::clock::ManualClock;
use crate::consent::Consent;
use crate::names::{Category, Purpose};
use crate::registry::Grant;

const POLICY: &str = r#"
[[purpose]]
name = "research.cardiology"
[[purpose]]
name = "care"
[[purpose]]
name = "stats"
personal = false

[retention]
health = "30d"

[[dataset]]
name = "visits"
subject = "id"
columns = { id = "identity.id", name = "contact.name", pulse = "health.pulse" }

[[workflow]]
path = "/clinic/workflows/study"
purpose = "research.cardiology"
basis = "consent"
redact = "visits"

[[workflow]]
path = "/clinic/workflows/strict"
purpose = "research.cardiology"
basis = "consent"

[[workflow]]
path = "/clinic/workflows/treat"
purpose = "care"
basis = "contract"

[[workflow]]
path = "/clinic/workflows/count"
purpose = "stats"
basis = "legitimate_interests"
"#;

fn policy() -> Policy {
    Policy::parse("policy.toml", POLICY).unwrap()
}

fn grant(subject: &str, purpose: &str, categories: &[&str]) -> Grant {
    Grant {
        subject: subject.into(),
        purposes: vec![Purpose::new(purpose).unwrap()],
        categories: categories
            .iter()
            .map(|c| Category::new(*c).unwrap())
            .collect(),
        expires_at: None,
        source: "test".into(),
    }
}

fn env(subject: &str) -> Envelope {
    Envelope::new(subject, &["contact.name", "health.pulse"])
}

#[test]
fn each_reason_is_decided() {
    let p = policy();
    let mut r = Registry::new();
    r.grant(grant("ann", "research", &["contact", "health"]), 100)
        .unwrap();
    r.grant(grant("bob", "research.cardiology", &["contact"]), 100)
        .unwrap();
    r.grant(grant("eve", "research", &["health"]), 100).unwrap();
    let rule = |path: &str| p.workflow(path);
    let study = rule("/clinic/workflows/study");
    let strict = rule("/clinic/workflows/strict");
    let d = |r: &Registry, rule, e: Option<&Envelope>, now| decide(&p, r, rule, e, now);
    assert_eq!(d(&r, study, Some(&env("ann")), 200), Verdict::Admit);
    assert_eq!(
        d(&r, study, Some(&env("bob")), 200),
        Verdict::Redact(Arc::new(Redaction {
            fields: vec!["pulse".into()],
            categories: vec!["health.pulse".into()],
        }))
    );
    assert_eq!(
        d(&r, strict, Some(&env("bob")), 200),
        Verdict::Deny(Reason::NoConsent)
    );
    assert_eq!(
        d(&r, study, Some(&env("zed")), 200),
        Verdict::Deny(Reason::NoConsent)
    );
    assert_eq!(d(&r, study, None, 200), Verdict::Deny(Reason::NoSubject));
    assert_eq!(
        d(&r, rule("/clinic/workflows/count"), None, 200),
        Verdict::Admit
    );
    assert_eq!(
        d(&r, None, Some(&env("ann")), 200),
        Verdict::Deny(Reason::Undeclared)
    );
    assert_eq!(d(&r, None, None, 200), Verdict::Admit);
    // Another basis needs no consent, but still no erasure, restriction or expiry.
    let treat = rule("/clinic/workflows/treat");
    assert_eq!(d(&r, treat, Some(&env("zed")), 200), Verdict::Admit);
    let old = env("zed").collected_at(200);
    assert_eq!(
        d(&r, treat, Some(&old), 200 + 30 * 86_400 - 1),
        Verdict::Admit
    );
    assert_eq!(
        d(&r, treat, Some(&old), 200 + 30 * 86_400),
        Verdict::Deny(Reason::Expired)
    );
    r.restrict("zed", true);
    assert_eq!(
        d(&r, treat, Some(&env("zed")), 200),
        Verdict::Deny(Reason::Restricted)
    );
    r.erase("zed");
    assert_eq!(
        d(&r, treat, Some(&env("zed")), 200),
        Verdict::Deny(Reason::Erased)
    );
    // Consent before its grant does not count.
    assert_eq!(
        d(&r, study, Some(&env("ann")), 99),
        Verdict::Deny(Reason::NoConsent)
    );
}

/// A visit record: the subject's id, and fields of two categories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Visit {
    id: String,
    name: Option<String>,
    pulse: Option<u32>,
}

/// What the workflow received: each value with its envelope's categories.
type Received = Vec<(Visit, Vec<String>)>;

const SUBJECTS: [&str; 4] = ["s0", "s1", "s2", "s3"];
const PURPOSES: [&str; 4] = [
    "research",
    "research.cardiology",
    "care",
    "research.oncology",
];
const CATEGORIES: [&str; 5] = [
    "contact",
    "contact.name",
    "health",
    "health.pulse",
    "identity",
];

#[derive(Clone, Debug)]
enum Change {
    Grant {
        subject: usize,
        purpose: usize,
        categories: Vec<usize>,
        lasts: Option<u64>,
    },
    Withdraw {
        subject: usize,
    },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0..4usize, 0..4usize, prop::collection::vec(0..5usize, 1..3), prop::option::of(1..4u64))
            .prop_map(|(subject, purpose, categories, lasts)| Change::Grant { subject, purpose, categories, lasts }),
        1 => (0..4usize).prop_map(|subject| Change::Withdraw { subject }),
    ]
}

/// The oracle, written from the rules' statement rather than from the gate: may the
/// research.cardiology workflow see `category` of `subject` at `now`?
fn lawful(consents: &[Consent], subject: &str, category: &str, now: u64) -> bool {
    let within =
        |outer: &str, inner: &str| inner == outer || inner.starts_with(&format!("{outer}."));
    consents.iter().any(|c| {
        c.subject == subject
            && c.granted_at <= now
            && c.expires_at.is_none_or(|t| now < t)
            && c.withdrawn_at.is_none_or(|t| now < t)
            && c.purposes
                .iter()
                .any(|p| within(p.as_str(), "research.cardiology"))
            && c.categories.iter().any(|k| within(k.as_str(), category))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For random consents, withdrawals and atoms, the workflow receives exactly the events
    /// with a lawful basis at their atom's admission, and a redacted event never holds a field
    /// of a category without consent.
    #[test]
    fn a_workflow_never_receives_an_event_without_a_basis(
        rounds in prop::collection::vec(
            (prop::collection::vec(change(), 0..3),
             prop::collection::vec((0..4usize, any::<bool>(), any::<bool>()), 1..5)),
            1..6),
    ) {
        let clock = ManualClock::at(10);
        let gate = Arc::new(Gate::new(policy(), Registry::new(), Arc::new(clock.clone())));
        let app = AppBuilder::new("clinic");
        let visits = app.generator_external::<Visit>("visits");
        let seen: Arc<Mutex<Received>> = Arc::default();
        let log = seen.clone();
        app.workflow("study").source(&visits).processor(move |ctx, v: Visit| {
            let categories = ctx.envelope().map(|e| e.categories.clone()).unwrap_or_default();
            if let Ok(mut l) = log.lock() { l.push((v.clone(), categories)); }
            ctx.emit(v);
        }).sink();
        let mut system = DeterministicSystem::new(3);
        system.set_gate(Shared(gate.clone()));
        system.launch(app.build().unwrap()).unwrap();
        let feeder = system.feeder::<Visit>("/clinic/generators/visits").unwrap();
        let mut expected = Vec::new();
        for (changes, events) in rounds {
            clock.advance(1);
            let now = clock.now();
            {
                let mut rules = gate.write();
                for c in changes {
                    match c {
                        Change::Grant { subject, purpose, categories, lasts } => {
                            let cats = categories.iter().map(|i| CATEGORIES[*i]).collect::<Vec<_>>();
                            let mut g = grant(SUBJECTS[subject], PURPOSES[purpose], &cats);
                            g.expires_at = lasts.map(|l| now + l);
                            rules.registry_mut().grant(g, now).unwrap();
                        }
                        Change::Withdraw { subject } => {
                            rules.registry_mut().withdraw(SUBJECTS[subject], None, now);
                        }
                    }
                }
            }
            let consents = gate.read().registry().all();
            let mut atom = Vec::new();
            for (s, has_name, has_pulse) in events {
                let subject = SUBJECTS[s];
                let v = Visit {
                    id: subject.into(),
                    name: has_name.then(|| format!("name of {subject}")),
                    pulse: has_pulse.then_some(60),
                };
                let name_ok = lawful(&consents, subject, "contact.name", now);
                let pulse_ok = lawful(&consents, subject, "health.pulse", now);
                if name_ok || pulse_ok {
                    let mut kept = v.clone();
                    let mut cats = Vec::new();
                    if name_ok { cats.push("contact.name".to_string()) } else { kept.name = None }
                    if pulse_ok { cats.push("health.pulse".to_string()) } else { kept.pulse = None }
                    expected.push((kept, cats));
                }
                atom.push(Event::personal(v, env(subject)));
            }
            feeder.push_events(atom).unwrap();
            system.run_until_quiescent();
        }
        let seen = seen.lock().unwrap().clone();
        prop_assert_eq!(&seen, &expected);
        for (v, cats) in &seen {
            prop_assert!(v.name.is_none() || cats.iter().any(|c| c == "contact.name"));
            prop_assert!(v.pulse.is_none() || cats.iter().any(|c| c == "health.pulse"));
        }
        let counts = gate.counts();
        let study = counts.iter().find(|c| c.path == "/clinic/workflows/study").unwrap();
        prop_assert_eq!((study.admitted + study.redacted) as usize, seen.len());
    }
}

/// Lets the test keep a handle on the gate the system owns.
struct Shared(Arc<Gate>);

impl PolicyGate for Shared {
    fn admit(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
        self.0.admit(workflow, envelope)
    }
    fn for_atom<'a>(&'a self, workflow: &'a Path) -> Box<dyn AtomGate + 'a> {
        self.0.for_atom(workflow)
    }
    fn erasures(&self) -> u64 {
        self.0.erasures()
    }
    fn is_erased(&self, subject: &pods_sdk::SubjectId) -> bool {
        self.0.is_erased(subject)
    }
}

/// Per-key state that only an erased subject's events wrote is removed before the workflow's
/// next step (and that removal is committed); a value other subjects' events wrote as well
/// stays, as does every other subject's.
#[test]
fn an_erasure_removes_the_state_only_the_erased_subject_wrote() {
    use pods_sdk::{Key, MemoryStorage, PerKeyState};
    let gate = Arc::new(Gate::new(
        policy(),
        Registry::new(),
        Arc::new(ManualClock::at(10)),
    ));
    let app = AppBuilder::new("clinic");
    let visits = app.generator_external::<Visit>("visits");
    // `treat` runs on a contract: no consent needed. Keyed by person, and by pulse (shared).
    for (name, by_pulse) in [("treat", false), ("count", true)] {
        let seen = PerKeyState::<u32>::new("seen");
        let flow = app.workflow(name).source(&visits);
        let keyed = if by_pulse {
            flow.key_by(|v: &Visit| v.pulse.unwrap_or(0))
        } else {
            flow.key_by(|v: &Visit| v.id.clone())
        };
        keyed
            .processor(move |ctx, _v: Visit| {
                seen.update(ctx, |n| *n += 1);
                ctx.emit(());
            })
            .sink();
    }
    let mut system = DeterministicSystem::with_storage(1, MemoryStorage::new());
    system.set_gate(gate.clone());
    system.launch(app.build().unwrap()).unwrap();
    let feeder = system.feeder::<Visit>("/clinic/generators/visits").unwrap();
    let visit = |id: &str, pulse: u32| {
        let v = Visit {
            id: id.into(),
            name: None,
            pulse: Some(pulse),
        };
        Event::personal(v, Envelope::new(id, &["health.pulse"]))
    };
    let values = |system: &DeterministicSystem<MemoryStorage>, workflow: &str| {
        let path = format!("/clinic/workflows/{workflow}");
        system.storage().values::<u32>(&path, "seen").unwrap()
    };
    let person = |id: &str| Some(Key::of(&id.to_owned()));
    let pulse = |p: u32| Some(Key::of(&p));
    let sorted = |mut v: Vec<(Option<Key>, u32)>| {
        v.sort();
        v
    };
    feeder
        .push_events(vec![visit("ann", 60), visit("bob", 60), visit("bob", 70)])
        .unwrap();
    system.run_until_quiescent();
    assert_eq!(
        values(&system, "treat"),
        sorted(vec![(person("ann"), 1), (person("bob"), 2)])
    );
    assert_eq!(
        values(&system, "count"),
        sorted(vec![(pulse(60), 2), (pulse(70), 1)])
    );

    gate.write().registry_mut().erase("bob");
    feeder
        .push_events(vec![visit("ann", 80), visit("bob", 60)])
        .unwrap();
    system.run_until_quiescent();
    // Bob's event is refused; his count, and the pulse only he had, are gone; the pulse he
    // shared with ann is an aggregate over both and stays.
    assert_eq!(values(&system, "treat"), vec![(person("ann"), 2)]);
    assert_eq!(
        values(&system, "count"),
        sorted(vec![(pulse(60), 2), (pulse(80), 1)])
    );
}

#[test]
fn withdrawal_applies_from_the_next_atom_and_denials_are_sampled() {
    let clock = ManualClock::at(100);
    let mut registry = Registry::new();
    registry
        .grant(grant("ann", "research", &["contact", "health"]), 100)
        .unwrap();
    let gate = Gate::new(policy(), registry, Arc::new(clock.clone()));
    let path = Path::parse("/clinic/workflows/strict").unwrap();
    let mut check = gate.for_atom(&path);
    assert_eq!(check.check(Some(&env("ann"))), Decision::Admit);
    drop(check);
    clock.advance(5);
    gate.write().registry_mut().withdraw("ann", None, 105);
    let mut check = gate.for_atom(&path);
    assert_eq!(check.check(Some(&env("ann"))), Decision::Deny);
    assert_eq!(check.check(Some(&env("bob"))), Decision::Deny);
    drop(check);
    let counts = gate.counts();
    let strict = counts.iter().find(|c| c.path == path.as_str()).unwrap();
    assert_eq!(strict.admitted, 1);
    assert_eq!(strict.denied.get(&Reason::NoConsent), Some(&2));
    assert_eq!(strict.purpose.as_deref(), Some("research.cardiology"));
    let denials = gate.take_denials();
    assert_eq!(denials.sampled.len(), 2);
    assert_eq!(denials.sampled[0].reason, Reason::NoConsent);
    assert_eq!(denials.sampled[0].subject.len(), 16);
    assert!(gate.take_denials().sampled.is_empty());
}

/// `n` dotted names from `prefix`: `q0`, `q0.x`, `q0.x.y`, `q1`, … (so that some cover others).
fn dotted_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let stem = format!("{prefix}{}", i / 3);
            match i % 3 {
                0 => stem,
                1 => format!("{stem}.x"),
                _ => format!("{stem}.x.y"),
            }
        })
        .collect()
}

/// A change to the registry, with names as indexes into the pools.
#[derive(Clone, Debug)]
enum Op {
    Grant {
        subject: usize,
        purposes: Vec<usize>,
        categories: Vec<usize>,
        at: u64,
        lasts: Option<u64>,
    },
    Withdraw {
        subject: usize,
        purpose: Option<usize>,
        at: u64,
    },
    Restrict(usize, bool),
    Erase(usize),
}

fn op(names: usize) -> impl Strategy<Value = Op> {
    let some = move || prop::collection::vec(0..names, 1..3);
    prop_oneof![
        8 => (0..4usize, some(), some(), 0..40u64, prop::option::of(1..40u64)).prop_map(
            |(subject, purposes, categories, at, lasts)| Op::Grant { subject, purposes, categories, at, lasts }
        ),
        2 => (0..4usize, prop::option::of(0..names), 0..40u64)
            .prop_map(|(subject, purpose, at)| Op::Withdraw { subject, purpose, at }),
        1 => (0..4usize, any::<bool>()).prop_map(|(s, r)| Op::Restrict(s, r)),
        1 => (0..4usize).prop_map(Op::Erase),
    ]
}

/// A policy declaring every purpose of `purposes` (some not personal), retention for some of
/// `categories`, a dataset holding some of them, and workflows with the given purposes, bases
/// and redaction.
fn random_policy(
    purposes: &[String],
    categories: &[String],
    rules: &[(usize, bool, bool)],
) -> Policy {
    let mut text = String::new();
    for (i, p) in purposes.iter().enumerate() {
        text += &format!("[[purpose]]\nname = \"{p}\"\npersonal = {}\n", i % 5 != 4);
    }
    text += "[retention]\n";
    for (i, c) in categories.iter().enumerate().filter(|(i, _)| i % 4 == 1) {
        text += &format!("\"{c}\" = \"{}s\"\n", 5 + 3 * i);
    }
    let columns: Vec<String> = categories
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 2)
        .map(|(i, c)| format!("f{i} = \"{c}\""))
        .collect();
    text += &format!(
        "[[dataset]]\nname = \"rec\"\nsubject = \"id\"\ncolumns = {{ id = \"ident\", {} }}\n",
        columns.join(", ")
    );
    for (j, (purpose, consent, redact)) in rules.iter().enumerate() {
        text += &format!(
            "[[workflow]]\npath = \"/app/workflows/w{j}\"\npurpose = \"{}\"\nbasis = \"{}\"\n",
            purposes[*purpose % purposes.len()],
            if *consent { "consent" } else { "contract" }
        );
        if *redact {
            text += "redact = \"rec\"\n";
        }
    }
    Policy::parse("policy.toml", &text).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The per-atom check decides every event as `decide` does, one event at a time and the
    /// whole atom at once: with few names and with more than the 31 that have a bit of their
    /// own (and atoms of more categories than a plan keeps), at any time (the end of time
    /// included).
    #[test]
    fn the_atom_check_decides_as_decide_does(
        names in prop_oneof![2..12usize, 32..48usize],
        numbered in 0..32usize,
        rules in prop::collection::vec((0..48usize, any::<bool>(), any::<bool>()), 1..4),
        ops in prop::collection::vec(op(48), 0..80),
        events in prop::collection::vec(
            (0..5usize, prop::collection::vec(0..48usize, 0..3), prop::option::of(0..40u64)),
            1..48),
        now in prop_oneof![0..60u64, Just(u64::MAX)],
    ) {
        let purposes = dotted_names("q", names);
        let categories = dotted_names("k", names);
        let policy = random_policy(&purposes, &categories, &rules);
        let subject = |i: usize| format!("s{i}");
        let mut registry = Registry::new();
        // A subject without events names the first `numbered` names first, so that later
        // ones may be past the 31 with a bit of their own.
        if numbered > 0 {
            let first = |pool: &[String]| pool.iter().take(numbered).cloned().collect::<Vec<_>>();
            let grant = Grant {
                subject: "filler".into(),
                purposes: first(&purposes).into_iter().map(|p| Purpose::new(p).unwrap()).collect(),
                categories: first(&categories).into_iter().map(|c| Category::new(c).unwrap()).collect(),
                expires_at: None,
                source: "test".into(),
            };
            registry.grant(grant, 0).unwrap();
        }
        for op in ops {
            match op {
                Op::Grant { subject: s, purposes: p, categories: c, at, lasts } => {
                    let grant = Grant {
                        subject: subject(s),
                        purposes: p.iter().map(|i| Purpose::new(&purposes[i % names]).unwrap()).collect(),
                        categories: c.iter().map(|i| Category::new(&categories[i % names]).unwrap()).collect(),
                        expires_at: lasts.map(|l| at + l),
                        source: "test".into(),
                    };
                    registry.grant(grant, at).unwrap();
                }
                Op::Withdraw { subject: s, purpose, at } => {
                    let purpose = purpose.map(|i| Purpose::new(&purposes[i % names]).unwrap());
                    registry.withdraw(&subject(s), purpose.as_ref(), at);
                }
                Op::Restrict(s, r) => registry.restrict(&subject(s), r),
                Op::Erase(s) => registry.erase(&subject(s)),
            }
        }
        let envelopes: Vec<Option<Envelope>> = events
            .iter()
            .map(|(s, cats, collected)| {
                // Subject 4 never appears in the registry; some events have no envelope.
                (cats.len() != 2 || *s != 4).then(|| {
                    let cats: Vec<&str> = cats.iter().map(|i| categories[i % names].as_str()).collect();
                    let e = Envelope::new(subject(*s), &cats);
                    match collected { Some(at) => e.collected_at(*at), None => e }
                })
            })
            .collect();
        let expected = |path: &str, e: Option<&Envelope>| {
            match decide(&policy, &registry, policy.workflow(path), e, now) {
                Verdict::Admit => Decision::Admit,
                Verdict::Deny(_) => Decision::Deny,
                Verdict::Redact(r) => Decision::Redact(r),
            }
        };
        let paths: Vec<String> = (0..=rules.len()).map(|j| format!("/app/workflows/w{j}")).collect();
        let wanted: Vec<Vec<Decision>> = paths
            .iter()
            .map(|p| envelopes.iter().map(|e| expected(p, e.as_ref())).collect())
            .collect();
        let gate = Gate::new(policy.clone(), registry, Arc::new(ManualClock::at(now)));
        for (path, wanted) in paths.iter().zip(wanted) {
            let path = Path::parse(path).unwrap();
            let mut check = gate.for_atom(&path);
            let got: Vec<Decision> = envelopes.iter().map(|e| check.check(e.as_ref())).collect();
            prop_assert_eq!(&got, &wanted, "{}", path);
            // The whole atom at once (as the runtime asks) decides the same.
            let shared: Vec<Option<Arc<Envelope>>> =
                envelopes.iter().map(|e| e.clone().map(Arc::new)).collect();
            let mut all = Vec::new();
            gate.for_atom(&path).check_all(&shared, &mut all);
            prop_assert_eq!(all, wanted, "{} (check_all)", path);
        }
    }
}

#[test]
fn names_past_the_31st_share_a_bit_and_are_still_told_apart() {
    let mut r = Registry::new();
    // Number 31 purposes and 31 categories first (`research` and `health` among them): later
    // ones share the last bit.
    let mut purposes = vec![Purpose::new("research").unwrap()];
    purposes.extend((1..31).map(|i| Purpose::new(format!("p{i}")).unwrap()));
    let mut categories = vec![Category::new("health").unwrap()];
    categories.extend((1..31).map(|i| Category::new(format!("k{i}")).unwrap()));
    r.grant(
        Grant {
            subject: "filler".into(),
            purposes,
            categories,
            expires_at: None,
            source: "test".into(),
        },
        100,
    )
    .unwrap();
    r.grant(grant("ann", "research", &["zzz"]), 100).unwrap();
    r.grant(grant("bob", "other", &["health"]), 100).unwrap();
    let gate = Gate::new(policy(), r, Arc::new(ManualClock::at(200)));
    let path = Path::parse("/clinic/workflows/strict").unwrap();
    let mut check = gate.for_atom(&path);
    let ask = |check: &mut Box<dyn AtomGate + '_>, who: &str, cats: &[&str]| {
        check.check(Some(&Envelope::new(who, cats)))
    };
    // Ann's category and Bob's purpose share the last bit with other names; neither covers
    // what the bit's other names do.
    assert_eq!(ask(&mut check, "ann", &["zzz.a"]), Decision::Admit);
    assert_eq!(ask(&mut check, "ann", &["health.pulse"]), Decision::Deny);
    assert_eq!(ask(&mut check, "bob", &["health.pulse"]), Decision::Deny);
}

#[test]
fn an_atom_of_more_categories_than_a_plan_keeps_is_decided_event_by_event() {
    let mut r = Registry::new();
    r.grant(grant("ann", "research", &["health"]), 100).unwrap();
    let gate = Gate::new(policy(), r, Arc::new(ManualClock::at(200)));
    let path = Path::parse("/clinic/workflows/strict").unwrap();
    // 40 distinct categories: the first 32 get the plan's bits, the rest are decided alone.
    let envelopes: Vec<Option<Arc<Envelope>>> = (0..40)
        .map(|i| {
            let category = if i % 2 == 0 {
                format!("health.m{i}")
            } else {
                format!("contact.m{i}")
            };
            Some(Arc::new(Envelope::new("ann", &[category.as_str()])))
        })
        .collect();
    let mut all = Vec::new();
    gate.for_atom(&path).check_all(&envelopes, &mut all);
    let expected: Vec<Decision> = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                Decision::Admit
            } else {
                Decision::Deny
            }
        })
        .collect();
    assert_eq!(all, expected);
}
