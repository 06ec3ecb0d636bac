use std::sync::Arc;

use libp2p::identity::Keypair;
use pods_policy::{Category, Clock, Grant, ManualClock, Purpose, Reason, Verdict};
use pods_sdk::Envelope;

use super::*;

const POLICY: &str = r#"
[[purpose]]
name = "research"

[[workflow]]
path = "/clinic/workflows/study"
purpose = "research"
basis = "consent"

[[export]]
path = "/clinic/workflows/study/stream"
purpose = "research"
basis = "consent"
"#;

struct Node {
    _dir: tempfile::TempDir,
    privacy: Privacy,
    audit: AuditLog,
    peer: PeerId,
}

fn node(clock: &ManualClock) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let audit = AuditLog::open(dir.path(), &key).unwrap();
    let privacy = Privacy::open(dir.path(), Arc::new(clock.clone())).unwrap();
    privacy.load_policy("policy.toml", POLICY).unwrap();
    Node {
        peer: key.public().to_peer_id(),
        _dir: dir,
        privacy,
        audit,
    }
}

fn grant(subject: &str) -> Grant {
    Grant {
        subject: subject.into(),
        purposes: vec![Purpose::new("research").unwrap()],
        categories: vec![Category::new("health").unwrap()],
        expires_at: None,
        source: "test".into(),
    }
}

#[test]
fn an_erasure_waits_for_each_peer_once_and_finishes_with_the_last() {
    let clock = ManualClock::at(1_000);
    let a = node(&clock);
    let (b, c) = (node(&clock), node(&clock));
    let stream = "/clinic/workflows/study/stream";
    a.privacy
        .record_lineage("b", stream, ["ann", "bob"])
        .unwrap();
    a.privacy.record_lineage("c", stream, ["ann"]).unwrap();
    a.privacy.record_lineage("b", stream, ["ann"]).unwrap();

    let receipt = a
        .privacy
        .erase("ann", &a.peer.to_string(), &a.audit)
        .unwrap();
    assert!(receipt.pending());
    let peers: Vec<&str> = receipt.peers.iter().map(|p| p.peer.as_str()).collect();
    assert_eq!(peers, ["b", "c"]);
    let pairs = a.privacy.pending_peer_erasures().unwrap();
    assert_eq!(
        pairs,
        [("ann".into(), "b".into()), ("ann".into(), "c".into())]
    );
    assert_eq!(a.privacy.pending_erasures().unwrap()[0].peers, ["b", "c"]);

    // b and c erase and acknowledge; a checks and records each once.
    clock.advance(5);
    let at_b = b
        .privacy
        .erase("ann", &b.peer.to_string(), &b.audit)
        .unwrap();
    let ack_b = Acknowledgement::of(&at_b, &b.audit);
    ack_b.verify(&b.peer, &receipt.subject).unwrap();
    let after_b = a
        .privacy
        .acknowledge("ann", "b", &ack_b, &a.audit)
        .unwrap()
        .unwrap();
    assert!(after_b.pending());
    assert_eq!(after_b.peers[0].acknowledged_at, Some(1_005));
    assert_ne!(after_b.signature, receipt.signature, "re-signed");
    assert_eq!(
        a.privacy.acknowledge("ann", "b", &ack_b, &a.audit).unwrap(),
        None
    );
    assert_eq!(a.privacy.pending_peer_erasures().unwrap().len(), 1);

    let at_c = c
        .privacy
        .erase("ann", &c.peer.to_string(), &c.audit)
        .unwrap();
    let ack_c = Acknowledgement::of(&at_c, &c.audit);
    let done = a
        .privacy
        .acknowledge("ann", "c", &ack_c, &a.audit)
        .unwrap()
        .unwrap();
    assert!(!done.pending());
    assert!(a.privacy.pending_peer_erasures().unwrap().is_empty());
    assert!(a.privacy.pending_erasures().unwrap().is_empty());
    assert!(a.privacy.unfinished_erasures().unwrap().is_empty());
    // Erasing again prints the receipt with the acknowledgements.
    assert_eq!(
        a.privacy
            .erase("ann", &a.peer.to_string(), &a.audit)
            .unwrap(),
        done
    );
    // Data of ann sent after her erasure does not bring her id back into policy.db.
    a.privacy.record_lineage("b", stream, ["ann"]).unwrap();
    a.privacy
        .erase("bob", &a.peer.to_string(), &a.audit)
        .unwrap();
    let pairs = a.privacy.pending_peer_erasures().unwrap();
    assert_eq!(pairs, [("bob".into(), "b".into())]);
    let key = libp2p::identity::PublicKey::try_decode_protobuf(a.peer.as_ref().digest()).unwrap();
    let sig = pods_policy::audit::from_hex(&done.signature).unwrap();
    assert!(
        key.verify(&done.signed_bytes(), &sig),
        "a's receipt verifies"
    );
}

