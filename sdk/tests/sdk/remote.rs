//! Asks across processes: two systems in one test, A and B, joined by a small gateway that
//! carries A's asks to remote portals (`/peers/b/...`) to B's `ask_inbound`, and B's replies
//! back to A's `answer_outbound`. The deterministic pair is pumped by the test between runs;
//! the threaded pair carries them at once, from the systems' own threads.

mod pair;

use std::sync::{Arc, Mutex};

use pods_sdk::{
    App, AppBuilder, AskError, AskId, Data, Error, InboundAsk, Path, PerKeyState, Portal,
    StreamItem, Subscription,
};

use crate::{Rt, Sys, serve};
use pair::{Pair, Reply, Side, Wire};

/// B's app `shop`: a portal `counter` keyed by item, answered by a workflow of two partitions
/// that adds each request's amount to the item's count and replies (and emits) the new count.
fn shop() -> App {
    let app = AppBuilder::new("shop");
    let counter = app.portal_keyed::<(String, i64), i64, _>("counter", |(item, _)| item.clone());
    let none = app.generator_from_atoms::<(String, i64)>("none", vec![]);
    let count = PerKeyState::<i64>::new("count");
    app.workflow("counters")
        .partitions(2)
        .source(&none)
        .replier(&counter, move |ctx, (item, n): (String, i64), to| {
            let total = count.get(ctx) + n;
            count.set(ctx, total);
            ctx.emit((item, total));
            ctx.reply(to, total);
        })
        .sink();
    app.build().unwrap()
}

/// B's app `math`: a portal `double` (x → 2x) that fails its workflow on 0.
fn math() -> App {
    let app = AppBuilder::new("math");
    let double = app.portal::<i64, i64>("double");
    serve(&app, "doubler", &double, |ctx, x, to| {
        if x == 0 {
            return Err("zero");
        }
        ctx.reply(to, 2 * x);
        Ok(())
    });
    app.build().unwrap()
}

/// Adds to `app` a workflow `name` that asks `portal` once per event of `atoms` and emits
/// what `then` makes of the event and its reply.
fn asker<Req: Data, Rep: Data, Out: Data>(
    app: &AppBuilder,
    name: &str,
    portal: &str,
    atoms: Vec<Vec<Req>>,
    then: impl Fn(Req, Result<Rep, AskError>) -> Out + Send + Sync + Clone + 'static,
) {
    let remote: Portal<Req, Rep> = app.portal_ref(portal);
    let g = app.generator_from_atoms(&format!("{name}-input"), atoms);
    let p = remote.clone();
    app.workflow(name)
        .source(&g)
        .asker(&remote, move |ctx, x: Req| {
            let h = ctx.ask(&p, x.clone());
            let then = then.clone();
            ctx.on_reply(h, move |ctx, r: Result<Rep, AskError>| ctx.emit(then(x, r)));
        })
        .sink();
}

/// A's app `client` with one asking workflow (see [`asker`]).
fn client<Req: Data, Rep: Data, Out: Data>(
    portal: &str,
    atoms: Vec<Vec<Req>>,
    then: impl Fn(Req, Result<Rep, AskError>) -> Out + Send + Sync + Clone + 'static,
) -> App {
    let app = AppBuilder::new("client");
    asker(&app, "asker", portal, atoms, then);
    app.build().unwrap()
}

const CLIENT: &str = "/client/workflows/asker/stream";

/// The values of a stream, sorted, and whether it was sealed.
fn sorted<T: Data + Ord>(sub: &Subscription<T>) -> (Vec<T>, bool) {
    let mut values = sub.values().concat();
    values.sort();
    (values, sub.items().last() == Some(&StreamItem::Seal))
}

