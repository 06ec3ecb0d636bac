//! Remote streams: a workflow on one node consumes a stream another node exports, pulled by
//! offset into a local external generator; exact across restarts of either side; the log at
//! the exporter is dropped once pulled, and past the log horizon the puller is told.

use std::time::{Duration, Instant};

use pods_node::{Catalog, Import, Pulled, Settings, SqliteStore, StoreOptions, StreamReader};
use pods_sdk::{AppBuilder, Ctx, PerTaskState};

use crate::*;

const DOUBLED: &str = "/producer/workflows/double/stream";

/// `producer`: numbers fed at `/producer/generators/numbers`, doubled by workflow `double`.
fn producer_catalog() -> Catalog {
    Catalog::new().with("producer", |_| {
        let app = AppBuilder::new("producer");
        let numbers = app.generator_external::<i64>("numbers");
        app.workflow("double")
            .source(&numbers)
            .map(|x: i64| x * 2)
            .sink();
        Ok(app.build()?)
    })
}

/// `mirror`: a generator fed from a peer's stream, summed by workflow `sum` (state: events
/// and their sum), which passes the values on.
pub(crate) fn mirror_catalog() -> Catalog {
    Catalog::new().with("mirror", |_| {
        let app = AppBuilder::new("mirror");
        let from_b = app.generator_external::<i64>("from_b");
        let total = PerTaskState::<(u64, i64)>::new("total");
        app.workflow("sum")
            .source(&from_b)
            .processor(move |ctx: &mut Ctx<'_, i64>, x: i64| {
                let (n, sum) = total.get(ctx);
                total.set(ctx, (n + 1, sum + x));
                ctx.emit(x);
            })
            .sink();
        Ok(app.build()?)
    })
}

/// Events of `ranged`, in atoms of `RANGE_ATOM`.
const RANGE: i64 = 120_000;
const RANGE_ATOM: usize = 40;

/// `ranged`: the numbers 0..`RANGE` (a replayable generator), doubled by workflow `double`
/// under the app name `producer` (so the same import path serves both producers).
pub(crate) fn ranged_catalog() -> Catalog {
    Catalog::new().with("producer", |_| {
        let app = AppBuilder::new("producer");
        let numbers = app.generator_from_range("numbers", 0..RANGE, RANGE_ATOM);
        app.workflow("double")
            .source(&numbers)
            .map(|x: i64| x * 2)
            .sink();
        Ok(app.build()?)
    })
}

fn plan(horizon: Option<u64>) -> (Planned, Planned) {
    let (a, b) = (Planned::new("a"), Planned::new("b"));
    b.configure(
        &["producer"],
        &[a.as_peer()],
        &[(DOUBLED, vec!["a".into()])],
    );
    if let Some(h) = horizon {
        let mut s = Settings::load(b.dir.path()).unwrap();
        s.limits.log_horizon_atoms = h;
        s.save(b.dir.path()).unwrap();
    }
    a.configure(&["mirror"], &[b.as_peer()], &[]);
    let mut s = Settings::load(a.dir.path()).unwrap();
    s.imports = vec![Import {
        from: format!("/peers/b{DOUBLED}"),
        into: "/mirror/generators/from_b".into(),
    }];
    s.save(a.dir.path()).unwrap();
    (a, b)
}

/// The (events, sum) `sum` committed at `dir`.
fn total(dir: &std::path::Path) -> (u64, i64) {
    let options = StoreOptions {
        read_only: true,
        ..StoreOptions::default()
    };
    let store = SqliteStore::open(dir, options).unwrap();
    let r = store
        .recover(
            pods_sdk::Path::parse("/mirror/workflows/sum")
                .unwrap()
                .stable_id(),
        )
        .unwrap();
    r.values
        .values()
        .next()
        .map(|b| ciborium::from_reader(b.as_slice()).unwrap())
        .unwrap_or_default()
}