#[test]
fn a_forged_or_misdirected_acknowledgement_is_rejected() {
    let clock = ManualClock::at(1_000);
    let (b, other) = (node(&clock), node(&clock));
    let at_b = b
        .privacy
        .erase("ann", &b.peer.to_string(), &b.audit)
        .unwrap();
    let ack = Acknowledgement::of(&at_b, &b.audit);
    ack.verify(&b.peer, &at_b.subject).unwrap();
    assert!(
        ack.verify(&other.peer, &at_b.subject).is_err(),
        "another node"
    );
    assert!(ack.verify(&b.peer, "00").is_err(), "another subject");
    let mut forged = ack.clone();
    forged.erased.records += 1;
    assert!(
        forged.verify(&b.peer, &at_b.subject).is_err(),
        "changed after signing"
    );
    let mut resigned = Acknowledgement::of(&at_b, &other.audit);
    resigned.node = b.peer.to_string();
    assert!(
        resigned.verify(&b.peer, &at_b.subject).is_err(),
        "signed by another key"
    );
}

#[test]
fn egress_follows_the_exports_rule_and_fails_closed_without_one() {
    let clock = ManualClock::at(1_000);
    let a = node(&clock);
    let ann = Envelope::new("ann", &["health"]);
    let stream = "/clinic/workflows/study/stream";
    assert_eq!(
        a.privacy.egress(stream, Some(&ann)),
        Verdict::Deny(Reason::NoConsent)
    );
    a.privacy.grant(grant("ann")).unwrap();
    assert_eq!(a.privacy.egress(stream, Some(&ann)), Verdict::Admit);
    assert_eq!(
        a.privacy.egress("/clinic/portals/other", Some(&ann)),
        Verdict::Deny(Reason::Undeclared),
        "no rule: no personal data leaves"
    );
    assert_eq!(
        a.privacy.egress("/clinic/portals/other", None),
        Verdict::Admit
    );
}

#[test]
fn an_erased_subject_is_refused_after_a_restart_and_an_untagged_erasure_too() {
    let clock = ManualClock::at(1_000);
    let a = node(&clock);
    a.privacy.grant(grant("bob")).unwrap();
    a.privacy
        .erase("ann", &a.peer.to_string(), &a.audit)
        .unwrap();
    // An erasure stored before erasures had tags: its row has no tag.
    a.privacy
        .db()
        .unwrap()
        .execute(
            "INSERT INTO erased (digest, at) VALUES (?1, 5)",
            [pods_policy::subject_digest("cy").as_slice()],
        )
        .unwrap();
    let reopened = Privacy::open(a._dir.path(), Arc::new(clock.clone())).unwrap();
    let path = pods_sdk::Path::parse("/clinic/workflows/study").unwrap();
    let verdict = |who: &str| {
        let rules = reopened.gate();
        let r = rules.read();
        pods_policy::decide(
            r.policy(),
            r.registry(),
            r.policy().workflow(path.as_str()),
            Some(&Envelope::new(who, &["health"])),
            clock.now(),
        )
    };
    assert_eq!(verdict("ann"), Verdict::Deny(Reason::Erased));
    assert_eq!(verdict("cy"), Verdict::Deny(Reason::Erased));
    assert_eq!(verdict("bob"), Verdict::Admit);
    assert_eq!(verdict("dan"), Verdict::Deny(Reason::NoConsent));
}