fn a_keyed_counter_on_b_answers_a_workflow_on_a(rt: Rt) {
    let mut pair = Pair::new(rt, Wire::Carry);
    pair.b.launch(shop()).unwrap();
    let counted = pair
        .b
        .subscribe::<(String, i64)>("/shop/workflows/counters/stream");
    let order = |item: &str, n: i64| (item.to_string(), n);
    let atoms = vec![
        vec![order("apple", 1), order("pear", 2)],
        vec![order("apple", 3)],
        vec![order("pear", 4), order("apple", 5)],
    ];
    let app = client(
        "/peers/b/shop/portals/counter",
        atoms,
        |(item, _), r: Result<i64, AskError>| (item, r.unwrap_or(-1)),
    );
    pair.a.launch(app).unwrap();
    let out = pair.a.subscribe::<(String, i64)>(CLIENT);
    pair.run();
    let expected: Vec<(String, i64)> = vec![
        order("apple", 1),
        order("apple", 4),
        order("apple", 9),
        order("pear", 2),
        order("pear", 6),
    ];
    assert_eq!(
        sorted(&out),
        (expected.clone(), true),
        "A's continuations, then A seals"
    );
    assert_eq!(
        sorted(&counted),
        (expected, false),
        "B counted each ask once"
    );
    assert_eq!(pair.sent().len(), 5);
}

fn on_replies_gathers_several_remote_asks(rt: Rt) {
    let mut pair = Pair::new(rt, Wire::Carry);
    pair.b.launch(math()).unwrap();
    let app = AppBuilder::new("client");
    let double = app.portal_ref::<i64, i64>("/peers/b/math/portals/double");
    let g = app.generator_from_atoms("g", vec![vec![1i64], vec![10, 100]]);
    let d = double.clone();
    app.workflow("asker")
        .source(&g)
        .asker(&double, move |ctx, x: i64| {
            let handles = vec![ctx.ask(&d, x), ctx.ask(&d, x + 1), ctx.ask(&d, x + 2)];
            ctx.on_replies(
                handles,
                move |ctx, r: Result<Vec<i64>, AskError>| -> Result<(), AskError> {
                    ctx.emit((x, r?));
                    Ok(())
                },
            );
        })
        .sink();
    pair.a.launch(app.build().unwrap()).unwrap();
    let out = pair.a.subscribe::<(i64, Vec<i64>)>(CLIENT);
    pair.run();
    let expected = vec![
        (1, vec![2, 4, 6]),
        (10, vec![20, 22, 24]),
        (100, vec![200, 202, 204]),
    ];
    assert_eq!(sorted(&out), (expected, true));
}

fn a_request_b_cannot_decode_is_of_the_wrong_type_and_b_goes_on(rt: Rt) {
    let mut pair = Pair::new(rt, Wire::Carry);
    pair.b.launch(math()).unwrap();
    let doubled = pair.b.subscribe::<i64>("/math/workflows/doubler/stream");
    let app = AppBuilder::new("client");
    // This handle names the portal with another request type; only B can tell.
    let words = vec![vec!["seven".to_string()], vec!["eight".to_string()]];
    asker(
        &app,
        "words",
        DOUBLE,
        words,
        |w, r: Result<i64, AskError>| (w, r),
    );
    asker(
        &app,
        "numbers",
        DOUBLE,
        vec![vec![3i64], vec![4]],
        |x, r: Result<i64, AskError>| (x, r),
    );
    pair.a.launch(app.build().unwrap()).unwrap();
    let words = pair
        .a
        .subscribe::<(String, Result<i64, AskError>)>("/client/workflows/words/stream");
    let numbers = pair
        .a
        .subscribe::<(i64, Result<i64, AskError>)>("/client/workflows/numbers/stream");
    pair.run();
    let wrong = || {
        // Named as A asked it, though B tells it.
        Err(AskError::WrongRequestType {
            portal: DOUBLE.into(),
        })
    };
    let (mut got, sealed) = (words.values().concat(), words.ended());
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![
            ("eight".to_string(), wrong()),
            ("seven".to_string(), wrong())
        ]
    );
    assert!(sealed);
    let (mut got, sealed) = (numbers.values().concat(), numbers.ended());
    got.sort_by_key(|x| x.0);
    assert_eq!(
        got,
        vec![(3, Ok(6)), (4, Ok(8))],
        "B's replier still answers"
    );
    assert!(sealed);
    assert!(
        !doubled
            .items()
            .iter()
            .any(|i| matches!(i, StreamItem::Error(_))),
        "B's replier did not fail"
    );
}

