//! What a remote ask costs, in one run, on 127.0.0.1: two Pods nodes in this process, each on
//! its own thread and tokio runtime (one worker) with its own data dir, beside the transport
//! they use measured bare.
//!
//! - Node B runs `counter`: a portal `/counter/portals/count` keyed by the request (mod 1,024)
//!   whose replier counts the asks per key and replies with the count. Node A runs `asker`: a
//!   feeder `/asker/generators/seqs` of sequence numbers; its workflow asks
//!   `/peers/b/counter/portals/count` once per event and its continuation emits the sequence
//!   number when the reply comes. Both nodes commit to SQLite (WAL), NORMAL, then FULL.
//! - Latency, one in flight: an atom of one event pushed at A, timed until its output appears
//!   on A's `/asker/workflows/ask/stream` (a subscription made before the push; the bench's
//!   thread blocks until the subscription signals new items); p50 and p99 after a warm-up.
//! - Throughput, 64 asks in flight: a closed loop keeping `W` atoms of `S` events pushed whose
//!   outputs have not all been seen, `W × S = 64`; asks/s (best of 3), waiting on the
//!   subscription as above. The asks of one atom travel as one request, so 16 atoms of 4 asks
//!   are 16 requests; a workflow takes at most `group_commit` (32) atoms while its
//!   continuations wait, so of 64 atoms of 1 ask at most 32 are in flight. The outputs of the continuations run in one step
//!   form one atom, in the order the replies came: the table counts the output atoms, and those
//!   holding an output of an ask made after one not yet answered.
//! - One atom of 1,000 asks: from its push to the last of its 1,000 outputs; asks/s (best and
//!   median of the runs).
//! - Baselines: bare libp2p request-response on the same transport (TCP with nodelay + noise +
//!   yamux, the node's length-prefixed bytes codec `pods_node::net::wire::Codec`, 64-byte
//!   requests echoed), two swarms on their own threads and runtimes, timed inside the client's
//!   task: one in flight (p50, p99) and 64 in flight (requests/s, best of 3); and a std
//!   `TcpStream` ping-pong of 64 bytes with nodelay (p50, p99).
//!
//! Every ask is checked: each reply arrives (an ask error fails the asker's workflow and the
//! bench), each ask has exactly one output, and B answered exactly the asks A made.
//!
//! Run with `cargo bench --bench remote_ask` (optionally `-- --quick`). `-- --phases [--quick]
//! [--big-only]` runs only Pods (NORMAL) and prints where the time of a remote ask goes (see
//! `PHASES`; medians), with the steps each side committed per round; then a closed loop of 16
//! atoms of 4 asks. With `--big-only`, only atoms of 1,000 asks, for a profiler.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use pods_node::net::wire::{Codec, Frame, PROTOCOL};
use pods_node::{
    Catalog, Export, NodeConfig, NodeError, Peer, Settings, Started, StoreOptions, Synchronous,
};
use pods_sdk::{AppBuilder, AskError, Ctx, PerKeyState, StreamItem, Subscription};

/// Keys of the replier's counter (requests are keyed by their number modulo this).
const KEYS: u64 = 1024;
/// Asks in flight in the throughput measurements.
const IN_FLIGHT: usize = 64;
/// Asks in the one big atom.
const BIG_ATOM: usize = 1_000;
/// Bytes of a bare libp2p request and of a TCP ping.
const PAYLOAD: usize = 64;
/// Longest wait for anything: a reply, an atom, a connection.
const WAIT: Duration = Duration::from_secs(30);
/// The whole run's limit: past it the process aborts.
const WATCHDOG: Duration = Duration::from_secs(900);

const OUTPUT: &str = "/asker/workflows/ask/stream";
const FEED: &str = "/asker/generators/seqs";
const PORTAL: &str = "/counter/portals/count";
const REPLIER: &str = "/counter/workflows/counts";
const ASKER: &str = "/asker/workflows/ask";

