//! The libp2p shell: one task owns the swarm and drives the outbox and inbox state machines
//! with what arrives from peers, from the runtime (asks to peers' portals, replies of this
//! node's repliers) and from the admin API (peer changes, status).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::upgrade::Version;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, connection_limits, identity::Keypair, ping};
use pods_sdk::{AskError, AskId, Gateway, InboundAsk, OutboundAsk, Path};
use tokio::sync::{mpsc, oneshot, watch};

use super::egress::Egress;
use super::inbox::{Done, Inbox};
use super::kept::KeptBounds;
use super::outbox::{self, Outbox, RemoteAsk};
use super::pulls::Pulls;
use super::requests::PeerRequests;
use super::wire::{
    self, Codec, ErrorCode, Frame, PROTOCOL, Request, RequestBody, Response, VERSION, WireError,
};
use crate::audit::AuditLog;
use crate::config::{Settings, read};
use crate::error::NodeError;
use crate::node::Node;
use crate::privacy::Privacy;
use crate::store::{KeptReplies, StreamReader};

/// How often peers that are not connected are dialed again.
const REDIAL_EVERY: Duration = Duration::from_secs(2);

/// What the rest of the node tells the network task.
pub enum Command {
    /// Asks of this node's workflows to peers' portals.
    Asks(Vec<OutboundAsk>),
    /// This node's replier answered an ask a peer sent.
    Replied {
        /// The ask (its local id).
        id: AskId,
        /// The reply's CBOR, or why there is none.
        outcome: Result<Vec<u8>, AskError>,
    },
    /// `pods.toml`'s peers changed: connect to new ones, cut removed ones off.
    PeersChanged,
    /// An erasure started or finished here: take the pending erasure requests again.
    ErasuresChanged,
    /// A rectification was queued for peers here: take the pending rectification requests
    /// again.
    RectificationsChanged,
    /// A peer's erasure or rectification request `key` was carried out here: its answer.
    Answered {
        /// The request (its key in the shell).
        key: u64,
        /// The acknowledgement, or why there is none.
        response: Response,
    },
    /// Report the network's state.
    Status(oneshot::Sender<NetStatus>),
}

/// The network's state, for `pods status`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NetStatus {
    /// This node's PeerId.
    pub peer_id: String,
    /// Where it listens.
    pub listen: Vec<String>,
    /// PeerIds connected now.
    pub connected: Vec<String>,
    /// Remote asks waiting for their replies.
    pub asks_out: usize,
    /// Streams mirrored from peers.
    pub imports: Vec<crate::admin::api::ImportInfo>,
}

/// Hands the runtime's asks to peers' portals to the network task.
pub struct NetGateway(pub mpsc::UnboundedSender<Command>);

impl Gateway for NetGateway {
    fn send(&self, asks: Vec<OutboundAsk>) {
        // The runtime bounds the asks in flight (its pending-asks limit), so this queue is
        // bounded by it too.
        if self.0.send(Command::Asks(asks)).is_err() {
            tracing::debug!("network stopped: asks to peers dropped (they time out)");
        }
    }
}

/// What an outbound request carried.
pub(super) enum Sent {
    /// A batch of asks.
    Asks(u64),
    /// A pull of mirror `0`.
    Pull(usize),
    /// An erasure request (its id in the erasures state machine).
    Erase(u64),
    /// A rectification request (its id in the rectifications state machine) and the
    /// corrections it carried.
    Rectify(u64, String),
}

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) rr: request_response::Behaviour<Codec>,
    ping: ping::Behaviour,
    limits: connection_limits::Behaviour,
}

/// Most commands the network task takes in one turn of its loop.
const COMMANDS_PER_TURN: usize = 4096;

