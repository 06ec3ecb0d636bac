//! The pair of systems the remote tests run: A and B of one runtime, and the gateway that
//! joins them.

use std::sync::{Arc, Mutex, Weak};

use pods_sdk::{
    App, AskError, AskId, Data, DeterministicSystem, Envelope, Error, Gateway, InboundAsk,
    OutboundAsk, Path, Subscription, ThreadedSystem,
};

use crate::{LIMIT, Rt, Sys};

/// A reply to an ask from another process: its encoding, or the error.
pub type Reply = Result<Vec<u8>, AskError>;

/// A reply from B on its way back to A.
type Answer = (AskId, Reply);

/// What A's gateway does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Carries asks to B and replies back.
    Carry,
    /// Takes asks and never answers them.
    Silent,
    /// A has no gateway.
    Absent,
}

/// One system of the pair.
pub enum Side {
    Det(Box<DeterministicSystem>),
    Thr(Arc<ThreadedSystem>),
}

impl Side {
    pub fn new(rt: Rt, seed: u64) -> Side {
        match Sys::new(rt, seed) {
            Sys::Deterministic(s) => Side::Det(s),
            Sys::Threaded(s) => Side::Thr(Arc::new(s)),
        }
    }

    pub fn launch(&mut self, app: App) -> Result<(), Error> {
        match self {
            Side::Det(s) => s.launch(app),
            Side::Thr(s) => s.launch(app),
        }
    }

    pub fn subscribe<T: Data>(&mut self, path: &str) -> Subscription<T> {
        match self {
            Side::Det(s) => s.subscribe(path),
            Side::Thr(s) => s.subscribe(path),
        }
        .expect("subscribe")
    }

    pub fn ask_inbound(
        &self,
        portal: &Path,
        id: AskId,
        request: Vec<u8>,
        envelope: Option<Envelope>,
        reply: Box<dyn FnOnce(Result<Vec<u8>, AskError>) + Send>,
    ) -> Result<(), Error> {
        match self {
            Side::Det(s) => s.ask_inbound(portal, id, request, envelope, reply),
            Side::Thr(s) => s.ask_inbound(portal, id, request, envelope, reply),
        }
    }

    pub fn ask_inbound_all(&self, asks: Vec<InboundAsk>) -> Vec<(usize, Error)> {
        match self {
            Side::Det(s) => s.ask_inbound_all(asks),
            Side::Thr(s) => s.ask_inbound_all(asks),
        }
    }

    pub fn answer_outbound(&self, id: AskId, reply: Result<Vec<u8>, AskError>) {
        match self {
            Side::Det(s) => s.answer_outbound(id, reply),
            Side::Thr(s) => s.answer_outbound(id, reply),
        }
    }

    /// Runs until quiescent; the steps taken.
    pub fn run(&mut self) -> u64 {
        match self {
            Side::Det(s) => s.run_until_quiescent(),
            Side::Thr(s) => s
                .run_until_quiescent_within(LIMIT)
                .expect("quiescent in time"),
        }
    }
}

/// The gateway of A: keeps every ask it was given (the deterministic pump carries them), or
/// carries them to B at once (the threaded pair).
struct Link {
    wire: Wire,
    kept: Mutex<Vec<OutboundAsk>>,
    /// Every ask handed over, in order.
    sent: Mutex<Vec<AskId>>,
    /// B and A, for the threaded pair.
    direct: Option<(Weak<ThreadedSystem>, Weak<ThreadedSystem>)>,
}

impl Gateway for Link {
    fn send(&self, asks: Vec<OutboundAsk>) {
        self.sent.lock().unwrap().extend(asks.iter().map(|a| a.id));
        if self.wire != Wire::Carry {
            return;
        }
        match &self.direct {
            None => self.kept.lock().unwrap().extend(asks),
            Some((b, a)) => {
                let Some(b) = b.upgrade() else { return };
                for ask in asks {
                    let back = a.clone();
                    let reply = Box::new(move |r| {
                        if let Some(a) = back.upgrade() {
                            a.answer_outbound(ask.id, r);
                        }
                    });
                    let taken = b.ask_inbound(
                        &at_host(&ask.portal),
                        ask.id,
                        ask.request,
                        ask.envelope,
                        reply,
                    );
                    if let (Err(_), Some(a)) = (taken, a.upgrade()) {
                        let portal = ask.portal.to_string();
                        a.answer_outbound(ask.id, Err(AskError::UnknownPortal { portal }));
                    }
                }
            }
        }
    }
}

/// A remote portal's path at its host: `/peers/<peer>/rest` is `/rest` there.
fn at_host(portal: &Path) -> Path {
    let rest = portal.as_str().splitn(4, '/').nth(3).unwrap_or_default();
    Path::parse(&format!("/{rest}")).expect("a remote portal path")
}

/// Two systems of one runtime, A's asks to `/peers/b/...` going to B.
pub struct Pair {
    pub a: Side,
    pub b: Side,
    link: Option<Arc<Link>>,
    /// Replies from B waiting to be carried to A (deterministic pair).
    answers: Arc<Mutex<Vec<Answer>>>,
}

impl Pair {
    pub fn new(rt: Rt, wire: Wire) -> Pair {
        let (mut a, b) = (Side::new(rt, 7), Side::new(rt, 8));
        let direct = match (&a, &b) {
            (Side::Thr(a), Side::Thr(b)) => {
                b.start();
                Some((Arc::downgrade(b), Arc::downgrade(a)))
            }
            _ => None,
        };
        let link = (wire != Wire::Absent).then(|| {
            Arc::new(Link {
                wire,
                kept: Mutex::default(),
                sent: Mutex::default(),
                direct,
            })
        });
        if let Some(link) = &link {
            match &mut a {
                Side::Det(s) => s.set_gateway(link.clone()),
                Side::Thr(s) => s.set_gateway(link.clone()),
            }
        }
        Pair {
            a,
            b,
            link,
            answers: Arc::default(),
        }
    }

    /// The asks A handed to its gateway.
    pub fn sent(&self) -> Vec<AskId> {
        self.link
            .as_ref()
            .map(|l| l.sent.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Runs both systems, carrying asks and replies, until nothing moves.
    pub fn run(&mut self) {
        if matches!(self.a, Side::Thr(_)) {
            self.a.run();
            self.b.run();
            return;
        }
        for _ in 0..1_000 {
            let mut moved = self.a.run() + self.b.run();
            let asks = match &self.link {
                Some(link) => std::mem::take(&mut *link.kept.lock().unwrap()),
                None => Vec::new(),
            };
            for ask in asks {
                moved += 1;
                let answers = self.answers.clone();
                let id = ask.id;
                let reply = Box::new(move |r| answers.lock().unwrap().push((id, r)));
                if self
                    .b
                    .ask_inbound(&at_host(&ask.portal), id, ask.request, ask.envelope, reply)
                    .is_err()
                {
                    let portal = ask.portal.to_string();
                    self.answers
                        .lock()
                        .unwrap()
                        .push((id, Err(AskError::UnknownPortal { portal })));
                }
            }
            moved += self.b.run();
            let answers = std::mem::take(&mut *self.answers.lock().unwrap());
            for (id, reply) in answers {
                moved += 1;
                self.a.answer_outbound(id, reply);
            }
            if moved == 0 {
                return;
            }
        }
        panic!("the pair did not settle in 1,000 rounds");
    }
}