/// How many of everything.
struct Plan {
    warm: usize,
    rounds: usize,
    asks: usize,
    big_reps: usize,
    tcp_rounds: usize,
    requests: usize,
}

/// Aborts the process if the run lasts longer than `limit`.
fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("remote_ask: still running after {limit:?}; aborting");
        std::process::abort();
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50 and p99 of `times`.
fn p50_p99(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (percentile(&times, 0.50), percentile(&times, 0.99))
}

fn label(s: Synchronous) -> &'static str {
    match s {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    }
}

/// A port free now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

// ---------------------------------------------------------------------------------------------
// Pods: two nodes
// ---------------------------------------------------------------------------------------------

/// When a task ran first and last, in nanoseconds since the probe's epoch.
struct Span {
    first: AtomicU64,
    last: AtomicU64,
}

impl Span {
    fn new() -> Span {
        Span {
            first: AtomicU64::new(u64::MAX),
            last: AtomicU64::new(0),
        }
    }

    fn mark(&self, ns: u64) {
        self.first.fetch_min(ns, Ordering::Relaxed);
        self.last.fetch_max(ns, Ordering::Relaxed);
    }

    fn reset(&self) {
        self.first.store(u64::MAX, Ordering::Relaxed);
        self.last.store(0, Ordering::Relaxed);
    }
}

/// What the apps record as they run: the asks B answered, and when A's asker, B's replier and
/// A's continuations ran (for `--phases`).
struct Probe {
    epoch: Instant,
    answered: AtomicU64,
    asker: Span,
    replier: Span,
    continuation: Span,
}

impl Probe {
    fn new() -> Probe {
        Probe {
            epoch: Instant::now(),
            answered: AtomicU64::new(0),
            asker: Span::new(),
            replier: Span::new(),
            continuation: Span::new(),
        }
    }

    /// Nanoseconds since the epoch.
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// The apps: `counter` (node B) and `asker:PEER` (node A), recording into `probe`.
fn catalog(probe: Arc<Probe>) -> Catalog {
    let at_b = Arc::clone(&probe);
    Catalog::new()
        .with("counter", move |_| {
            let app = AppBuilder::new("counter");
            let portal = app.portal_keyed::<u64, u64, u64>("count", |n| n % KEYS);
            let counts = PerKeyState::<u64>::with_initial("counts", 0);
            let none = app.generator_external::<u64>("none");
            let probe = Arc::clone(&at_b);
            app.workflow("counts").source(&none).replier(
                &portal,
                move |ctx: &mut Ctx<'_, u64>, _n: u64, to| {
                    let c = counts.get(ctx) + 1;
                    counts.set(ctx, c);
                    probe.replier.mark(probe.now());
                    probe.answered.fetch_add(1, Ordering::Relaxed);
                    ctx.reply(to, c)
                },
            );
            Ok(app.build()?)
        })
        .with("asker", move |peer| {
            let app = AppBuilder::new("asker");
            let portal = app.portal_ref::<u64, u64>(&format!("/peers/{peer}{PORTAL}"));
            let seqs = app.generator_external::<u64>("seqs");
            let asked = portal.clone();
            let probe = Arc::clone(&probe);
            app.workflow("ask")
                .source(&seqs)
                .asker(&portal, move |ctx: &mut Ctx<'_, u64>, n: u64| {
                    probe.asker.mark(probe.now());
                    let h = ctx.ask(&asked, n);
                    let probe = Arc::clone(&probe);
                    ctx.on_reply(h, move |ctx, r: Result<u64, AskError>| {
                        probe.continuation.mark(probe.now());
                        match r {
                            Ok(_) => ctx.emit(n),
                            Err(e) => ctx.fail(format!("ask {n}: {e}")),
                        }
                    });
                })
                .sink();
            Ok(app.build()?)
        })
}