/// The network task's state.
pub struct Shell {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) settings: Arc<RwLock<Settings>>,
    pub(super) node: Arc<Node>,
    pub(super) kept: KeptReplies,
    /// Which asks from peers may have a kept reply (the others are not looked up).
    pub(super) kept_bounds: KeptBounds,
    pub(super) outbox: Outbox,
    pub(super) inbox: Inbox<PeerId>,
    pub(super) channels: HashMap<u64, ResponseChannel<Frame>>,
    pub(super) batches: HashMap<OutboundRequestId, Sent>,
    /// Streams mirrored from peers.
    pub(super) pulls: Pulls,
    /// Logs of exported streams.
    pub(super) streams: StreamReader,
    /// The paths of the exported streams.
    pub(super) exported: Vec<String>,
    /// Where each reader of an exported stream acknowledged last, in this run.
    pub(super) acked: HashMap<u64, u64>,
    /// Known peers: id → name, and name → id.
    pub(super) known: HashMap<PeerId, String>,
    pub(super) by_name: HashMap<String, (PeerId, Multiaddr)>,
    pub(super) tx: mpsc::UnboundedSender<Command>,
    /// The node's privacy side: lineage, erasures, the gate's rules for exports.
    pub(super) privacy: Privacy,
    /// The audit log (which also signs acknowledgements).
    pub(super) audit: AuditLog,
    /// The erasure requests this node owes its peers.
    pub(super) erasures: PeerRequests,
    /// The rectification requests this node owes its peers.
    pub(super) rectifications: PeerRequests,
    /// Peers' erasure requests being carried out, by key.
    pub(super) subject_channels: HashMap<u64, ResponseChannel<Frame>>,
    /// Peers' rectification requests being carried out: key → (peer's name, subject).
    pub(super) rectifying: HashMap<u64, (String, String)>,
    pub(super) next_subject_request: u64,
    /// What each personal inbound ask's reply may carry out: the asking peer's name, the
    /// portal and the ask's envelope.
    pub(super) egress: HashMap<AskId, Egress, foldhash::fast::RandomState>,
}