fn wait_total(dir: &std::path::Path, want: (u64, i64)) {
    let end = Instant::now() + Duration::from_secs(30);
    while total(dir) != want {
        assert!(
            Instant::now() < end,
            "committed {:?}, want {want:?}",
            total(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_workflow_consumes_a_stream_another_node_exports_atom_by_atom() {
    let _dog = watchdog("a_workflow_consumes_a_stream_another_node_exports", 60);
    let (a, b) = plan(None);
    let node_b = Running::start(b.dir.path(), producer_catalog);
    let node_a = Running::start(a.dir.path(), mirror_catalog);
    let out = node_a.subscribe::<i64>("/mirror/workflows/sum/stream");
    node_b.feed("/producer/generators/numbers", vec![1i64, 2, 3]);
    node_b.feed("/producer/generators/numbers", vec![4i64]);
    assert_eq!(
        collect(&out, 4, Duration::from_secs(30)),
        vec![vec![2, 4, 6], vec![8]]
    );
    wait_total(a.dir.path(), (4, 20));
    drop((node_a, node_b));
}

#[test]
fn a_remote_stream_is_consumed_once_across_restarts_of_either_side_and_its_log_dropped() {
    let _dog = watchdog("a_remote_stream_is_consumed_once_across_restarts", 120);
    let (a, b) = plan(None);
    let feed = "/producer/generators/numbers";
    let node_b = Running::start(b.dir.path(), producer_catalog);
    let node_a = Running::start(a.dir.path(), mirror_catalog);
    node_b.feed(feed, vec![1i64, 2]);
    node_b.feed(feed, vec![3i64]);
    wait_total(a.dir.path(), (3, 12));
    // The consumer restarts; the producer goes on meanwhile.
    node_a.stop();
    node_b.feed(feed, vec![10i64]);
    node_b.feed(feed, vec![20i64, 30]);
    let node_a = Running::start(a.dir.path(), mirror_catalog);
    wait_total(a.dir.path(), (6, 12 + 120));
    // The producer restarts.
    node_b.stop();
    let node_b = Running::start(b.dir.path(), producer_catalog);
    node_b.feed(feed, vec![100i64]);
    wait_total(a.dir.path(), (7, 132 + 200));
    // Every atom a pulled is dropped at b once a acknowledged it (by pulling past it).
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let pulled = StreamReader::open(b.dir.path())
            .unwrap()
            .pull(DOUBLED, 0, 10, 1 << 20)
            .unwrap();
        if pulled == (Pulled::Truncated { first: 5 }) {
            break;
        }
        assert!(
            Instant::now() < end,
            "b's log still holds atoms a took: {pulled:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((node_a, node_b));
}

/// Waits (up to 20 s) for the node's first import to stop, having taken nothing; returns why it
/// stopped.
fn stopped_import(client: &pods_node::admin::client::AdminClient) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s: pods_node::admin::api::Status = client.get("/status").unwrap();
        if let Some(why) = s.imports[0].stopped.clone() {
            assert_eq!(s.imports[0].next, 0, "nothing taken");
            return why;
        }
        assert!(
            Instant::now() < end,
            "the import never stopped: {:?}",
            s.imports
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn past_the_log_horizon_the_puller_is_told_atoms_were_dropped() {
    let _dog = watchdog("past_the_log_horizon", 60);
    let (a, b) = plan(Some(2));
    let node_b = Running::start(b.dir.path(), producer_catalog);
    for x in 0..5i64 {
        node_b.feed("/producer/generators/numbers", vec![x]);
    }
    // Wait for b to commit the five atoms, then a arrives (it never pulled).
    let end = Instant::now() + Duration::from_secs(20);
    while node_b
        .started
        .node
        .activity()
        .snapshot()
        .get("/producer/workflows/double")
        .map(|w| w.atoms)
        != Some(5)
    {
        assert!(Instant::now() < end, "b did not commit its atoms");
        std::thread::sleep(Duration::from_millis(20));
    }
    let node_a = Running::start(a.dir.path(), mirror_catalog);
    let client = pods_node::admin::client::AdminClient::for_dir(a.dir.path()).unwrap();
    let stopped = stopped_import(&client);
    assert!(
        stopped.contains(
            "holds atoms from 3 on; 0 to 2 were dropped after the log horizon of 2 atoms"
        ),
        "{stopped}"
    );
    assert_eq!(
        total(a.dir.path()),
        (0, 0),
        "no atom after the gap was taken"
    );
    drop((node_a, node_b));
}

/// Kills `which` side ("producer" or "mirror") five times while the mirror pulls the ranged
/// stream; the mirror's committed (events, sum) must be exact.
fn killed_side_keeps_the_stream_exact(which: &str, seed: u64) {
    use crate::crashes::{ChildNode, moments};
    let (a, b) = plan(None);
    let want = (RANGE as u64, (0..RANGE).map(|x| x * 2).sum::<i64>());
    let (mut child, _other) = if which == "producer" {
        let child = ChildNode::start(b.dir.path(), "ranged");
        (child, Running::start(a.dir.path(), mirror_catalog))
    } else {
        let other = Running::start(b.dir.path(), ranged_catalog);
        (ChildNode::start(a.dir.path(), "mirror"), other)
    };
    let (dir, app) = if which == "producer" {
        (b.dir.path(), "ranged")
    } else {
        (a.dir.path(), "mirror")
    };
    let mut landed = 0;
    for wait in moments(seed, 5) {
        std::thread::sleep(wait / 3);
        if total(a.dir.path()) == want {
            break;
        }
        child.kill();
        landed += 1;
        child = ChildNode::start(dir, app);
    }
    let end = Instant::now() + Duration::from_secs(90);
    while total(a.dir.path()) != want {
        let (n, _) = total(a.dir.path());
        assert!(n <= RANGE as u64, "the mirror took {n} events of {RANGE}");
        assert!(
            Instant::now() < end,
            "the mirror did not finish: {:?}",
            total(a.dir.path())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{which} killed {landed} times before the mirror finished");
    assert!(
        landed >= 3,
        "at least three kills landed mid-run ({landed})"
    );
    child.kill();
}

#[test]
fn the_producer_node_killed_and_restarted_keeps_the_stream_exact() {
    let _dog = watchdog("the_producer_node_killed", 180);
    killed_side_keeps_the_stream_exact("producer", 0x5eed_0003);
}

#[test]
fn the_consumer_node_killed_and_restarted_keeps_the_stream_exact() {
    let _dog = watchdog("the_consumer_node_killed", 180);
    killed_side_keeps_the_stream_exact("mirror", 0x5eed_0004);
}

/// `mirror`, with a generator of text where the peer's stream holds numbers.
fn text_mirror_catalog() -> Catalog {
    Catalog::new().with("mirror", |_| {
        let app = AppBuilder::new("mirror");
        let from_b = app.generator_external::<String>("from_b");
        app.workflow("sum")
            .source(&from_b)
            .processor(|ctx: &mut Ctx<'_, String>, x: String| ctx.emit(x))
            .sink();
        Ok(app.build()?)
    })
}

#[test]
fn an_imported_atom_that_does_not_fit_the_generator_stops_the_import_and_takes_nothing() {
    let _dog = watchdog("an_imported_atom_that_does_not_fit", 60);
    let (a, b) = plan(None);
    let node_b = Running::start(b.dir.path(), producer_catalog);
    node_b.feed("/producer/generators/numbers", vec![1i64, 2]);
    let node_a = Running::start(a.dir.path(), text_mirror_catalog);
    let client = pods_node::admin::client::AdminClient::for_dir(a.dir.path()).unwrap();
    let stopped = stopped_import(&client);
    assert!(
        stopped.contains("does not fit /mirror/generators/from_b"),
        "{stopped}"
    );
    // Stopped for good: later atoms are not taken either, and the node still serves.
    node_b.feed("/producer/generators/numbers", vec![3i64]);
    std::thread::sleep(Duration::from_millis(500));
    let s: pods_node::admin::api::Status = client.get("/status").unwrap();
    assert_eq!(
        (s.imports[0].next, s.imports[0].stopped.as_deref()),
        (0, Some(stopped.as_str()))
    );
    let sum = pods_sdk::Path::parse("/mirror/workflows/sum").unwrap();
    let options = StoreOptions {
        read_only: true,
        ..StoreOptions::default()
    };
    let store = SqliteStore::open(a.dir.path(), options).unwrap();
    assert_eq!(
        store.recover(sum.stable_id()).unwrap().step,
        0,
        "no step taken"
    );
    drop((node_a, node_b));
}