fn a_reply_a_cannot_decode_is_undecodable(rt: Rt) {
    let mut pair = Pair::new(rt, Wire::Carry);
    pair.b.launch(math()).unwrap();
    // This handle expects text back; B replies with a number.
    let app = client(
        DOUBLE,
        vec![vec![5i64]],
        |x, r: Result<String, AskError>| match r {
            Err(AskError::Undecodable { ask, .. }) if !ask.is_empty() => x,
            _ => -x,
        },
    );
    pair.a.launch(app).unwrap();
    let out = pair.a.subscribe::<i64>(CLIENT);
    pair.run();
    assert_eq!(sorted(&out), (vec![5], true));
}

fn a_failing_replier_on_b_answers_replier_failed(rt: Rt) {
    let mut pair = Pair::new(rt, Wire::Carry);
    pair.b.launch(math()).unwrap();
    let app = client(DOUBLE, vec![vec![0i64]], |x, r: Result<i64, AskError>| {
        (x, r)
    });
    pair.a.launch(app).unwrap();
    let out = pair.a.subscribe::<(i64, Result<i64, AskError>)>(CLIENT);
    pair.run();
    let failed = Err(AskError::ReplierFailed {
        portal: DOUBLE.into(),
    });
    assert_eq!(out.values().concat(), vec![(0, failed)]);
    assert!(out.ended());
}

fn without_a_gateway_a_remote_ask_is_unknown_portal(rt: Rt) {
    let mut pair = Pair::new(rt, Wire::Absent);
    let app = client(
        DOUBLE,
        vec![vec![1i64, 2]],
        |x, r: Result<i64, AskError>| (x, r),
    );
    pair.a.launch(app).unwrap();
    let out = pair.a.subscribe::<(i64, Result<i64, AskError>)>(CLIENT);
    pair.run();
    let unknown = || {
        Err(AskError::UnknownPortal {
            portal: DOUBLE.into(),
        })
    };
    let mut got = out.values().concat();
    got.sort_by_key(|x| x.0);
    assert_eq!(got, vec![(1, unknown()), (2, unknown())]);
    assert!(out.ended());
}

fn a_gateway_that_never_answers_times_out_once(rt: Rt) {
    let mut pair = Pair::new(rt, Wire::Silent);
    let app = client(
        DOUBLE,
        vec![vec![1i64, 2]],
        |x, r: Result<i64, AskError>| match r {
            Err(AskError::Timeout { portal, after_ms }) if portal == DOUBLE && after_ms > 0 => x,
            _ => -x,
        },
    );
    pair.a.launch(app).unwrap();
    let out = pair.a.subscribe::<i64>(CLIENT);
    pair.run();
    assert_eq!(sorted(&out), (vec![1, 2], true), "each ask timed out, once");
    let sent = pair.sent();
    assert_eq!(sent.len(), 2);
    // Replies after the deadline are dropped.
    for id in sent {
        let mut bytes = Vec::new();
        ciborium::into_writer(&0i64, &mut bytes).unwrap();
        pair.a.answer_outbound(id, Ok(bytes));
    }
    pair.run();
    assert_eq!(sorted(&out), (vec![1, 2], true));
}

fn asks_from_another_process_are_answered_once_per_id(rt: Rt) {
    let mut b = Side::new(rt, 3);
    if let Side::Thr(s) = &b {
        s.start();
    }
    b.launch(shop()).unwrap();
    let counted = b.subscribe::<(String, i64)>("/shop/workflows/counters/stream");
    let got: Arc<Mutex<Vec<(u8, Reply)>>> = Arc::default();
    let respond = |tag: u8| -> Box<dyn FnOnce(Result<Vec<u8>, AskError>) + Send> {
        let got = got.clone();
        Box::new(move |r| got.lock().unwrap().push((tag, r)))
    };
    let mut request = Vec::new();
    ciborium::into_writer(&("fig".to_string(), 2i64), &mut request).unwrap();
    let id = AskId {
        origin: 1,
        scope: 2,
        partition: 0,
        seq: 3,
    };
    let counter = Path::parse("/shop/portals/counter").unwrap();
    b.ask_inbound(&counter, id, request.clone(), None, respond(1))
        .unwrap();
    b.ask_inbound(&counter, id, request.clone(), None, respond(2))
        .unwrap();
    let unknown = Path::parse("/shop/portals/nothing").unwrap();
    assert_eq!(
        b.ask_inbound(&unknown, id, request, None, respond(3)),
        Err(Error::UnknownPath {
            path: "/shop/portals/nothing".into(),
            referrer: "an ask from another process".into(),
        })
    );
    b.run();
    let mut two = Vec::new();
    ciborium::into_writer(&2i64, &mut two).unwrap();
    let mut got = got.lock().unwrap().clone();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        vec![(1, Ok(two.clone())), (2, Ok(two))],
        "one reply, to both callbacks"
    );
    assert_eq!(
        counted.values().concat(),
        vec![("fig".to_string(), 2)],
        "counted once"
    );
}

