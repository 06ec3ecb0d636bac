//! Remote asks between two and three nodes: exact replies, in order, each applied once.

use std::time::Duration;

use crate::*;

const COUNT: &str = "/counter/portals/count";

#[test]
fn a_workflow_asks_a_portal_of_another_node() {
    let _dog = watchdog("a_workflow_asks_a_portal_of_another_node", 60);
    let (a, b) = (Planned::new("a"), Planned::new("b"));
    b.configure(&["counter"], &[a.as_peer()], &[(COUNT, vec!["a".into()])]);
    a.configure(&["asker:b"], &[b.as_peer()], &[]);
    let node_b = Running::start(b.dir.path(), counter_catalog);
    let node_a = Running::start(a.dir.path(), asker_catalog);
    let replies = node_a.subscribe::<String>("/asker/workflows/ask/stream");
    let applied = node_b.subscribe::<String>("/counter/workflows/counts/stream");
    node_a.feed(
        "/asker/generators/words",
        words(&["apple", "pear", "apple"]),
    );
    node_a.feed("/asker/generators/words", words(&["apple"]));
    let got = collect(&replies, 4, Duration::from_secs(30));
    assert_eq!(
        got,
        vec![
            words(&["apple=1", "pear=1", "apple=2"]),
            words(&["apple=3"])
        ],
        "one reply per ask, in order, atom by atom"
    );
    let at_b: Vec<String> = collect(&applied, 4, Duration::from_secs(5)).concat();
    assert_eq!(
        at_b,
        words(&["apple=1", "pear=1", "apple=2", "apple=3"]),
        "each ask applied once"
    );
    node_a.stop();
    node_b.stop();
}

#[test]
fn two_nodes_ask_a_third_and_share_its_counts() {
    let _dog = watchdog("two_nodes_ask_a_third_and_share_its_counts", 90);
    let (a, b, c) = (Planned::new("a"), Planned::new("b"), Planned::new("c"));
    // b allows a by name and c by PeerId; c knows b as "hub".
    b.configure(
        &["counter"],
        &[a.as_peer(), c.as_peer()],
        &[(COUNT, vec!["a".into(), c.peer_id.clone()])],
    );
    a.configure(&["asker:b"], &[b.as_peer()], &[]);
    c.configure(&["asker:hub"], &[b.named("hub")], &[]);
    let node_b = Running::start(b.dir.path(), counter_catalog);
    let node_a = Running::start(a.dir.path(), asker_catalog);
    let node_c = Running::start(c.dir.path(), asker_catalog);
    let from_a = node_a.subscribe::<String>("/asker/workflows/ask/stream");
    let from_c = node_c.subscribe::<String>("/asker/workflows/ask/stream");
    for _ in 0..10 {
        node_a.feed("/asker/generators/words", words(&["fig"]));
        node_c.feed("/asker/generators/words", words(&["fig"]));
    }
    let a_got = collect(&from_a, 10, Duration::from_secs(30)).concat();
    let c_got = collect(&from_c, 10, Duration::from_secs(30)).concat();
    assert_eq!((a_got.len(), c_got.len()), (10, 10));
    let mut counts: Vec<u64> = a_got
        .iter()
        .chain(&c_got)
        .map(|l| l.trim_start_matches("fig=").parse().unwrap())
        .collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<u64>>(),
        "20 asks, each counted once"
    );
    let count = |l: &String| l.trim_start_matches("fig=").parse::<u64>().unwrap();
    let ascending = |v: &[String]| v.windows(2).all(|w| count(&w[0]) < count(&w[1]));
    assert!(
        ascending(&a_got) && ascending(&c_got),
        "each node sees its counts grow: {a_got:?} {c_got:?}"
    );
    drop((node_a, node_c, node_b));
}