/// A node's data dir, made with `pods_node::init`, and where it will listen.
struct Planned {
    dir: tempfile::TempDir,
    name: String,
    peer_id: String,
    address: String,
}

impl Planned {
    fn new(name: &str) -> Planned {
        let dir = tempfile::tempdir().expect("temp dir");
        let peer_id = pods_node::init(dir.path(), name).expect("init").to_string();
        Planned {
            dir,
            name: name.to_owned(),
            peer_id,
            address: format!("/ip4/127.0.0.1/tcp/{}", free_port()),
        }
    }

    fn as_peer(&self) -> Peer {
        Peer {
            name: self.name.clone(),
            peer_id: self.peer_id.clone(),
            address: self.address.clone(),
        }
    }

    fn configure(&self, app: &str, peer: Peer, export: Option<(&str, &str)>) {
        let mut s = Settings::load(self.dir.path()).expect("pods.toml");
        s.listen = vec![self.address.clone()];
        s.apps = vec![app.to_owned()];
        s.peers = vec![peer];
        s.exports = export
            .map(|(path, allow)| Export {
                path: path.to_owned(),
                allow: vec![allow.to_owned()],
            })
            .into_iter()
            .collect();
        s.save(self.dir.path()).expect("save pods.toml");
    }
}

/// A node running on its own thread and tokio runtime.
struct Running {
    started: Started,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), NodeError>>>,
}

impl Running {
    fn start(dir: &Path, catalog: Catalog, config: NodeConfig) -> Running {
        let dir: PathBuf = dir.to_path_buf();
        let (started_tx, started_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(pods_node::run(
                &dir,
                &catalog,
                config,
                move |s| {
                    let _ = started_tx.send(s.clone());
                },
                async move {
                    let _ = stop_rx.await;
                },
            ))
        });
        let started = match started_rx.recv_timeout(WAIT) {
            Ok(s) => s,
            Err(_) => panic!("a node did not start: {:?}", thread.join().map(|r| r.err())),
        };
        Running {
            started,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Steps `workflow` committed so far.
    fn steps(&self, workflow: &str) -> u64 {
        self.started
            .node
            .activity()
            .snapshot()
            .get(workflow)
            .map_or(0, |a| a.steps)
    }

    fn subscribe(&self) -> Subscription<u64> {
        self.started.node.subscribe(OUTPUT).expect("subscribe")
    }

    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("node thread").expect("node stopped");
        }
    }
}

/// What a closed loop of asks measured.
#[derive(Clone, Copy, Debug)]
struct Loop {
    /// Atoms outstanding.
    window: usize,
    /// Asks per atom.
    size: usize,
    /// Asks/s.
    rate: f64,
    /// Output atoms (the outputs of continuations run in one step form one atom).
    atoms: usize,
    /// Output atoms holding an output of an ask made after an ask not answered yet (outputs
    /// follow the order in which replies arrive, not the order of the asks).
    reordered: usize,
}

/// Nodes A (asker) and B (counter), connected.
struct Pair {
    a: Running,
    b: Running,
    probe: Arc<Probe>,
    feeder: pods_sdk::Feeder<u64>,
    /// The next sequence number to ask.
    next: u64,
    _dirs: (Planned, Planned),
}

impl Pair {
    fn start(synchronous: Synchronous) -> Pair {
        let (a, b) = (Planned::new("a"), Planned::new("b"));
        b.configure("counter", a.as_peer(), Some((PORTAL, "a")));
        a.configure("asker:b", b.as_peer(), None);
        let config = || NodeConfig {
            store: StoreOptions {
                synchronous,
                ..StoreOptions::default()
            },
            ..NodeConfig::default()
        };
        let probe = Arc::new(Probe::new());
        let node_b = Running::start(b.dir.path(), catalog(Arc::clone(&probe)), config());
        let node_a = Running::start(a.dir.path(), catalog(Arc::clone(&probe)), config());
        let feeder = node_a.started.node.feeder::<u64>(FEED).expect("feeder");
        Pair {
            a: node_a,
            b: node_b,
            probe,
            feeder,
            next: 0,
            _dirs: (a, b),
        }
    }

