//! Cost of the policy gate per event beside the least any gate must do, in the same run; then
//! the sdk pipeline of personal events with the gate on and off, in the same run.
//!
//! The registry holds 1,000,000 subjects, each with one or two consents over the policy's 10
//! purposes (some below others: `research` covers `research.cardiology`) and six categories;
//! a twentieth of the subjects withdrew, a tenth of the consents lapsed, 1% of the subjects
//! are restricted and a few former subjects were erased. Events are drawn uniformly over the
//! subjects, each with an envelope of one or two categories collected within the last 100
//! days (contact data is kept 90 days), so that the gate admits some events and denies others
//! for each reason.
//!
//! 1. *Gate*: `for_atom`, then `check_all` over the atom's events (as the runtime asks), over
//!    atoms of 1,024 events taken in turn by four workflows: `research.cardiology` and
//!    `marketing.email` on consent (a consent to the purpose or to the one above it covers
//!    them), `research` on consent, and `care` under a contract (no consent needed, the other
//!    checks still made). Baselines from the same run: *lookup*, one `HashMap<String, _>`
//!    (foldhash) lookup of the event's subject among the same 1,000,000 ids, one event after
//!    the other, what a gate must at least do; *allow*, the same loop through `AllowAll`'s
//!    per-atom check (the calls alone). Three pools of events: one atom, passed over and over,
//!    whose 1,024 envelopes and subjects' entries stay in the nearest caches, so that the gate
//!    hardly waits for memory (*cached*: the cost of its work alone); 16 atoms, whose
//!    envelopes and 16,384 subjects' entries stay in the caches as far as these hold them
//!    (*hot*); and 1,024 atoms, over 1,048,576 envelopes and about 630,000 subjects, which
//!    they do not (*cold*).
//! 2. *Pipeline*: a generator of atoms of 1,024 personal events, then a workflow of three maps
//!    and a filter into a sink, on the deterministic and the threaded runtime (volatile
//!    storage): without a gate; with a gate that admits everything but is asked for each event
//!    (the runtime's cost of asking); and with the policy gate. The events take their envelopes
//!    from each pool (the smaller ones over and over), which the pool keeps, so that no run
//!    frees one.
//!
//! 3. *Strangers*: atoms of events whose subjects the registry has no entry for, under the
//!    contract rule, while 100 erasures are known: the gate asks for each whether its subject
//!    was erased; beside one SHA-256 of each id (what that question cost without tags).
//!
//! Targets: the gate at most 100 ns per event; the gated pipeline at least 50% of the ungated.
//!
//! Run with `cargo bench --bench policy_gate` (optionally `-- --quick`). For a profiler:
//! `-- --profile-gate [ATOMS]` runs only the gate over the first ATOMS atoms of the large pool
//! (all 1,024 unless given), many times, and prints its time per event.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pods_policy::{Category, Gate, Grant, ManualClock, Policy, Purpose, Registry, subject_digest};
use pods_sdk::{
    AllowAll, App, AppBuilder, AtomGate, Decision, DeterministicSystem, Envelope, Event, Key, Path,
    PolicyGate, ThreadedConfig, ThreadedSystem, VolatileStorage,
};

const SUBJECTS: usize = 1_000_000;
const ATOM: usize = 1_024;
const DAY: u64 = 86_400;
const NOW: u64 = 1_700_000_000;
const TARGET_NS: f64 = 100.0;
const TARGET_RATIO: f64 = 0.5;

const POLICY: &str = r#"
[[purpose]]
name = "research"
[[purpose]]
name = "research.cardiology"
[[purpose]]
name = "research.oncology"
[[purpose]]
name = "care"
[[purpose]]
name = "care.follow_up"
[[purpose]]
name = "billing"
[[purpose]]
name = "marketing"
[[purpose]]
name = "marketing.email"
[[purpose]]
name = "quality"
[[purpose]]
name = "safety"

[retention]
health = "365d"
contact = "90d"

[[workflow]]
path = "/clinic/workflows/cardio"
purpose = "research.cardiology"
basis = "consent"

[[workflow]]
path = "/clinic/workflows/research"
purpose = "research"
basis = "consent"