fn asks_taken_together_reach_the_replier_as_one_atom(rt: Rt) {
    let mut b = Side::new(rt, 5);
    if let Side::Thr(s) = &b {
        s.start();
    }
    b.launch(shop()).unwrap();
    let counted = b.subscribe::<(String, i64)>("/shop/workflows/counters/stream");
    let got: Arc<Mutex<Vec<(u32, Reply)>>> = Arc::default();
    let counter = Path::parse("/shop/portals/counter").unwrap();
    let unknown = Path::parse("/shop/portals/nothing").unwrap();
    let asks = [
        ("fig", 2i64, &counter),
        ("fig", 1, &unknown),
        ("fig", 3, &counter),
        ("pear", 1, &counter),
    ]
    .into_iter()
    .enumerate()
    .map(|(seq, (item, n, portal))| {
        let seq = seq as u32;
        let mut request = Vec::new();
        ciborium::into_writer(&(item.to_string(), n), &mut request).unwrap();
        let got = got.clone();
        InboundAsk {
            portal: portal.clone(),
            id: AskId {
                origin: 1,
                scope: 2,
                partition: 0,
                seq,
            },
            request,
            envelope: None,
            reply: Box::new(move |r| got.lock().unwrap().push((seq, r))),
        }
    })
    .collect();
    let refused = b.ask_inbound_all(asks);
    assert_eq!(
        refused,
        vec![(
            1,
            Error::UnknownPath {
                path: "/shop/portals/nothing".into(),
                referrer: "an ask from another process".into(),
            }
        )]
    );
    b.run();
    let encoded = |n: i64| {
        let mut bytes = Vec::new();
        ciborium::into_writer(&n, &mut bytes).unwrap();
        Ok(bytes)
    };
    let mut got = got.lock().unwrap().clone();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, vec![(0, encoded(2)), (2, encoded(5)), (3, encoded(1))]);
    // One step of the replier took all three: its output is one atom.
    let atoms = counted.values();
    assert_eq!(atoms.len(), 1, "{atoms:?}");
    let mut counts = atoms.concat();
    counts.sort();
    let expected = [("fig", 2), ("fig", 5), ("pear", 1)];
    assert_eq!(counts, expected.map(|(i, n)| (i.to_string(), n)).to_vec());
}

fn an_ask_from_another_process_waits_for_its_replier_without_a_deadline_here(rt: Rt) {
    let mut b = Side::new(rt, 4);
    if let Side::Thr(s) = &b {
        s.start();
    }
    let app = AppBuilder::new("math");
    let double = app.portal::<i64, i64>("double");
    // Requests it leaves unanswered, kept so that nothing answers them.
    let kept: Arc<Mutex<Vec<pods_sdk::ReplyTo<i64>>>> = Arc::default();
    let keep = kept.clone();
    serve(&app, "doubler", &double, move |_, _, to| {
        keep.lock().unwrap().push(to)
    });
    b.launch(app.build().unwrap()).unwrap();
    let got: Arc<Mutex<Vec<Reply>>> = Arc::default();
    let g = got.clone();
    let mut request = Vec::new();
    ciborium::into_writer(&4i64, &mut request).unwrap();
    let id = AskId {
        origin: 1,
        scope: 2,
        partition: 0,
        seq: 0,
    };
    let portal = Path::parse("/math/portals/double").unwrap();
    let g2 = g.clone();
    let reply = Box::new(move |r| g.lock().unwrap().push(r));
    b.ask_inbound(&portal, id, request.clone(), None, reply)
        .unwrap();
    b.run();
    // The asker's deadline governs: here the ask stays open (a timeout answered here would
    // let the asker send it again while it is still queued, and apply it twice).
    assert_eq!(
        got.lock().unwrap().len(),
        0,
        "no answer while the replier holds it"
    );
    let reply = Box::new(move |r| g2.lock().unwrap().push(r));
    b.ask_inbound(&portal, id, request, None, reply).unwrap();
    b.run();
    assert_eq!(got.lock().unwrap().len(), 0);
    assert_eq!(kept.lock().unwrap().len(), 1, "asked twice, taken once");
}

