//! Exactly-once across nodes with real crashes: the replier node, and separately the asking
//! node, runs in a child process (this test binary in child mode) killed with SIGKILL at
//! seeded moments and restarted on the same data dir and port; every ask must be applied once
//! at the replier and its reply taken once at the asker, in order per key.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pods_node::{Catalog, SqliteStore, StoreOptions};
use pods_sdk::{AppBuilder, AskError, Ctx, PerKeyState};

use crate::*;

const CHILD_DIR: &str = "PODS_NETWORK_CHILD_DIR";
const CHILD_APP: &str = "PODS_NETWORK_CHILD_APP";
/// Enough work that kills 150 to 650 ms apart land while it runs (a run takes about 2 s).
const EVENTS: i64 = 300_000;
const ATOM: usize = 100;
const KEYS: i64 = 100;
const TALLY: &str = "/tally/portals/tally";

/// A row at the asker: key, the key's count, and the replier's count of the asks it applied.
type Row = (i64, u64, u64);

/// `tally`: counts per key every ask it applies and replies with that count.
fn tally_catalog() -> Catalog {
    Catalog::new().with("tally", |_| {
        let app = AppBuilder::new("tally");
        let portal = app.portal_keyed::<(i64, u64), u64, _>("tally", |(k, _)| *k);
        let applied = PerKeyState::<u64>::new("applied");
        let none = app.generator_from_atoms::<(i64, u64)>("none", vec![]);
        app.workflow("tally")
            .source(&none)
            .replier(&portal, move |ctx, _ask: (i64, u64), to| {
                let n = applied.get(ctx) + 1;
                applied.set(ctx, n);
                ctx.reply(to, n);
            })
            .sink();
        Ok(app.build()?)
    })
}

/// `counting:PEER`: `EVENTS` events in atoms of `ATOM`, counted per key (x mod `KEYS`), each
/// new count asked at PEER's tally; the rows (key, count, applied) go to a sink that keeps per
/// key the number of rows and refuses a row out of order or applied twice.
fn counting_catalog() -> Catalog {
    Catalog::new().with("counting", |peer| {
        let app = AppBuilder::new("counting");
        let tally = app.portal_ref::<(i64, u64), u64>(&format!("/peers/{peer}{TALLY}"));
        let g = app.generator_from_range("g", 0..EVENTS, ATOM);
        let count = PerKeyState::<u64>::new("count");
        let asked = tally.clone();
        let rows = app
            .workflow("count")
            .source(&g)
            .key_by(|x| x % KEYS)
            .asker(&tally, move |ctx: &mut Ctx<'_, Row>, x: i64| {
                let c = count.get(ctx) + 1;
                count.set(ctx, c);
                let key = x % KEYS;
                let h = ctx.ask(&asked, (key, c));
                ctx.on_reply(
                    h,
                    move |ctx, r: Result<u64, AskError>| -> Result<(), AskError> {
                        ctx.emit((key, c, r?));
                        Ok(())
                    },
                );
            })
            .sink();
        let table = PerKeyState::<u64>::new("rows");
        app.workflow("sink")
            .source(&rows)
            .key_by(|(k, _, _): &Row| *k)
            .processor(move |ctx: &mut Ctx<'_, ()>, (key, c, applied): Row| {
                let n = table.get(ctx);
                if c != n + 1 || applied != c {
                    ctx.fail(format!(
                        "key {key}: row {c} applied {applied} after {n} rows"
                    ));
                    return;
                }
                table.set(ctx, n + 1);
            })
            .sink();
        Ok(app.build()?)
    })
}

/// The child: a node on the data dir `CHILD_DIR` hosting `CHILD_APP`'s catalog, until killed.
#[test]
#[ignore = "run as a child process by the crash tests"]
fn child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let catalog = match std::env::var(CHILD_APP).as_deref() {
        Ok("tally") => tally_catalog(),
        Ok("ranged") => crate::streams::ranged_catalog(),
        Ok("mirror") => crate::streams::mirror_catalog(),
        _ => counting_catalog(),
    };
    pods_node::run_until_signal(
        dir.into(),
        &catalog,
        pods_node::NodeConfig::default(),
        |_| {},
    )
    .expect("child node");
}

pub(crate) struct ChildNode {
    process: Child,
}