[[workflow]]
path = "/clinic/workflows/mail"
purpose = "marketing.email"
basis = "consent"

[[workflow]]
path = "/clinic/workflows/treat"
purpose = "care"
basis = "contract"
"#;

/// The workflows the gate micro-benchmark's atoms go to, in turn.
const WORKFLOWS: [&str; 4] = [
    "/clinic/workflows/cardio",
    "/clinic/workflows/research",
    "/clinic/workflows/mail",
    "/clinic/workflows/treat",
];

/// What consents name.
const PURPOSES: [&str; 10] = [
    "research",
    "research.cardiology",
    "research.oncology",
    "care",
    "care.follow_up",
    "billing",
    "marketing",
    "marketing.email",
    "quality",
    "safety",
];
const CONSENT_CATEGORIES: [&str; 6] = [
    "health",
    "health.heart_rate",
    "health.blood_pressure",
    "contact",
    "contact.email",
    "identity",
];
/// What events hold.
const EVENT_CATEGORIES: [&str; 4] = [
    "health.heart_rate",
    "health.blood_pressure",
    "contact.email",
    "identity.id",
];

/// A small fast generator (splitmix64), so that every run draws the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `true` with probability `percent`%.
    fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn subject(i: usize) -> String {
    format!("patient-{i:07}")
}