fn envelopes_cross_to_b_and_back(rt: Rt) {
    use pods_sdk::{Envelope, Event};
    let mut pair = Pair::new(rt, Wire::Carry);
    let app = AppBuilder::new("math");
    let double = app.portal::<i64, i64>("double");
    serve(&app, "doubler", &double, |ctx, x, to| {
        ctx.emit(x);
        ctx.reply(to, 2 * x)
    });
    pair.b.launch(app.build().unwrap()).unwrap();
    let doubled = pair.b.subscribe::<i64>("/math/workflows/doubler/stream");
    let alice = Envelope::new("alice", &["health.heart_rate"]);
    let app = AppBuilder::new("client");
    let double = app.portal_ref::<i64, i64>(DOUBLE);
    let g = app.generator_from_events(
        "g",
        vec![vec![Event::personal(5i64, alice.clone()), Event::new(6)]],
    );
    let d = double.clone();
    app.workflow("asker")
        .source(&g)
        .asker(&double, move |ctx, x: i64| {
            let h = ctx.ask(&d, x);
            ctx.on_reply(h, |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                ctx.emit(r?);
                Ok(())
            });
        })
        .sink();
    pair.a.launch(app.build().unwrap()).unwrap();
    let out = pair.a.subscribe::<i64>(CLIENT);
    pair.run();
    let envelopes = |sub: &Subscription<i64>| {
        let mut events: Vec<(i64, Option<Envelope>)> = sub
            .items()
            .into_iter()
            .filter_map(|i| match i {
                StreamItem::Atom(a) => Some(a),
                _ => None,
            })
            .flatten()
            .map(|e| (e.value, e.envelope.as_deref().cloned()))
            .collect();
        events.sort_by_key(|e| e.0);
        events
    };
    let on_b = envelopes(&doubled);
    assert_eq!(
        on_b,
        vec![(5, Some(alice.clone())), (6, None)],
        "B's replier saw the subject"
    );
    assert_eq!(
        envelopes(&out),
        vec![(10, Some(alice)), (12, None)],
        "the reply kept it"
    );
}

fn an_app_under_peers_is_refused(rt: Rt) {
    let mut system = Sys::new(rt, 1);
    let app = AppBuilder::new("peers");
    let g = app.generator_from_atoms("g", vec![vec![1i64]]);
    app.workflow("w").source(&g).identity().sink();
    assert_eq!(
        system.launch(app.build().unwrap()),
        Err(Error::ReservedPath {
            app: "/peers".into()
        })
    );
    // Streams are never remote: a stream below /peers is unknown, as any missing path.
    let app = AppBuilder::new("a");
    let s = app.stream_ref::<i64>("/peers/b/x/workflows/w/stream");
    app.workflow("w").source(&s).identity().sink();
    assert!(matches!(
        system.launch(app.build().unwrap()),
        Err(Error::UnknownPath { .. })
    ));
    assert!(system.registry().is_empty(), "nothing launched");
}

const DOUBLE: &str = "/peers/b/math/portals/double";

crate::on_both_runtimes!(
    a_keyed_counter_on_b_answers_a_workflow_on_a,
    on_replies_gathers_several_remote_asks,
    a_request_b_cannot_decode_is_of_the_wrong_type_and_b_goes_on,
    a_reply_a_cannot_decode_is_undecodable,
    a_failing_replier_on_b_answers_replier_failed,
    without_a_gateway_a_remote_ask_is_unknown_portal,
    a_gateway_that_never_answers_times_out_once,
    asks_from_another_process_are_answered_once_per_id,
    asks_taken_together_reach_the_replier_as_one_atom,
    an_ask_from_another_process_waits_for_its_replier_without_a_deadline_here,
    envelopes_cross_to_b_and_back,
    an_app_under_peers_is_refused,
);
