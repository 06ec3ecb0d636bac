use super::*;

fn peer(name: &str) -> Peer {
    Peer {
        name: name.to_owned(),
        peer_id: libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
            .to_string(),
        address: "/ip4/127.0.0.1/tcp/4001".to_owned(),
    }
}

#[test]
fn new_settings_are_valid_and_round_trip_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::new("acme");
    s.peers.push(peer("bob"));
    s.exports.push(Export {
        path: "/shop/portals/stock".into(),
        allow: vec!["bob".into()],
    });
    assert_eq!(s.problems(), vec![]);
    s.save(dir.path()).unwrap();
    assert_eq!(Settings::load(dir.path()).unwrap(), s);
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let mut s = Settings::new("a b");
    s.admin = "0.0.0.0:80".into();
    s.listen = vec!["tcp:1".into()];
    s.peers.push(peer("bob"));
    s.peers.push(peer("bob"));
    s.peers[1].peer_id = "nope".into();
    s.exports.push(Export {
        path: "/shop/portals/stock".into(),
        allow: vec!["carol".into(), s.peers[0].peer_id.clone()],
    });
    let places: Vec<String> = s.problems().into_iter().map(|p| p.place).collect();
    assert_eq!(
        places,
        vec![
            "name",
            "listen[0]",
            "admin",
            "peer \"bob\".name",
            "peer \"bob\".peer_id",
            "export \"/shop/portals/stock\".allow",
        ]
    );
}

#[test]
fn a_bad_file_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(CONFIG_FILE);
    std::fs::write(&file, "name = \"acme\"\nlisten = 3\n").unwrap();
    let err = Settings::load(dir.path()).expect_err("refused");
    assert!(err.to_string().contains("pods.toml"), "{err}");
    assert!(err.to_string().contains("listen"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "name = \"acme\"\nlisten = 3\n"
    );
    let mut bad = Settings::new("acme");
    bad.name = String::new();
    assert!(bad.save(dir.path()).is_err());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "name = \"acme\"\nlisten = 3\n",
        "an invalid save writes nothing"
    );
}

#[test]
fn removing_a_peer_removes_it_from_every_allow_list() {
    let mut s = Settings::new("acme");
    s.peers.push(peer("bob"));
    let id = s.peers[0].peer_id.clone();
    s.exports.push(Export {
        path: "/shop/portals/stock".into(),
        allow: vec!["bob".into(), id.clone()],
    });
    assert!(s.allows("/shop/portals/stock", "bob", &id));
    assert!(s.remove_peer("bob"));
    assert!(!s.allows("/shop/portals/stock", "bob", &id));
    assert!(!s.remove_peer("bob"));
    assert_eq!(s.exports[0].allow, Vec::<String>::new());
    assert_eq!(s.problems(), vec![]);
}

#[test]
fn a_peer_named_after_a_peer_id_and_a_bad_import_are_refused() {
    let mut s = Settings::new("acme");
    let alice = peer("alice");
    let mut mallory = peer("m");
    mallory.name = alice.peer_id.clone();
    s.peers.push(mallory);
    s.imports.push(Import {
        from: "/peers/nobody/x/workflows/w/stream".into(),
        into: "/peers/x".into(),
    });
    let places: Vec<String> = s.problems().into_iter().map(|p| p.place).collect();
    assert_eq!(
        places,
        vec![
            format!("peer {:?}.name", alice.peer_id),
            "import \"/peers/nobody/x/workflows/w/stream\".from".to_owned(),
            "import \"/peers/nobody/x/workflows/w/stream\".into".to_owned(),
        ]
    );
}

#[test]
fn removing_a_peer_removes_the_imports_from_it() {
    let mut s = Settings::new("acme");
    s.peers.push(peer("bob"));
    s.imports.push(Import {
        from: "/peers/bob/x/workflows/w/stream".into(),
        into: "/m/generators/g".into(),
    });
    assert_eq!(s.problems(), vec![]);
    assert!(s.remove_peer("bob"));
    assert_eq!(s.imports, vec![]);
    assert_eq!(s.problems(), vec![], "what is left is valid");
}

#[test]
fn the_store_commits_as_pods_toml_says_when_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(CONFIG_FILE);
    std::fs::write(&file, "name = \"acme\"\n").unwrap();
    assert_eq!(Settings::load(dir.path()).unwrap().store.synchronous, None);
    // A new node's file leaves it unsaid.
    Settings::new("acme").save(dir.path()).unwrap();
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(!written.contains("synchronous"), "{written}");
    std::fs::write(
        &file,
        "name = \"acme\"\n[store]\nsynchronous = \"normal\"\n",
    )
    .unwrap();
    let s = Settings::load(dir.path()).unwrap();
    assert_eq!(s.store.synchronous, Some(crate::store::Synchronous::Normal));
    // Saved and read again as it was.
    s.save(dir.path()).unwrap();
    assert_eq!(Settings::load(dir.path()).unwrap(), s);
}

#[test]
fn an_unknown_durability_or_store_setting_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(CONFIG_FILE);
    std::fs::write(&file, "name = \"acme\"\n[store]\nsynchronous = \"fast\"\n").unwrap();
    let err = Settings::load(dir.path()).expect_err("refused").to_string();
    assert!(err.contains("synchronous"), "{err}");
    assert!(err.contains("full") && err.contains("normal"), "{err}");
    std::fs::write(&file, "name = \"acme\"\n[store]\nwal = 1\n").unwrap();
    let err = Settings::load(dir.path()).expect_err("refused").to_string();
    assert!(err.contains("wal"), "{err}");
}