/// One or two distinct names of `names`.
fn some_of(rng: &mut Rng, names: &[&'static str]) -> Vec<&'static str> {
    let first = names[rng.below(names.len())];
    let second = names[rng.below(names.len())];
    if rng.percent(50) && second != first {
        vec![first, second]
    } else {
        vec![first]
    }
}

/// The registry of the module docs.
fn registry(rng: &mut Rng) -> Registry {
    let mut registry = Registry::new();
    for i in 0..SUBJECTS {
        let who = subject(i);
        let consents = 1 + rng.below(2);
        for _ in 0..consents {
            let granted = NOW - 30 * DAY + rng.below(DAY as usize) as u64;
            let grant = Grant {
                subject: who.clone(),
                purposes: vec![Purpose::new(PURPOSES[rng.below(PURPOSES.len())]).expect("name")],
                categories: some_of(rng, &CONSENT_CATEGORIES)
                    .into_iter()
                    .map(|c| Category::new(c).expect("name"))
                    .collect(),
                expires_at: rng.percent(10).then(|| granted + DAY),
                source: "intake form".into(),
            };
            registry.grant(grant, granted).expect("grant");
        }
        if rng.percent(5) {
            registry.withdraw(&who, None, NOW - DAY);
        }
        if rng.percent(1) {
            registry.restrict(&who, true);
        }
    }
    for i in 0..100 {
        registry.erase(&format!("former-{i}"));
    }
    registry
}

type Atom = Vec<Option<Arc<Envelope>>>;

/// `atoms` atoms of events drawn uniformly over the subjects.
fn events(rng: &mut Rng, atoms: usize) -> Vec<Atom> {
    (0..atoms)
        .map(|_| {
            (0..ATOM)
                .map(|_| {
                    let who = subject(rng.below(SUBJECTS));
                    let categories = some_of(rng, &EVENT_CATEGORIES);
                    let collected = NOW - rng.below(100 * DAY as usize) as u64;
                    Some(Arc::new(
                        Envelope::new(who, &categories).collected_at(collected),
                    ))
                })
                .collect()
        })
        .collect()
}

/// Lets the systems share the one gate (building its registry takes seconds).
struct Shared(Arc<Gate>);

impl PolicyGate for Shared {
    fn admit(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
        self.0.admit(workflow, envelope)
    }
    fn for_atom<'a>(&'a self, workflow: &'a Path) -> Box<dyn AtomGate + 'a> {
        self.0.for_atom(workflow)
    }
}

/// Admits every event, but is asked for each one: what the runtime spends asking a gate.
struct AskEach;

impl PolicyGate for AskEach {
    fn admit(&self, _workflow: &Path, _envelope: Option<&Envelope>) -> Decision {
        Decision::Admit
    }
}

/// Each atom through `gate`'s per-atom check, the atoms taking the workflows in turn; returns
/// the events admitted.
fn through(gate: &dyn PolicyGate, pool: &[Atom], paths: &[Path]) -> u64 {
    let mut admitted = 0;
    let mut decisions = Vec::with_capacity(ATOM);
    for (atom, path) in pool.iter().zip(paths.iter().cycle()) {
        decisions.clear();
        gate.for_atom(path).check_all(atom, &mut decisions);
        admitted += decisions.iter().filter(|d| **d == Decision::Admit).count() as u64;
    }
    admitted
}

type Index = HashMap<String, u32, foldhash::fast::RandomState>;

/// One lookup of each event's subject; returns the sum of the values found.
fn lookups(index: &Index, pool: &[Atom]) -> u64 {
    let mut sum = 0;
    for atom in pool {
        for e in atom.iter().flatten() {
            if let Some(v) = index.get(e.subject.0.as_str()) {
                sum += u64::from(*v);
            }
        }
    }
    sum
}

/// The best time of each of `runs`, taken in turn (so that a change in the machine's load
/// falls on all of them alike), over at least 3 rounds and `budget`; each run times itself.
fn best_in_turn(budget: Duration, runs: &mut [&mut dyn FnMut() -> Duration]) -> Vec<f64> {
    let mut best = vec![f64::MAX; runs.len()];
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < 3 || started.elapsed() < budget {
        for (b, run) in best.iter_mut().zip(runs.iter_mut()) {
            *b = b.min(run().as_secs_f64());
        }
        rounds += 1;
    }
    best
}

/// How long `f` takes.
fn timed(f: impl FnOnce() -> u64) -> Duration {
    let t = Instant::now();
    black_box(f());
    t.elapsed()
}

fn map(x: i64) -> i64 {
    x.wrapping_mul(7).wrapping_add(3)
}

/// The pipeline of personal events: the generator's atoms, then three maps and a filter in the
/// workflow `cardio` (research.cardiology, on consent) into a sink.
fn pipeline(atoms: Vec<Vec<Event<i64>>>) -> App {
    let app = AppBuilder::new("clinic");
    let visits = app.generator_from_events("visits", atoms);
    app.workflow("cardio")
        .source(&visits)
        .map(map)
        .map(|x| x ^ (x >> 7))
        .filter(|x| x % 8 != 0)
        .map(map)
        .sink();
    app.build().expect("build")
}

/// `events` events (values 0, 1, …) with the pool's envelopes, in its atoms, over and over.
fn personal(pool: &[Atom], events: usize) -> Vec<Vec<Event<i64>>> {
    let envelopes = pool.iter().flatten().cycle().take(events);
    let mut atoms: Vec<Vec<Event<i64>>> = Vec::with_capacity(events / ATOM + 1);
    for (n, e) in envelopes.enumerate() {
        if n % ATOM == 0 {
            atoms.push(Vec::with_capacity(ATOM));
        }
        if let Some(atom) = atoms.last_mut() {
            atom.push(Event {
                key: Key(0),
                envelope: e.clone(),
                value: n as i64,
            });
        }
    }
    atoms
}

#[derive(Clone, Copy)]
enum Guard {
    None,
    AskEach,
    Policy,
}

impl Guard {
    fn gate(self, gate: &Arc<Gate>) -> Option<Box<dyn PolicyGate>> {
        match self {
            Guard::None => None,
            Guard::AskEach => Some(Box::new(AskEach)),
            Guard::Policy => Some(Box::new(Shared(gate.clone()))),
        }
    }
}

/// Boxed gates, so that one system setter takes every kind.
struct Boxed(Box<dyn PolicyGate>);

impl PolicyGate for Boxed {
    fn admit(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
        self.0.admit(workflow, envelope)
    }
    fn admits_everything(&self) -> bool {
        self.0.admits_everything()
    }
    fn admit_ask(&self, workflow: &Path, portal: &Path, envelope: Option<&Envelope>) -> Decision {
        self.0.admit_ask(workflow, portal, envelope)
    }
    fn for_atom<'a>(&'a self, workflow: &'a Path) -> Box<dyn AtomGate + 'a> {
        self.0.for_atom(workflow)
    }
}

fn deterministic(app: App, gate: Option<Box<dyn PolicyGate>>) -> u64 {
    let mut system = DeterministicSystem::with_storage(1, VolatileStorage::new());
    if let Some(g) = gate {
        system.set_gate(Boxed(g));
    }
    system.launch(app).expect("launch");
    system.run_until_quiescent()
}

fn threaded(app: App, gate: Option<Box<dyn PolicyGate>>) -> u64 {
    let config = ThreadedConfig {
        workers: 2,
        ..ThreadedConfig::default()
    };
    let system = ThreadedSystem::with_storage(config, VolatileStorage::new()).expect("threads");
    if let Some(g) = gate {
        system.set_gate(Boxed(g));
    }
    system.launch(app).expect("launch");
    let steps = system.run_until_quiescent();
    system.stop();
    steps
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let profile = std::env::args().any(|a| a == "--profile-gate");
    let budget = Duration::from_millis(if quick { 200 } else { 1500 });
    let started = Instant::now();
    let mut rng = Rng(7);
    let registry = registry(&mut rng);
    let index: Index = (0..SUBJECTS).map(|i| (subject(i), i as u32)).collect();
    let policy = Policy::parse("policy.toml", POLICY).expect("policy");
    let gate = Arc::new(Gate::new(policy, registry, Arc::new(ManualClock::at(NOW))));
    let large = events(&mut rng, 1_024);
    let pools = [
        ("1 atom (cached)", &large[..1]),
        ("16 atoms (hot)", &large[..16]),
        ("1,024 atoms (cold)", &large[..]),
    ];
    let paths: Vec<Path> = WORKFLOWS
        .iter()
        .map(|p| Path::parse(p).expect("path"))
        .collect();
    eprintln!(
        "set up {SUBJECTS} subjects and {} events in {:.1} s",
        large.len() * ATOM,
        started.elapsed().as_secs_f64()
    );
    if profile {
        let atoms = std::env::args()
            .skip_while(|a| a != "--profile-gate")
            .nth(1)
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(large.len(), |n| n.clamp(1, large.len()));
        let pool = &large[..atoms];
        let rounds = (20 * large.len() / atoms).max(1);
        let t = Instant::now();
        for _ in 0..rounds {
            black_box(through(&*gate, pool, &paths));
        }
        let per_event = t.elapsed().as_secs_f64() * 1e9 / (rounds * atoms * ATOM) as f64;
        eprintln!("gate over {atoms} atoms, {rounds} rounds: {per_event:.1} ns per event");
        return;
    }

    // What the gate decides over the large pool, once (the timed passes decide the same).
    let admitted = through(&*gate, &large, &paths);
    println!(
        "gate: {SUBJECTS} subjects, 10 purposes; atoms of {ATOM} events over 4 workflows in turn"
    );
    println!(
        "  decisions over {} events: {admitted} admitted; denied: {}",
        large.len() * ATOM,
        denials(&gate)
    );
    println!("  lookup: one HashMap<String, _> (foldhash) lookup of the subject per event");
    println!("  allow:  AllowAll's per-atom check, asked for each event");
    println!(
        "{:>22} {:>10} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "pool", "gate ns", "lookup ns", "allow ns", "gate/lookup", "gate-lookup", "target"
    );
    for (name, pool) in pools {
        let expected = through(&*gate, pool, &paths);
        let allow: &dyn PolicyGate = black_box(&AllowAll);
        let per_event = 1e9 / (pool.len() * ATOM) as f64;
        let best = best_in_turn(
            budget,
            &mut [
                &mut || {
                    timed(|| {
                        let n = through(&*gate, pool, &paths);
                        assert_eq!(n, expected, "the gate decided differently");
                        n
                    })
                },
                &mut || timed(|| lookups(&index, pool)),
                &mut || timed(|| through(allow, pool, &paths)),
            ],
        );
        let [gate_ns, lookup_ns, allow_ns] = [0, 1, 2].map(|i| best[i] * per_event);
        println!(
            "{name:>22} {gate_ns:>10.1} {lookup_ns:>10.1} {allow_ns:>10.1} {:>11.2}x {:>12.1} {:>10}",
            gate_ns / lookup_ns,
            gate_ns - lookup_ns,
            verdict(gate_ns <= TARGET_NS, &format!("<= {TARGET_NS:.0}"))
        );
    }

    // Subjects the registry has no entry for (as under a contract, which needs no consent),
    // while erasures are known: each event asks whether its subject was erased.
    let strangers: Vec<Atom> = (0..16)
        .map(|a| {
            (0..ATOM)
                .map(|i| {
                    let who = format!("visitor-{:07}", a * ATOM + i);
                    let e = Envelope::new(who, &["health.heart_rate"]).collected_at(NOW);
                    Some(Arc::new(e))
                })
                .collect()
        })
        .collect();
    let treat = [Path::parse("/clinic/workflows/treat").expect("path")];
    let n = (strangers.len() * ATOM) as u64;
    assert_eq!(
        through(&*gate, &strangers, &treat),
        n,
        "the contract admits them all"
    );
    let best = best_in_turn(
        budget,
        &mut [
            &mut || timed(|| through(&*gate, &strangers, &treat)),
            &mut || {
                timed(|| {
                    let digests = strangers.iter().flatten().flatten();
                    digests
                        .map(|e| u64::from(subject_digest(&e.subject.0)[0]))
                        .sum()
                })
            },
        ],
    );
    println!(
        "  subjects without an entry, 100 erasures known (contract): gate {:.1} ns per event; one SHA-256 of the id alone {:.1} ns",
        best[0] * 1e9 / n as f64,
        best[1] * 1e9 / n as f64
    );

    let events = if quick { 256 * ATOM } else { 1_024 * ATOM };
    println!(
        "pipeline: {events} personal events in atoms of {ATOM} -> map -> map -> filter -> map -> sink, VolatileStorage"
    );
    println!("  none:     no gate (the runtime skips the check)");
    println!("  ask each: a gate admitting everything, asked for each event");
    println!("  policy:   the gate above (workflow `cardio`: research.cardiology on consent)");
    println!(
        "{:>22} {:>14} {:>14} {:>14} {:>14} {:>10} {:>12} {:>14}",
        "pool",
        "runtime",
        "none ev/s",
        "ask each ev/s",
        "policy ev/s",
        "ask/none",
        "policy/none",
        "target"
    );
    type Run = fn(App, Option<Box<dyn PolicyGate>>) -> u64;
    let runtimes: [(&str, Run); 2] = [("deterministic", deterministic), ("threaded (2)", threaded)];
    for (pool_name, pool) in pools {
        for (name, run) in runtimes {
            // Each run: the events and the app made untimed, then launched and run to the end.
            let measure = |guard: Guard| {
                let (app, g) = (pipeline(personal(pool, events)), guard.gate(&gate));
                let t = Instant::now();
                black_box(run(app, g));
                t.elapsed()
            };
            let best = best_in_turn(
                budget,
                &mut [
                    &mut || measure(Guard::None),
                    &mut || measure(Guard::AskEach),
                    &mut || measure(Guard::Policy),
                ],
            );
            let [none, each, policy] = [0, 1, 2].map(|i| events as f64 / best[i]);
            println!(
                "{pool_name:>22} {name:>14} {none:>14.0} {each:>14.0} {policy:>14.0} {:>9.1}% {:>11.1}% {:>14}",
                100.0 * each / none,
                100.0 * policy / none,
                verdict(policy / none >= TARGET_RATIO, ">= 50%")
            );
            println!(
                "{:>22} {:>14} {:>11.1} ns {:>11.1} ns {:>11.1} ns   (per event)",
                "",
                "",
                1e9 / none,
                1e9 / each,
                1e9 / policy
            );
        }
    }
}

/// The gate's denials so far, by reason, summed over the paths.
fn denials(gate: &Gate) -> String {
    let mut by_reason = std::collections::BTreeMap::new();
    for c in gate.counts() {
        for (reason, n) in c.denied {
            *by_reason.entry(reason.name()).or_insert(0u64) += n;
        }
    }
    by_reason
        .into_iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(met: bool, target: &str) -> String {
    format!("{} {target}", if met { "met" } else { "MISSED" })
}