    /// An atom of `n` fresh sequence numbers.
    fn atom(&mut self, n: usize) -> Vec<u64> {
        let first = self.next;
        self.next += n as u64;
        (first..self.next).collect()
    }

    /// Pushes an atom of `n` asks and waits for their outputs; the time from the push to the
    /// last output.
    fn round_trip(&mut self, n: usize) -> Duration {
        let atom = self.atom(n);
        let sub = self.a.subscribe();
        let t = Instant::now();
        self.feeder.push(atom.clone()).expect("push");
        let out = outputs(&sub, n);
        let took = t.elapsed();
        assert_eq!(out, atom, "one output per ask, in order");
        took
    }

    /// Like `round_trip`, timing its phases (see `PHASES`).
    fn phases(&mut self, n: usize) -> [Duration; 7] {
        let atom = self.atom(n);
        let sub = self.a.subscribe();
        let probe = &self.probe;
        for span in [&probe.asker, &probe.replier, &probe.continuation] {
            span.reset();
        }
        let pushed = probe.now();
        self.feeder.push(atom.clone()).expect("push");
        let out = outputs(&sub, n);
        let seen = probe.now();
        assert_eq!(out, atom, "one output per ask, in order");
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let marks = [
            pushed,
            load(&probe.asker.first),
            load(&probe.asker.last),
            load(&probe.replier.first),
            load(&probe.replier.last),
            load(&probe.continuation.first),
            load(&probe.continuation.last),
            seen,
        ];
        std::array::from_fn(|i| Duration::from_nanos(marks[i + 1].saturating_sub(marks[i])))
    }

    /// Keeps `window` atoms of `size` asks pushed whose outputs have not all been seen, until
    /// `atoms` atoms were answered.
    fn closed_loop(&mut self, size: usize, window: usize, atoms: usize) -> Loop {
        let mut sub = self.a.subscribe();
        let first = self.next;
        let total = atoms * size;
        let mut answered = vec![false; total];
        let (mut done, mut pushed) = (0, 0);
        let mut out = Loop {
            window,
            size,
            rate: 0.0,
            atoms: 0,
            reordered: 0,
        };
        let mut highest: Option<u64> = None;
        let t = Instant::now();
        let mut seen = Instant::now();
        while done < total {
            while pushed < atoms && pushed * size - done < window * size {
                let atom = self.atom(size);
                self.feeder.push(atom).expect("push");
                pushed += 1;
            }
            if sub.items().is_empty() {
                let left = WAIT.checked_sub(seen.elapsed());
                assert!(left.is_some(), "no output for {WAIT:?}");
                sub.wait_beyond(0, left.unwrap_or_default());
                continue;
            }
            // A new subscription first, then the old one read to its end: nothing is missed,
            // and what both saw is counted once.
            let fresh = self.a.subscribe();
            for item in sub.items() {
                let new: Vec<u64> = atom_values(item)
                    .into_iter()
                    .filter(|v| {
                        let i = (v - first) as usize;
                        assert!(i < total, "an output of an ask not made: {v}");
                        !answered[i]
                    })
                    .collect();
                let Some(&lowest) = new.iter().min() else {
                    continue;
                };
                out.atoms += 1;
                if highest.is_some_and(|h| lowest < h) {
                    out.reordered += 1;
                }
                for v in new {
                    answered[(v - first) as usize] = true;
                    done += 1;
                    highest = highest.max(Some(v));
                }
            }
            sub = fresh;
            seen = Instant::now();
        }
        out.rate = total as f64 / t.elapsed().as_secs_f64();
        out
    }

    /// Stops both nodes, after checking that B answered every ask A made, once.
    fn stop(self) {
        assert_eq!(
            self.probe.answered.load(Ordering::Relaxed),
            self.next,
            "B answered each ask once"
        );
        self.a.stop();
        self.b.stop();
    }
}