impl ChildNode {
    pub(crate) fn start(dir: &Path, app: &str) -> ChildNode {
        let _ = std::fs::remove_file(dir.join("admin.json"));
        let process = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "crashes::child", "--ignored", "--nocapture"])
            .env(CHILD_DIR, dir)
            .env(CHILD_APP, app)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("child starts");
        let end = Instant::now() + Duration::from_secs(30);
        while !dir.join("admin.json").exists() {
            assert!(Instant::now() < end, "the child node did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        ChildNode { process }
    }

    pub(crate) fn kill(mut self) {
        let _ = self.process.kill(); // SIGKILL
        let _ = self.process.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Per-key values of the single state of `workflow` committed in `dir` (read beside the node).
fn committed(dir: &Path, workflow: &str) -> Vec<u64> {
    let options = StoreOptions {
        read_only: true,
        ..StoreOptions::default()
    };
    let store = SqliteStore::open(dir, options).expect("store");
    let r = store
        .recover(pods_sdk::Path::parse(workflow).unwrap().stable_id())
        .expect("recover");
    r.values
        .values()
        .map(|b| ciborium::from_reader::<u64, _>(b.as_slice()).expect("u64"))
        .collect()
}

fn done(dir: &Path) -> bool {
    committed(dir, "/counting/workflows/sink")
        .iter()
        .sum::<u64>()
        == EVENTS as u64
}

/// Small seeded generator for the kill moments.
pub(crate) fn moments(seed: u64, n: usize) -> Vec<Duration> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(150 + x % 500)
        })
        .collect()
}

fn assert_exactly_once(asker: &Path, replier: &Path) {
    let rows = committed(asker, "/counting/workflows/sink");
    let per_key = (EVENTS / KEYS) as u64;
    assert_eq!(
        rows,
        vec![per_key; KEYS as usize],
        "every key's rows, once each, in order"
    );
    let applied = committed(replier, "/tally/workflows/tally");
    assert_eq!(
        applied,
        vec![per_key; KEYS as usize],
        "every ask applied once at the replier"
    );
}

#[test]
fn the_replier_node_killed_and_restarted_applies_every_ask_once() {
    let _dog = watchdog("the_replier_node_killed", 240);
    let (a, b) = (Planned::new("a"), Planned::new("b"));
    b.configure(&["tally"], &[a.as_peer()], &[(TALLY, vec!["a".into()])]);
    a.configure(&["counting:b"], &[b.as_peer()], &[]);
    let mut replier = ChildNode::start(b.dir.path(), "tally");
    let asker = Running::start(a.dir.path(), counting_catalog);
    let failures = asker.subscribe::<()>("/counting/workflows/sink/stream");
    let mut landed = 0;
    for wait in moments(0x5eed_0001, 5) {
        std::thread::sleep(wait);
        if done(a.dir.path()) {
            break;
        }
        replier.kill();
        landed += 1;
        replier = ChildNode::start(b.dir.path(), "tally");
    }
    let end = Instant::now() + Duration::from_secs(120);
    while !done(a.dir.path()) {
        assert!(
            failures
                .items()
                .iter()
                .all(|i| !matches!(i, pods_sdk::StreamItem::Error(_))),
            "{:?}",
            failures.items().last()
        );
        assert!(Instant::now() < end, "the asker did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("replier killed {landed} times before the asker finished");
    assert!(
        landed >= 3,
        "at least three kills landed mid-run ({landed})"
    );
    asker.stop();
    replier.kill();
    assert_exactly_once(a.dir.path(), b.dir.path());
}

#[test]
fn the_asking_node_killed_and_restarted_takes_every_reply_once() {
    let _dog = watchdog("the_asking_node_killed", 240);
    let (a, b) = (Planned::new("a"), Planned::new("b"));
    b.configure(&["tally"], &[a.as_peer()], &[(TALLY, vec!["a".into()])]);
    a.configure(&["counting:b"], &[b.as_peer()], &[]);
    let replier = Running::start(b.dir.path(), tally_catalog);
    let mut asker = ChildNode::start(a.dir.path(), "counting");
    let mut landed = 0;
    for wait in moments(0x5eed_0002, 5) {
        std::thread::sleep(wait);
        if done(a.dir.path()) {
            break;
        }
        asker.kill();
        landed += 1;
        asker = ChildNode::start(a.dir.path(), "counting");
    }
    let end = Instant::now() + Duration::from_secs(120);
    while !done(a.dir.path()) {
        let applied: u64 = committed(b.dir.path(), "/tally/workflows/tally")
            .iter()
            .sum();
        assert!(
            applied <= EVENTS as u64,
            "the replier applied {applied} asks of {EVENTS}"
        );
        assert!(Instant::now() < end, "the asker did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("asker killed {landed} times before it finished");
    assert!(
        landed >= 3,
        "at least three kills landed mid-run ({landed})"
    );
    asker.kill();
    replier.stop();
    assert_exactly_once(a.dir.path(), b.dir.path());
}