impl Shell {
    /// Builds the swarm and starts listening on the configured addresses; `exported` are the
    /// streams logged for peers (their log horizon is kept here).
    pub fn new(
        key: Keypair,
        settings: Arc<RwLock<Settings>>,
        node: Arc<Node>,
        exported: Vec<String>,
        tx: mpsc::UnboundedSender<Command>,
        privacy: Privacy,
        audit: AuditLog,
    ) -> Result<Shell, NodeError> {
        let s = read(&settings);
        let limits = s.limits.clone();
        let net = |e: String| NodeError::Network(e);
        let codec = Codec {
            max: limits.max_message_bytes,
        };
        let rr_config = request_response::Config::default()
            .with_request_timeout(Duration::from_secs(10))
            .with_max_concurrent_streams(limits.max_streams_per_connection);
        let builder = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default().nodelay(true),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .map_err(|e| net(e.to_string()))?;
        // QUIC beside TCP (listen on `/ip4/127.0.0.1/udp/0/quic-v1` to use it).
        #[cfg(feature = "quic")]
        let builder = builder.with_quic();
        let mut swarm = builder
            .with_behaviour(|_| Behaviour {
                rr: request_response::Behaviour::with_codec(
                    codec,
                    [(PROTOCOL, ProtocolSupport::Full)],
                    rr_config,
                ),
                ping: ping::Behaviour::default(),
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established_per_peer(Some(4))
                        .with_max_pending_incoming(Some(64)),
                ),
            })
            .map_err(|e| net(e.to_string()))?
            .with_swarm_config(|c| {
                // A request goes with its protocol's name, not a round trip after it: every
                // stream carries one protocol, which the peer supports or refuses.
                c.with_idle_connection_timeout(Duration::from_secs(3600))
                    .with_substream_upgrade_protocol_override(Version::V1Lazy)
            })
            .build();
        for a in &s.listen {
            let addr = Multiaddr::from_str(a).map_err(|e| net(format!("{a}: {e}")))?;
            swarm
                .listen_on(addr)
                .map_err(|e| net(format!("cannot listen on {a}: {e}")))?;
        }
        let kept = KeptReplies::open(node.dir())?;
        let inbox = Inbox::new(limits.max_requests_per_peer);
        let streams = StreamReader::open(node.dir())?;
        let imports = s
            .imports
            .iter()
            .filter_map(|i| {
                let (peer, path) = split_remote(&Path::parse(&i.from).ok()?)?;
                Some((peer, path, i.into.clone()))
            })
            .collect();
        let pulls = Pulls::new(imports, Instant::now());
        drop(s);
        let mut shell = Shell {
            swarm,
            settings,
            node,
            kept,
            kept_bounds: KeptBounds::default(),
            outbox: Outbox::default(),
            inbox,
            channels: HashMap::new(),
            batches: HashMap::new(),
            pulls,
            streams,
            exported,
            acked: HashMap::new(),
            known: HashMap::new(),
            by_name: HashMap::new(),
            tx,
            privacy,
            audit,
            erasures: PeerRequests::default(),
            rectifications: PeerRequests::default(),
            subject_channels: HashMap::new(),
            rectifying: HashMap::new(),
            next_subject_request: 0,
            egress: HashMap::default(),
        };
        shell.peers_changed();
        shell.erasures_changed();
        shell.rectifications_changed();
        Ok(shell)
    }

    /// Waits until the swarm listens on every configured address; returns them.
    pub async fn listening(&mut self) -> Result<Vec<Multiaddr>, NodeError> {
        let want = read(&self.settings).listen.len();
        let mut addrs = Vec::new();
        while addrs.len() < want {
            match self.swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => addrs.push(address),
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(NodeError::Network(format!("listener: {error}")));
                }
                SwarmEvent::ListenerClosed {
                    reason: Err(e),
                    addresses,
                    ..
                } => {
                    return Err(NodeError::Network(format!(
                        "cannot listen on {addresses:?}: {e}"
                    )));
                }
                other => self.on_swarm(other),
            }
        }
        Ok(addrs)
    }

    /// Runs until `stop` turns true.
    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut redial = tokio::time::interval(REDIAL_EVERY);
        loop {
            let wake = [
                self.outbox.next_wakeup(),
                self.pulls.next_wakeup(),
                self.erasures.next_wakeup(),
                self.rectifications.next_wakeup(),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std);
            let retry = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => break,
                Some(c) = commands.recv() => {
                    self.on_command(c);
                    // What else queued meanwhile (a replier's step answers a request's asks
                    // one callback each) is taken in this turn, up to a bound that keeps the
                    // swarm polled.
                    for _ in 0..COMMANDS_PER_TURN {
                        match commands.try_recv() {
                            Ok(c) => self.on_command(c),
                            Err(_) => break,
                        }
                    }
                }
                event = self.swarm.select_next_some() => self.on_swarm(event),
                () = retry => {
                    let actions = self.outbox.poll(Instant::now());
                    self.outbox_actions(actions);
                    self.pull_due();
                    self.erasures_due();
                    self.rectifications_due();
                }
                _ = redial.tick() => {
                    self.redial();
                    self.trim_exports();
                    self.erasures_changed();
                    self.rectifications_changed();
                }
            }
        }
        tracing::info!(asks_out = self.outbox.len(), "network stopped");
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Asks(asks) => self.asks_out(asks),
            Command::Replied { id, outcome } => {
                let outcome = self.reply_out(id, outcome.map_err(|e| to_wire(&e)));
                for done in self.inbox.answered(id, outcome) {
                    self.respond(done);
                }
            }
            Command::PeersChanged => self.peers_changed(),
            Command::ErasuresChanged => self.erasures_changed(),
            Command::RectificationsChanged => self.rectifications_changed(),
            Command::Answered { key, response } => self.subject_answered(key, response),
            Command::Status(reply) => {
                let status = NetStatus {
                    peer_id: self.swarm.local_peer_id().to_string(),
                    listen: self.swarm.listeners().map(ToString::to_string).collect(),
                    connected: self
                        .swarm
                        .connected_peers()
                        .map(ToString::to_string)
                        .collect(),
                    asks_out: self.outbox.len(),
                    imports: self
                        .pulls
                        .mirrors()
                        .iter()
                        .map(|m| crate::admin::api::ImportInfo {
                            from: format!("/peers/{}{}", m.peer, m.stream),
                            into: m.into.clone(),
                            next: self.node.system().feeder_next(&m.into).unwrap_or(0),
                            stopped: m.stopped.clone(),
                        })
                        .collect(),
                };
                let _ = reply.send(status);
            }
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        use request_response::{Event, Message};
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Rr(e)) => match e {
                Event::Message {
                    peer,
                    message:
                        Message::Request {
                            request, channel, ..
                        },
                    ..
                } => {
                    self.request_in(peer, request, channel);
                }
                Event::Message {
                    message:
                        Message::Response {
                            request_id,
                            response,
                        },
                    ..
                } => {
                    let Some(sent) = self.batches.remove(&request_id) else {
                        return;
                    };
                    let response = match response {
                        Frame::Bytes(b) => {
                            wire::decode_response(&b).unwrap_or_else(Response::Refused)
                        }
                        Frame::TooLarge(n) => Response::Refused(WireError::new(
                            ErrorCode::TooLarge,
                            format!("a response of {n} bytes, above this node's limit"),
                        )),
                    };
                    match sent {
                        Sent::Asks(batch) => {
                            let actions = self.outbox.on_response(batch, response, Instant::now());
                            self.outbox_actions(actions);
                        }
                        Sent::Pull(mirror) => self.pulled(mirror, response),
                        Sent::Erase(id) => self.erasure_response(id, response),
                        Sent::Rectify(id, sent) => self.rectification_response(id, &sent, response),
                    }
                }
                Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                } => {
                    tracing::debug!(%peer, %error, "a request to a peer failed; its asks go again");
                    match self.batches.remove(&request_id) {
                        Some(Sent::Asks(batch)) => self.outbox.on_failure(batch, Instant::now()),
                        Some(Sent::Pull(mirror)) => {
                            let e = WireError::new(ErrorCode::Unavailable, error.to_string());
                            self.pulls.failed(mirror, &e, Instant::now());
                        }
                        Some(Sent::Erase(id)) => self.erasures.failed(id, Instant::now()),
                        Some(Sent::Rectify(id, _)) => {
                            self.rectifications.failed(id, Instant::now());
                        }
                        None => {}
                    }
                }
                Event::InboundFailure { peer, error, .. } => {
                    tracing::debug!(%peer, %error, "a request from a peer failed");
                }
                Event::ResponseSent { .. } => {}
            },
            SwarmEvent::ConnectionEstablished { peer_id, .. } => match self.known.get(&peer_id) {
                None => {
                    tracing::warn!(peer = %peer_id, "closed a connection from a peer not in pods.toml");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
                // What it is owed goes now, not after the backoff its absence built up.
                Some(name) => {
                    let now = Instant::now();
                    self.erasures.connected(name, now);
                    self.rectifications.connected(name, now);
                }
            },
            _ => {}
        }
    }

    /// A request from `peer`: refused whole, or its asks checked one by one and handed to the
    /// runtime (or answered from the kept replies).
    fn request_in(&mut self, peer: PeerId, frame: Frame, channel: ResponseChannel<Frame>) {
        let refuse = |code, message: String| Response::Refused(WireError::new(code, message));
        let Some(name) = self.known.get(&peer).cloned() else {
            tracing::warn!(%peer, "refused a request from a peer not in pods.toml");
            let r = refuse(
                ErrorCode::NotAllowed,
                format!("{peer} is not a peer of this node"),
            );
            return self.send_response(channel, &r);
        };
        let bytes = match frame {
            Frame::Bytes(b) => b,
            Frame::TooLarge(n) => {
                tracing::warn!(%peer, bytes = n, "refused an oversized request");
                let max = read(&self.settings).limits.max_message_bytes;
                let r = refuse(
                    ErrorCode::TooLarge,
                    format!("{n} bytes; this node accepts at most {max}"),
                );
                return self.send_response(channel, &r);
            }
        };
        let request = match wire::decode_request(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "refused a request");
                return self.send_response(channel, &Response::Refused(e));
            }
        };
        let asks = match request.body {
            RequestBody::Asks(asks) => asks,
            RequestBody::Pull {
                stream,
                from,
                max_atoms,
            } => {
                let response = self.pull_in(&peer, &name, &stream, from, max_atoms);
                return self.send_response(channel, &response);
            }
            RequestBody::Erase { subject } => return self.erase_in(peer, &name, subject, channel),
            RequestBody::Rectify { subject, changes } => {
                return self.rectify_in(peer, &name, subject, &changes, channel);
            }
        };
        let id = match self.inbox.begin(&peer, asks.len()) {
            Ok(id) => id,
            Err(e) => return self.send_response(channel, &Response::Refused(e)),
        };
        self.channels.insert(id, channel);
        type Fast = foldhash::fast::RandomState;
        // The replies kept for each (replier, origin, scope) asked, read once per request.
        type Kept = HashMap<AskId, Vec<u8>>;
        let mut kept: HashMap<(u64, u64, u64), Kept, Fast> = HashMap::default();
        // Worked out once per request: the peer as text, each origin's local id, each
        // portal's check and its replier.
        let peer_text = peer.to_string();
        let mut origins: HashMap<u64, u64, Fast> = HashMap::default();
        let mut portals: HashMap<String, (Result<Path, WireError>, Option<u64>), Fast> =
            HashMap::default();
        let mut inbound = Vec::with_capacity(asks.len());
        // The asks handed to repliers, which may keep replies from now on: the bounds are
        // raised after the request's asks were checked, so that asks of one atom sent together
        // (all new, or all asked again) are checked alike.
        let mut handed = Vec::with_capacity(asks.len());
        for (i, ask) in asks.into_iter().enumerate() {
            let origin = *origins
                .entry(ask.id.origin)
                .or_insert_with(|| local_origin(&peer, ask.id.origin));
            let local = AskId { origin, ..ask.id };
            let (checked, replier) = match portals.get(&ask.portal) {
                Some(c) => c.clone(),
                None => {
                    let checked = self.allowed(&name, &peer_text, &ask.portal);
                    let replier = checked
                        .as_ref()
                        .ok()
                        .and_then(|p| self.node.system().replier_of(p))
                        .map(|r| r.stable_id());
                    portals.insert(ask.portal.clone(), (checked.clone(), replier));
                    (checked, replier)
                }
            };
            let portal = match checked {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(%peer, portal = %ask.portal, error = %e, "refused an ask");
                    if let Some(d) = self.inbox.settle(id, i, Err(e)) {
                        self.respond(d);
                    }
                    continue;
                }
            };
            if !self.inbox.wait(id, i, local) {
                continue; // the same ask is open already: this one waits for its reply
            }
            // A personal reply passes the export's rule before it leaves (`egress.rs`).
            if let Some(envelope) = &ask.envelope {
                let egress = Egress {
                    peer: name.clone(),
                    portal: ask.portal.clone(),
                    envelope: envelope.clone(),
                };
                self.egress.insert(local, egress);
            }
            // A reply the replier committed before (the asker lost it, or either node
            // restarted), looked up unless the ask's scope is above every scope kept.
            if let Some(replier) = replier
                && self.may_have_kept(replier, local)
            {
                let key = (replier, local.origin, local.scope);
                let found = match kept.entry(key) {
                    Entry::Occupied(rows) => Ok(rows.get().get(&local).cloned()),
                    Entry::Vacant(entry) => self.kept.replies(key.0, key.1, key.2).map(|rows| {
                        entry
                            .insert(rows.into_iter().collect())
                            .get(&local)
                            .cloned()
                    }),
                };
                let outcome = match found {
                    Ok(None) => None,
                    Ok(Some(reply)) => Some(Ok(reply)),
                    // Not applied again on a guess: the asker sends it again later.
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read kept replies");
                        let message = "this node cannot read its kept replies now; ask again";
                        Some(Err(WireError::new(ErrorCode::Unavailable, message)))
                    }
                };
                if let Some(outcome) = outcome {
                    let reply = self.reply_out(local, outcome);
                    for d in self.inbox.answered(local, reply) {
                        self.respond(d);
                    }
                    continue;
                }
            }
            if let Some(replier) = replier {
                handed.push((replier, local.origin, local.scope));
            }
            let tx = self.tx.clone();
            let reply = Box::new(move |outcome: Result<Vec<u8>, AskError>| {
                let _ = tx.send(Command::Replied { id: local, outcome });
            });
            inbound.push(InboundAsk {
                portal,
                id: local,
                request: ask.request,
                envelope: ask.envelope,
                reply,
            });
        }
        for (replier, origin, scope) in handed {
            self.kept_bounds.handed(replier, origin, scope);
        }
        // All of the request's asks enter the runtime at once: the replier answers them in one
        // step, and the runtime is locked once.
        let ids: Vec<AskId> = inbound.iter().map(|a| a.id).collect();
        for (i, e) in self.node.system().ask_inbound_all(inbound) {
            let code = match e {
                pods_sdk::Error::Stopped => ErrorCode::Unavailable,
                _ => ErrorCode::UnknownPath,
            };
            let e = self.reply_out(ids[i], Err(WireError::new(code, e.to_string())));
            for d in self.inbox.answered(ids[i], e) {
                self.respond(d);
            }
        }
        if let Some(d) = self.inbox.finish(id) {
            self.respond(d);
        }
    }

    /// Whether the ask `id` to `replier` may have a kept reply (see `kept.rs`); every ask may,
    /// in a store with per-reply rows of an older schema.
    fn may_have_kept(&mut self, replier: u64, id: AskId) -> bool {
        if self.kept.has_legacy_rows() {
            return true;
        }
        let kept = &self.kept;
        self.kept_bounds.may_have(replier, id.origin, id.scope, || {
            kept.highest_scope(replier, id.origin).inspect_err(|e| {
                tracing::warn!(error = %e, "cannot read the highest kept scope");
            })
        })
    }

    /// The portal at `path` if it is exported to the peer called `name` with id `peer`.
    pub(super) fn allowed(&self, name: &str, peer: &str, path: &str) -> Result<Path, WireError> {
        let settings = read(&self.settings);
        if settings.export(path).is_none() {
            return Err(WireError::new(
                ErrorCode::UnknownPath,
                format!("{path} is not exported by this node"),
            ));
        }
        if !settings.allows(path, name, peer) {
            return Err(WireError::new(
                ErrorCode::NotAllowed,
                format!("{path} is not exported to you"),
            ));
        }
        Path::parse(path).map_err(|e| WireError::new(ErrorCode::UnknownPath, e.to_string()))
    }

    fn respond(&mut self, done: Done) {
        if let Some(channel) = self.channels.remove(&done.request) {
            self.send_response(channel, &done.response);
        }
    }

    pub(super) fn send_response(&mut self, channel: ResponseChannel<Frame>, response: &Response) {
        let frame = Frame::Bytes(wire::encode(response));
        if self
            .swarm
            .behaviour_mut()
            .rr
            .send_response(channel, frame)
            .is_err()
        {
            tracing::debug!("a response found its connection closed");
        }
    }

    fn asks_out(&mut self, asks: Vec<OutboundAsk>) {
        let now = Instant::now();
        let mut remote = Vec::with_capacity(asks.len());
        // An atom's asks mostly go to one portal: its path is split once.
        let mut last: Option<(Path, Option<(String, String)>)> = None;
        for ask in asks {
            let split = match &last {
                Some((path, split)) if *path == ask.portal => split.clone(),
                _ => {
                    let split = split_remote(&ask.portal);
                    last = Some((ask.portal.clone(), split.clone()));
                    split
                }
            };
            match split {
                Some((peer, portal)) if self.by_name.contains_key(&peer) => {
                    remote.push(RemoteAsk {
                        id: ask.id,
                        peer,
                        portal,
                        request: ask.request,
                        envelope: ask.envelope,
                        deadline: now + ask.deadline,
                    })
                }
                _ => {
                    let message = format!(
                        "{} names no known peer: add it with `pods peer add`",
                        ask.portal
                    );
                    let e = WireError::new(ErrorCode::UnknownPath, message);
                    self.node
                        .system()
                        .answer_outbound(ask.id, Err(from_wire(&ask.portal.to_string(), e)));
                }
            }
        }
        let actions = self.outbox.submit(remote, now);
        self.outbox_actions(actions);
    }

    fn outbox_actions(&mut self, actions: Vec<outbox::Action>) {
        let mut answers = Vec::new();
        for a in actions {
            match a {
                outbox::Action::Send { batch, peer, asks } => {
                    let Some((peer_id, _)) = self.by_name.get(&peer) else {
                        self.outbox.on_failure(batch, Instant::now());
                        continue;
                    };
                    let request = Request {
                        version: VERSION,
                        body: RequestBody::Asks(asks),
                    };
                    let frame = Frame::Bytes(wire::encode(&request));
                    let rid = self.swarm.behaviour_mut().rr.send_request(peer_id, frame);
                    self.batches.insert(rid, Sent::Asks(batch));
                }
                outbox::Action::Answer { id, portal, result } => {
                    answers.push((id, result.map_err(|e| from_wire(&portal, e))));
                }
            }
        }
        if !answers.is_empty() {
            // Together, as a local portal's replies to one atom's asks arrive.
            self.node.system().answer_outbound_all(answers);
        }
    }

    fn peers_changed(&mut self) {
        let settings = read(&self.settings).clone();
        let mut known = HashMap::new();
        let mut by_name = HashMap::new();
        for p in &settings.peers {
            if let (Ok(id), Ok(addr)) = (
                PeerId::from_str(&p.peer_id),
                Multiaddr::from_str(&p.address),
            ) {
                known.insert(id, p.name.clone());
                by_name.insert(p.name.clone(), (id, addr));
            }
        }
        for gone in self
            .known
            .keys()
            .filter(|id| !known.contains_key(id))
            .copied()
            .collect::<Vec<_>>()
        {
            tracing::info!(peer = %gone, "peer removed: its connections are closed");
            let _ = self.swarm.disconnect_peer_id(gone);
        }
        self.known = known;
        self.by_name = by_name;
        self.redial();
    }

    fn redial(&mut self) {
        for (id, addr) in self.by_name.values() {
            if !self.swarm.is_connected(id) {
                use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
                self.swarm.add_peer_address(*id, addr.clone());
                // One dial at a time per peer, none while connected.
                let opts = DialOpts::peer_id(*id)
                    .addresses(vec![addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                let _ = self.swarm.dial(opts);
            }
        }
    }
}

/// `/peers/<name>/<rest>` → (`name`, `/<rest>`).
pub(super) fn split_remote(path: &Path) -> Option<(String, String)> {
    let rest = path.as_str().strip_prefix("/peers/")?;
    let (name, inner) = rest.split_once('/')?;
    Some((name.to_owned(), format!("/{inner}")))
}

/// The id under which this node's repliers see an ask from `peer`: the asker's origin mixed
/// with the peer's identity, so that two peers' workflows of the same path never collide.
pub(super) fn local_origin(peer: &PeerId, origin: u64) -> u64 {
    let mut bytes = peer.to_bytes();
    bytes.extend_from_slice(&origin.to_be_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

fn to_wire(e: &AskError) -> WireError {
    let code = match e {
        AskError::UnknownPortal { .. } => ErrorCode::UnknownPath,
        AskError::ReplierFailed { .. } => ErrorCode::ReplierFailed,
        AskError::Denied { .. } => ErrorCode::NotAllowed,
        AskError::WrongRequestType { .. } => ErrorCode::WrongRequestType,
        _ => ErrorCode::Unavailable,
    };
    WireError::new(code, e.to_string())
}

fn from_wire(portal: &str, e: WireError) -> AskError {
    let portal = portal.to_owned();
    match e.code {
        ErrorCode::UnknownPath => AskError::UnknownPortal { portal },
        ErrorCode::ReplierFailed => AskError::ReplierFailed { portal },
        ErrorCode::NotAllowed => AskError::Denied { portal },
        ErrorCode::WrongRequestType => AskError::WrongRequestType { portal },
        _ => AskError::Remote {
            portal,
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_path_splits_into_peer_and_path_there() {
        let p = Path::parse("/peers/bob/shop/portals/stock").unwrap();
        assert_eq!(
            split_remote(&p),
            Some(("bob".into(), "/shop/portals/stock".into()))
        );
        assert_eq!(
            split_remote(&Path::parse("/shop/portals/stock").unwrap()),
            None
        );
    }

    #[test]
    fn two_peers_asks_of_one_origin_get_different_local_ids() {
        let a = Keypair::generate_ed25519().public().to_peer_id();
        let b = Keypair::generate_ed25519().public().to_peer_id();
        assert_ne!(local_origin(&a, 1), local_origin(&b, 1));
        assert_eq!(local_origin(&a, 1), local_origin(&a, 1));
    }
}