fn atom_values(item: StreamItem<u64>) -> Vec<u64> {
    match item {
        StreamItem::Atom(events) => events.into_iter().map(|e| e.value).collect(),
        StreamItem::Seal => panic!("the asker's stream ended"),
        StreamItem::Error(m) => panic!("the asker failed: {m}"),
    }
}

/// The first `n` values `sub` sees, over one atom or more, waiting for them (blocked until
/// the subscription holds more).
fn outputs(sub: &Subscription<u64>, n: usize) -> Vec<u64> {
    let t = Instant::now();
    loop {
        let items = sub.items();
        let seen = items.len();
        let values: Vec<u64> = items.into_iter().flat_map(atom_values).collect();
        if values.len() >= n {
            return values;
        }
        let left = WAIT.checked_sub(t.elapsed());
        assert!(left.is_some(), "{n} outputs not seen within {WAIT:?}");
        sub.wait_beyond(seen, left.unwrap_or_default());
    }
}

/// The Pods figures of one `synchronous` setting.
struct PodsFigures {
    p50: Duration,
    p99: Duration,
    /// The closed loops, best of 3 each.
    rates: Vec<Loop>,
    big_best: Duration,
    big_median: Duration,
}

fn pods(synchronous: Synchronous, plan: &Plan) -> PodsFigures {
    let mut pair = Pair::start(synchronous);
    // The first asks also wait for the connection.
    for _ in 0..plan.warm {
        pair.round_trip(1);
    }
    let (p50, p99) = p50_p99((0..plan.rounds).map(|_| pair.round_trip(1)).collect());

    let mut rates = Vec::new();
    for (window, size) in [(16, 4), (1, 64), (64, 1)] {
        let atoms = plan.asks / size;
        pair.closed_loop(size, window, atoms / 4);
        let best = (0..3)
            .map(|_| pair.closed_loop(size, window, atoms))
            .max_by(|x, y| x.rate.total_cmp(&y.rate))
            .expect("three runs");
        rates.push(best);
    }

    for _ in 0..3 {
        pair.round_trip(BIG_ATOM);
    }
    let mut big: Vec<Duration> = (0..plan.big_reps)
        .map(|_| pair.round_trip(BIG_ATOM))
        .collect();
    big.sort();
    pair.stop();
    PodsFigures {
        p50,
        p99,
        rates,
        big_best: big[0],
        big_median: percentile(&big, 0.5),
    }
}

/// The phases of a remote ask: from the push to A's asker; A's asker (first to last ask); to
/// B's replier; B's replier (first to last reply); to A's first continuation; A's
/// continuations; to the output seen at A.
const PHASES: [&str; 7] = [
    "push>asker",
    "A asker",
    ">B replier",
    "B replier",
    ">A contin",
    "A contins",
    ">output",
];

