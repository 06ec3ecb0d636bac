//! Two `pods node start` daemons end to end: init, peers added through the CLI, connected in
//! `pods status`, remote asks through the stock apps, `pods peer remove` cutting the other
//! off, and a clean exit on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pods_node::admin::api::Status;

use crate::pods;

/// A daemon child, killed if the test fails before it stops it.
pub(crate) struct Daemon(Child);

impl Daemon {
    pub(crate) fn start(dir: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_pods"))
            .args(["node", "start", "--data-dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pods node start");
        let d = Daemon(child);
        wait_for(Duration::from_secs(30), || dir.join("admin.json").exists());
        d
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "the daemon did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn wait_for(limit: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < end, "condition not met within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = pods(args, Duration::from_secs(30));
    assert!(ok, "pods {args:?} failed: {stderr}");
    stdout
}

pub(crate) fn status(dir: &str) -> Status {
    serde_json::from_str(&ok(&["status", "--json", "--data-dir", dir])).expect("status JSON")
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `pods init` of a data dir `dir` for node `name`; returns its PeerId.
pub(crate) fn init(dir: &str, name: &str) -> String {
    ok(&["init", "--data-dir", dir, "--name", name])
        .trim()
        .to_owned()
}

#[test]
fn two_daemons_connect_answer_each_other_and_a_removed_peer_is_cut_off() {
    let _dog = crate::watchdog("two_daemons", 120);
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (a_id, b_id) = (init(a_s, "a"), init(b_s, "b"));
    let (ok_again, _, err) = pods(
        &["init", "--data-dir", a_s, "--name", "a"],
        Duration::from_secs(30),
    );
    assert!(
        !ok_again && err.contains("exists already"),
        "an identity is never overwritten: {err}"
    );

    // b hosts the inventory and exports it to a (by PeerId); a orders from b.
    let b_addr = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let mut s = pods_node::Settings::load(&b).unwrap();
    s.listen = vec![b_addr.clone()];
    s.apps = vec!["inventory".into()];
    s.exports = vec![pods_node::Export {
        path: "/inventory/portals/reserve".into(),
        allow: vec![a_id.clone()],
    }];
    s.save(&b).unwrap();
    let mut s = pods_node::Settings::load(&a).unwrap();
    s.apps = vec!["orders:b".into()];
    s.peers = vec![pods_node::Peer {
        name: "b".into(),
        peer_id: b_id.clone(),
        address: b_addr.clone(),
    }];
    s.save(&a).unwrap();

    let node_b = Daemon::start(&b);
    let a_addr = {
        // a's orders go out as soon as it starts; b must know a by then to answer.
        let port = free_port();
        let mut s = pods_node::Settings::load(&a).unwrap();
        s.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
        s.save(&a).unwrap();
        format!("/ip4/127.0.0.1/tcp/{port}")
    };
    ok(&["peer", "add", "a", &a_id, &a_addr, "--data-dir", b_s]);
    let node_a = Daemon::start(&a);

    wait_for(Duration::from_secs(30), || {
        status(a_s)
            .peers
            .iter()
            .any(|p| p.name == "b" && p.connected)
    });
    let listed = ok(&["peer", "list", "--data-dir", b_s]);
    assert!(
        listed.starts_with(&format!("a\t{a_id}\t{a_addr}\t")),
        "{listed}"
    );
    // The four order atoms were reserved at b and committed at a.
    wait_for(Duration::from_secs(30), || {
        let st = status(a_s);
        st.apps[0].workflows["/orders/workflows/checkout"].atoms == 4
    });
    let text = ok(&["status", "--data-dir", a_s]);
    assert!(text.contains(&format!("node a ({a_id})")), "{text}");
    assert!(
        text.contains(&format!("b {b_id} {b_addr} connected")),
        "{text}"
    );
    assert!(
        text.contains("/orders/workflows/checkout: 4 atoms committed"),
        "{text}"
    );
    let at_b = status(b_s);
    let stock = &at_b.apps[0].workflows["/inventory/workflows/stock"];
    assert!(
        stock.steps > 0 && stock.last_commit_ms.is_some(),
        "b answered: {stock:?}"
    );

    // b removes a: the connection closes and a cannot connect again.
    ok(&["peer", "remove", "a", "--data-dir", b_s]);
    assert!(status(b_s).peers.is_empty());
    assert!(
        !std::fs::read_to_string(b.join("pods.toml"))
            .unwrap()
            .contains(&a_id),
        "gone from the file and its allow-list"
    );
    wait_for(Duration::from_secs(10), || {
        !status(a_s)
            .peers
            .iter()
            .any(|p| p.name == "b" && p.connected)
    });
    std::thread::sleep(Duration::from_millis(2500)); // a redials every 2 s
    assert!(!status(b_s).peers.iter().any(|p| p.connected));

    // The admin API wants the token.
    let admin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("admin.json")).unwrap()).unwrap();
    let address = admin["address"].as_str().unwrap();
    let wrong = pods_node::admin::client::AdminClient::new(address, "0123");
    let err = wrong.get::<Status>("/status").expect_err("refused");
    assert!(err.to_string().contains("403: wrong token"), "{err}");
    let (code, body) = raw_get(address, "/status", None);
    assert_eq!(code, 401, "{body}");
    let (code, body) = raw_get(address, "/status", Some("nope"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("wrong token"), "{body}");

    assert!(node_a.terminate().success(), "a exits 0 on SIGTERM");
    assert!(node_b.terminate().success(), "b exits 0 on SIGTERM");
    assert!(!b.join("admin.json").exists());
}

/// `GET path` with an optional bearer token; (status code, body).
fn raw_get(address: &str, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, out)
}
