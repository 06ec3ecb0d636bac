//! Asks across processes: the [`Gateway`] a system hands asks to remote portals to, the
//! [`OutboundAsk`] it hands over, and the encoded values that stand in for requests and replies
//! whose types are checked on the far side.
//!
//! A portal path below `/peers` (`/peers/bob/shop/portals/stock`) is remote: an ask to it
//! leaves through the gateway, with its request encoded (CBOR), and its reply comes back
//! through `answer_outbound` of the system. Asks from another process enter through
//! `ask_inbound`, and their replies leave through the callback given with each.

use std::any::Any;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::Envelope;
use crate::path::Path;
use crate::portal::AskId;

/// Where a system sends asks to remote portals: a node layer that carries them to the process
/// that hosts the portal and brings each reply back through the system's `answer_outbound`
/// (or not at all: then the ask times out).
///
/// `send` is called without the system's lock held (the threaded runtime may call it from any
/// worker thread, and it may call back into the system); it should not block for long, nor wait
/// for the system to be quiescent (which waits for it). The
/// deterministic runtime calls it from within its step, where the system is borrowed: there,
/// keep the asks and hand their replies to `answer_outbound` once the step returned.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use pods_sdk::{AppBuilder, AskError, DeterministicSystem, Gateway, OutboundAsk};
///
/// /// Keeps what the system sends, for the host to carry.
/// #[derive(Default)]
/// struct Outbox(Mutex<Vec<OutboundAsk>>);
/// impl Gateway for Outbox {
///     fn send(&self, asks: Vec<OutboundAsk>) {
///         self.0.lock().unwrap().extend(asks);
///     }
/// }
///
/// let app = AppBuilder::new("shop");
/// let stock = app.portal_ref::<String, u32>("/peers/bob/store/portals/stock");
/// let items = app.generator_from_atoms("items", vec![vec!["pear".to_string()]]);
/// let s = stock.clone();
/// app.workflow("check")
///     .source(&items)
///     .asker(&stock, move |ctx, item: String| {
///         let h = ctx.ask(&s, item.clone());
///         ctx.on_reply(h, move |ctx, n: Result<u32, AskError>| -> Result<(), AskError> {
///             ctx.emit(format!("{item}: {}", n?));
///             Ok(())
///         });
///     })
///     .sink();
///
/// let outbox = Arc::new(Outbox::default());
/// let mut system = DeterministicSystem::new(1);
/// system.set_gateway(outbox.clone());
/// system.launch(app.build()?)?;
/// let out = system.subscribe::<String>("/shop/workflows/check/stream")?;
/// system.run_until_quiescent();
/// // The host carries the ask to bob and back; here it answers it itself.
/// for ask in outbox.0.lock().unwrap().drain(..) {
///     let request: String = ciborium::from_reader(&ask.request[..]).unwrap();
///     assert_eq!((ask.portal.as_str(), request.as_str()), ("/peers/bob/store/portals/stock", "pear"));
///     let mut reply = Vec::new();
///     ciborium::into_writer(&7u32, &mut reply).unwrap();
///     system.answer_outbound(ask.id, Ok(reply));
/// }
/// system.run_until_quiescent();
/// assert_eq!(out.values(), vec![vec!["pear: 7".to_string()]]);
/// # Ok::<(), pods_sdk::Error>(())
/// ```
pub trait Gateway: Send + Sync + 'static {
    /// Takes the asks one routing pass sent to remote portals, in the order they were made.
    fn send(&self, asks: Vec<OutboundAsk>);
}

/// An ask to a remote portal, as a system hands it to its [`Gateway`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundAsk {
    /// The ask's id: give it back with the reply to `answer_outbound`.
    pub id: AskId,
    /// The remote portal's path (below `/peers`).
    pub portal: Path,
    /// The request, CBOR-encoded.
    pub request: Vec<u8>,
    /// The envelope the request carries, if it is personal.
    pub envelope: Option<Envelope>,
    /// How long the asking system waits for the reply before the ask times out there
    /// (`Duration::MAX`: it waits forever); a reply after it is dropped.
    pub deadline: Duration,
}

/// An ask from another process to a local portal, for a system's `ask_inbound_all`: all the
/// asks of one request enter the system at once, so the replier takes them in one step.
pub struct InboundAsk {
    /// The local portal's path.
    pub portal: Path,
    /// The ask's id (deterministic at the asker: the same when the ask is sent again).
    pub id: AskId,
    /// The request, CBOR-encoded; the portal's replier decodes it.
    pub request: Vec<u8>,
    /// The request's envelope, if it is personal.
    pub envelope: Option<Envelope>,
    /// Called once, after the replier's step committed, with the reply's encoding or the error.
    pub reply: Box<dyn FnOnce(Result<Vec<u8>, crate::error::AskError>) + Send>,
}

impl std::fmt::Debug for InboundAsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundAsk")
            .field("portal", &self.portal)
            .field("id", &self.id)
            .field("request", &self.request.len())
            .finish_non_exhaustive()
    }
}

/// The CBOR encoding of a request or reply value, standing in for the value where its type is
/// known only on the other side of a process boundary (a request to a remote portal, a reply
/// to an ask from another process). The side that knows the type decodes it.
pub(crate) struct Encoded(pub(crate) Vec<u8>);

impl Encoded {
    /// Encodes `value`; the error is the encoder's message.
    pub(crate) fn of<T: Serialize>(value: &T) -> Result<Encoded, String> {
        let mut bytes = Vec::new();
        ciborium::into_writer(value, &mut bytes).map_err(|e| e.to_string())?;
        Ok(Encoded(bytes))
    }

    /// Decodes the value; the error is the decoder's message.
    pub(crate) fn decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        ciborium::from_reader(&self.0[..]).map_err(|e| e.to_string())
    }
}

/// Why a boxed value could not be taken as a `T`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Untyped {
    /// It is neither a `T` nor [`Encoded`].
    Other,
    /// It is [`Encoded`], and its bytes are no `T` (the decoder's message).
    Undecodable(String),
}

/// Takes a request or reply value as a `T`: the value itself, or decoded if it came encoded.
pub(crate) fn take<T: DeserializeOwned + 'static>(
    value: Box<dyn Any + Send>,
) -> Result<T, Untyped> {
    match value.downcast::<T>() {
        Ok(value) => Ok(*value),
        Err(other) => match other.downcast::<Encoded>() {
            Ok(encoded) => encoded.decode().map_err(Untyped::Undecodable),
            Err(_) => Err(Untyped::Other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed<T: Send + 'static>(value: T) -> Box<dyn Any + Send> {
        Box::new(value)
    }

    #[test]
    fn a_value_is_taken_as_itself_or_decoded_from_its_encoding() {
        assert_eq!(take::<i64>(boxed(5i64)), Ok(5));
        let encoded = Encoded::of(&(3u8, "x".to_string())).map(boxed);
        assert_eq!(
            encoded.map(take::<(u8, String)>),
            Ok(Ok((3, "x".to_string())))
        );
    }

    #[test]
    fn a_value_of_another_type_or_bad_bytes_is_not_taken() {
        assert_eq!(take::<i64>(boxed("five")), Err(Untyped::Other));
        let text = Encoded::of(&"five").map(boxed);
        assert!(matches!(
            text.map(take::<i64>),
            Ok(Err(Untyped::Undecodable(_)))
        ));
        assert!(matches!(
            take::<i64>(boxed(Encoded(vec![0xff, 0x00]))),
            Err(Untyped::Undecodable(_))
        ));
    }
}