/// Where the time of a remote ask goes (NORMAL): the median of each phase over round trips
/// of one ask and of atoms of `BIG_ATOM` asks (only those with `--big-only`, 20 times as
/// many), then the closed loop of 16 atoms of 4 asks, for a profiler.
fn phases(plan: &Plan) {
    let mut pair = Pair::start(Synchronous::Normal);
    for _ in 0..plan.warm {
        pair.round_trip(1);
    }
    print!("{:>6} {:>6} {:>4}", "asks", "rounds", "");
    for p in PHASES {
        print!(" {p:>11}");
    }
    println!(" {:>9} {:>7} {:>7}", "total", "A steps", "B steps");
    let big_only = std::env::args().any(|a| a == "--big-only");
    let sizes = if big_only {
        vec![(BIG_ATOM, plan.big_reps * 20)]
    } else {
        vec![(1, plan.rounds), (BIG_ATOM, plan.big_reps * 4)]
    };
    for (n, rounds) in sizes {
        let mut each = Vec::with_capacity(rounds);
        let mut steps = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let before = (pair.b.steps(REPLIER), pair.a.steps(ASKER));
            each.push(pair.phases(n));
            steps.push((
                pair.b.steps(REPLIER) - before.0,
                pair.a.steps(ASKER) - before.1,
            ));
        }
        let mut totals: Vec<Duration> = each.iter().map(|p| p.iter().sum()).collect();
        totals.sort();
        steps.sort_by_key(|s| s.0);
        let b_steps = steps[steps.len() / 2].0;
        steps.sort_by_key(|s| s.1);
        let a_steps = steps[steps.len() / 2].1;
        for (what, p) in [("p50", 0.5), ("p99", 0.99)] {
            print!("{n:>6} {rounds:>6} {what:>4}");
            for i in 0..PHASES.len() {
                each.sort_by_key(|p| p[i]);
                let phase: Vec<Duration> = each.iter().map(|p| p[i]).collect();
                print!(" {:>11.0}", micros(percentile(&phase, p)));
            }
            println!(
                " {:>9.0} {a_steps:>7} {b_steps:>7}",
                micros(percentile(&totals, p))
            );
        }
    }
    println!(
        "(microseconds, each phase's own percentile; steps: committed steps of A's asker and \
         B's replier per round, medians)"
    );
    if !big_only {
        let l = pair.closed_loop(4, 16, plan.asks);
        println!("16 atoms x 4 asks outstanding: {:.0} asks/s", l.rate);
    }
    pair.stop();
}

// ---------------------------------------------------------------------------------------------
// Bare libp2p request-response
// ---------------------------------------------------------------------------------------------

type Rr = request_response::Behaviour<Codec>;

/// A swarm as the node builds its transport: TCP (nodelay) + noise + yamux, request-response
/// with the node's codec.
fn swarm() -> Swarm<Rr> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("transport")
        .with_behaviour(|_| {
            Rr::with_codec(
                Codec { max: 1 << 20 },
                [(PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(10))
                    .with_max_concurrent_streams(128),
            )
        })
        .expect("behaviour")
        .with_swarm_config(|c| {
            // As the node's (`net/shell.rs`): a request goes with its protocol's name.
            c.with_idle_connection_timeout(Duration::from_secs(3600))
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// An echo server on its own thread and runtime: its PeerId and address, and how to stop it.
fn echo_server() -> (
    PeerId,
    Multiaddr,
    tokio::sync::oneshot::Sender<()>,
    JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel();
    let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move {
            let mut swarm = swarm();
            swarm
                .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr"))
                .expect("listen");
            let served = tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        event = swarm.select_next_some() => match event {
                            SwarmEvent::NewListenAddr { address, .. } => {
                                let _ = tx.send((*swarm.local_peer_id(), address));
                            }
                            SwarmEvent::Behaviour(request_response::Event::Message {
                                message: request_response::Message::Request { request, channel, .. },
                                ..
                            }) => {
                                let _ = swarm.behaviour_mut().send_response(channel, request);
                            }
                            _ => {}
                        },
                    }
                }
            });
            let _ = served.await;
        });
    });
    let (peer, addr) = rx.recv_timeout(WAIT).expect("the echo server listens");
    (peer, addr, stop, thread)
}

/// Drives `swarm` until the response to one of its requests arrives; its id.
async fn response(swarm: &mut Swarm<Rr>) -> request_response::OutboundRequestId {
    loop {
        let event = tokio::time::timeout(WAIT, swarm.select_next_some())
            .await
            .expect("a response within the wait");
        match event {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) => {
                assert_eq!(response, Frame::Bytes(vec![7; PAYLOAD]), "the echo");
                return request_id;
            }
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                panic!("a request failed: {error}")
            }
            _ => {}
        }
    }
}

/// Bare libp2p: round-trip times with one request in flight, and the best requests/s of 3
/// runs with `IN_FLIGHT` in flight.
fn bare_libp2p(plan: &Plan) -> (Vec<Duration>, f64) {
    let (server, addr, stop, thread) = echo_server();
    let rt = runtime();
    let (warm, rounds, requests) = (plan.warm, plan.rounds, plan.requests);
    let figures = rt.block_on(async move {
        tokio::spawn(async move {
            let mut swarm = swarm();
            swarm
                .dial(addr.with(libp2p::multiaddr::Protocol::P2p(server)))
                .expect("dial");
            loop {
                let event = tokio::time::timeout(WAIT, swarm.select_next_some())
                    .await
                    .expect("connected within the wait");
                if let SwarmEvent::ConnectionEstablished { .. } = event {
                    break;
                }
            }
            let payload = Frame::Bytes(vec![7; PAYLOAD]);
            let mut times = Vec::with_capacity(rounds);
            for i in 0..warm + rounds {
                let t = Instant::now();
                let id = swarm.behaviour_mut().send_request(&server, payload.clone());
                assert_eq!(response(&mut swarm).await, id);
                if i >= warm {
                    times.push(t.elapsed());
                }
            }
            let mut best = 0.0f64;
            for _ in 0..3 {
                let t = Instant::now();
                let (mut sent, mut done) = (0, 0);
                while done < requests {
                    while sent < requests && sent - done < IN_FLIGHT {
                        swarm.behaviour_mut().send_request(&server, payload.clone());
                        sent += 1;
                    }
                    response(&mut swarm).await;
                    done += 1;
                }
                best = best.max(requests as f64 / t.elapsed().as_secs_f64());
            }
            (times, best)
        })
        .await
        .expect("the client task")
    });
    let _ = stop.send(());
    thread.join().expect("the echo server's thread");
    figures
}

// ---------------------------------------------------------------------------------------------
// Bare TCP
// ---------------------------------------------------------------------------------------------

/// Round-trip times of a 64-byte ping-pong over a std `TcpStream` (nodelay), the echo on its
/// own thread.
fn bare_tcp(warm: usize, rounds: usize) -> Vec<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut buf = [0u8; PAYLOAD];
        while s.read_exact(&mut buf).is_ok() {
            s.write_all(&buf).expect("echo");
        }
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let ping = [7u8; PAYLOAD];
    let mut pong = [0u8; PAYLOAD];
    let mut times = Vec::with_capacity(rounds);
    for i in 0..warm + rounds {
        let t = Instant::now();
        s.write_all(&ping).expect("ping");
        s.read_exact(&mut pong).expect("pong");
        if i >= warm {
            times.push(t.elapsed());
        }
        assert_eq!(pong, ping);
    }
    drop(s);
    echo.join().expect("the echo thread");
    times
}

// ---------------------------------------------------------------------------------------------

fn main() {
    watchdog(WATCHDOG);
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            warm: 50,
            rounds: 300,
            asks: 4_096,
            big_reps: 5,
            tcp_rounds: 2_000,
            requests: 8_000,
        }
    } else {
        Plan {
            warm: 200,
            rounds: 2_000,
            asks: 16_384,
            big_reps: 20,
            tcp_rounds: 10_000,
            requests: 40_000,
        }
    };
    if std::env::args().any(|a| a == "--phases") {
        phases(&plan);
        return;
    }
    println!(
        "remote asks on 127.0.0.1: node A (asker) and node B (keyed counter over {KEYS} keys), each \
         on its own thread and tokio runtime (1 worker) with {} runtime workers, SQLite (WAL); \
         libp2p TCP (nodelay) + noise + yamux",
        NodeConfig::default().runtime.workers
    );
    println!(
        "latency: {} round trips after {} warm-up; rates: best of 3 runs of {} asks ({} requests \
         bare); atom of {BIG_ATOM} asks: {} runs",
        plan.rounds, plan.warm, plan.asks, plan.requests, plan.big_reps
    );
    let tcp = p50_p99(bare_tcp(plan.warm * 5, plan.tcp_rounds));
    let (times, bare_rate) = bare_libp2p(&plan);
    let bare = p50_p99(times);
    let normal = pods(Synchronous::Normal, &plan);
    let full = pods(Synchronous::Full, &plan);

    println!();
    println!(
        "{:<52} {:>8} {:>8} {:>11}  note",
        "", "p50 us", "p99 us", "per second"
    );
    let row = |what: &str, lat: Option<(Duration, Duration)>, rate: Option<f64>, note: &str| {
        let (p50, p99) = lat.map_or((String::new(), String::new()), |(a, b)| {
            (format!("{:.0}", micros(a)), format!("{:.0}", micros(b)))
        });
        let rate = rate.map_or(String::new(), |r| format!("{r:.0}"));
        println!("{what:<52} {p50:>8} {p99:>8} {rate:>11}  {note}");
    };
    row(
        &format!("bare TCP ping-pong, {PAYLOAD} B"),
        Some(tcp),
        None,
        "",
    );
    row(
        "bare libp2p request-response, 1 in flight",
        Some(bare),
        None,
        "",
    );
    row(
        &format!("bare libp2p request-response, {IN_FLIGHT} in flight"),
        None,
        Some(bare_rate),
        "requests/s",
    );
    for (s, f) in [(Synchronous::Normal, &normal), (Synchronous::Full, &full)] {
        let s = label(s);
        row(
            &format!("Pods {s}: remote ask, 1 in flight"),
            Some((f.p50, f.p99)),
            None,
            "push to output atom",
        );
        // A workflow takes at most `group_commit` atoms while its continuations wait.
        let most = pods_sdk::ThreadedConfig::default().group_commit;
        for l in &f.rates {
            let taken = if l.window > most {
                format!(", <={most} taken at once")
            } else {
                String::new()
            };
            row(
                &format!("Pods {s}: {} atoms x {} asks outstanding", l.window, l.size),
                None,
                Some(l.rate),
                &format!(
                    "asks/s in <={} requests{taken}; {} output atoms, {} out of ask order",
                    l.window.min(most),
                    l.atoms,
                    l.reordered
                ),
            );
        }
        row(
            &format!("Pods {s}: one atom of {BIG_ATOM} asks"),
            None,
            Some(BIG_ATOM as f64 / f.big_best.as_secs_f64()),
            &format!(
                "asks/s; best {:.2} ms, median {:.2} ms",
                f.big_best.as_secs_f64() * 1e3,
                f.big_median.as_secs_f64() * 1e3
            ),
        );
    }

    println!();
    println!("ratios (NORMAL, the target's setting; FULL in brackets):");
    let ratio = |what: &str, normal: f64, full: f64, target: &str| {
        println!("  {what:<58} {normal:>7.2}  [{full:.2}]  target {target}");
    };
    let p50 = |f: &PodsFigures| micros(f.p50) / micros(bare.0);
    ratio(
        "Pods p50 / bare libp2p p50, 1 in flight",
        p50(&normal),
        p50(&full),
        "<= 2",
    );
    let share = |f: &PodsFigures| f.rates[0].rate / bare_rate;
    ratio(
        &format!("Pods asks/s 16 x 4 / bare libp2p requests/s {IN_FLIGHT} in flight"),
        share(&normal),
        share(&full),
        ">= 0.8",
    );
    let big = |f: &PodsFigures| BIG_ATOM as f64 / f.big_best.as_secs_f64() / 1e5;
    ratio(
        &format!("Pods asks/s, atom of {BIG_ATOM} (best) / 100,000"),
        big(&normal),
        big(&full),
        ">= 1",
    );
    let bare_tcp = micros(bare.0) / micros(tcp.0);
    println!("  {:<58} {bare_tcp:>7.2}", "bare libp2p p50 / bare TCP p50");
}
