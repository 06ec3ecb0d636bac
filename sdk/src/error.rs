//! The sdk's errors: building and launching apps, feeding them, storing their state, and the
//! errors a task sees (its own failure, a failed ask).

use std::fmt;

/// Why an app could not be built or launched, or why a system call was refused. Every variant
/// names the element at fault and says what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A path or name does not have the required form.
    #[error("invalid path '{path}': {reason}")]
    InvalidPath {
        /// The text given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two elements have the same path (in one app, or an app already launched has it).
    #[error("duplicate path {path}: another element already has it; give one of them another name")]
    DuplicatePath {
        /// The contested path.
        path: String,
    },
    /// A portal that no task answers.
    #[error("portal {portal} has no replier: add a replier task for it in the app that defines it")]
    PortalWithoutReplier {
        /// The portal's path.
        portal: String,
    },
    /// A portal answered by two tasks.
    #[error("portal {portal} has two repliers ({first} and {second}); a portal has exactly one")]
    PortalWithTwoRepliers {
        /// The portal's path.
        portal: String,
        /// The workflow of the first replier.
        first: String,
        /// The workflow of the second replier.
        second: String,
    },
    /// A reference to a path that no launched element has.
    #[error(
        "{referrer} refers to {path}, which does not exist: launch the app that defines it first, or fix the path"
    )]
    UnknownPath {
        /// The path referred to.
        path: String,
        /// The app that refers to it.
        referrer: String,
    },
    /// A reference to a path that names an element of another kind.
    #[error("{path} is a {found}, not a {expected}")]
    WrongKind {
        /// The path referred to.
        path: String,
        /// The kind the reference expects.
        expected: &'static str,
        /// The kind the path has.
        found: &'static str,
    },
    /// A workflow that consumes no stream.
    #[error("workflow {workflow} has no source: call .source(&stream) on it")]
    NoSource {
        /// The workflow's path.
        workflow: String,
    },
    /// A workflow given a second source.
    #[error(
        "workflow {workflow} has two sources; a workflow consumes one stream (merge streams with a sequencer)"
    )]
    TwoSources {
        /// The workflow's path.
        workflow: String,
    },
    /// A workflow given a second sink.
    #[error(
        "workflow {workflow} has two sinks; a workflow produces one stream (union the flows first)"
    )]
    TwoSinks {
        /// The workflow's path.
        workflow: String,
    },
    /// The threaded runtime could not start its worker threads.
    #[error("runtime error: {message}")]
    Runtime {
        /// What failed.
        message: String,
    },
    /// The system was stopped; it takes no more apps.
    #[error("the system is stopped; start a new one to launch apps")]
    Stopped,
    /// A wait ran past its limit.
    #[error("{what} did not finish within {millis} ms")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The limit, in milliseconds.
        millis: u128,
    },
    /// A workflow given zero partitions.
    #[error("workflow {workflow} was given 0 partitions; give it at least 1")]
    NoPartitions {
        /// The workflow's path.
        workflow: String,
    },
    /// A stream, portal, sequencer or splitter used with event types other than its own.
    #[error("type mismatch at {path}: it carries {found}, but the consumer expects {expected}")]
    TypeMismatch {
        /// The element's path.
        path: String,
        /// The type the consumer declared.
        expected: String,
        /// The element's own type.
        found: String,
    },
    /// A sequencer whose inputs have all ended: it takes no new input.
    #[error(
        "sequencer {path} has ended (all its inputs were sealed) and takes no new input; connect to a sequencer that is still open"
    )]
    Ended {
        /// The sequencer's path.
        path: String,
    },
    /// A feeder whose queue is full; run the system, then push again.
    #[error(
        "feeder {path} holds {capacity} atoms already: run the system so it drains, then push again"
    )]
    FeederFull {
        /// The generator's path.
        path: String,
        /// The queue bound.
        capacity: usize,
    },
    /// Bytes fed as an atom of a stream do not decode as that stream's events.
    #[error(
        "an atom fed to {path} does not decode as its events ({reason}); the sender and this app disagree on the stream's type"
    )]
    UndecodableAtom {
        /// The external generator's path.
        path: String,
        /// The decoder's message.
        reason: String,
    },
    /// An atom fed at an offset past the feeder's next one: atoms in between are missing.
    #[error(
        "atom {offset} fed to {path}, whose next atom is {next}: feed the atoms in between first"
    )]
    FeederGap {
        /// The external generator's path.
        path: String,
        /// The offset given.
        offset: u64,
        /// The offset the feeder takes next.
        next: u64,
    },
    /// A feeder that was sealed and takes no more atoms.
    #[error("feeder {path} is sealed and takes no more atoms")]
    FeederSealed {
        /// The generator's path.
        path: String,
    },
    /// An app whose elements would lie below `/peers`, the part of the registry that names
    /// other processes' elements.
    #[error(
        "app {app} is refused: paths below /peers name the elements of other processes; give the app another name"
    )]
    ReservedPath {
        /// The app's path.
        app: String,
    },
    /// The storage refused a read or a commit.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why the storage refused an operation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// A value could not be encoded.
    #[error("cannot encode state {state}: {reason}")]
    Encode {
        /// The state's name.
        state: String,
        /// The encoder's message.
        reason: String,
    },
    /// The backing store failed.
    #[error("storage failed: {0}")]
    Backend(String),
}

/// The failure of a task: its handler returned an error or panicked, or it misused the context.
/// The workflow puts `Error` with this message on its output stream and stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    /// What went wrong, for the stream's `Error` marker and the log.
    pub message: String,
}

impl TaskError {
    /// A task error with this message.
    pub fn new(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

/// Why an ask got no reply value. A continuation receives it instead of the reply.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AskError {
    /// No portal has this path (it was never launched).
    UnknownPortal {
        /// The portal's path.
        portal: String,
    },
    /// The workflow that answers the portal failed, so it answers nothing.
    ReplierFailed {
        /// The portal's path.
        portal: String,
    },
    /// The policy gate keeps the request's data out of the replier's workflow.
    Denied {
        /// The portal's path.
        portal: String,
    },
    /// The policy gate keeps the reply's data out of the asking workflow (its purpose has no
    /// basis for the data the reply was made from).
    ReplyDenied {
        /// The asking workflow's path.
        workflow: String,
    },
    /// The request is not of the portal's request type (the asker's handle names the portal
    /// with other types).
    WrongRequestType {
        /// The portal's path.
        portal: String,
    },
    /// The reply's value is not of the type the asker expects (an sdk invariant was broken).
    WrongReplyType {
        /// The ask's id.
        ask: String,
    },
    /// The reply came from another process, encoded, and its bytes are not a value of the
    /// asker's reply type (the two sides disagree on the portal's types).
    Undecodable {
        /// The ask's id.
        ask: String,
        /// The decoder's message.
        message: String,
    },
    /// The portal is in another process, which could not take the ask (it refused the message,
    /// or spoke another protocol version).
    Remote {
        /// The portal's path.
        portal: String,
        /// What the other side or the network reported.
        message: String,
    },
    /// No reply came within the ask's deadline; a reply arriving later is dropped.
    Timeout {
        /// The portal's path.
        portal: String,
        /// The deadline, in milliseconds after the ask was sent.
        after_ms: u64,
    },
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::UnknownPortal { portal } => write!(f, "ask to {portal}: no such portal"),
            AskError::ReplierFailed { portal } => write!(f, "ask to {portal}: its replier failed"),
            AskError::Denied { portal } => {
                write!(
                    f,
                    "ask to {portal}: the policy gate keeps this request's data out of its replier"
                )
            }
            AskError::WrongRequestType { portal } => {
                write!(
                    f,
                    "ask to {portal}: the request is not of the portal's request type"
                )
            }
            AskError::WrongReplyType { ask } => write!(f, "ask {ask}: reply of the wrong type"),
            AskError::Undecodable { ask, message } => {
                write!(
                    f,
                    "ask {ask}: the encoded reply cannot be decoded: {message}"
                )
            }
            AskError::Timeout { portal, after_ms } => {
                write!(
                    f,
                    "ask to {portal}: no reply within its deadline of {after_ms} ms"
                )
            }
            AskError::Remote { portal, message } => write!(f, "ask to {portal}: {message}"),
            AskError::ReplyDenied { workflow } => write!(
                f,
                "the reply's data may not enter {workflow}: its purpose has no basis for it"
            ),
        }
    }
}

impl AskError {
    /// The same error naming `portal` as the portal asked (an error from another process names
    /// the portal by its path there).
    pub(crate) fn asked_at(self, portal: &str) -> AskError {
        let portal = portal.to_owned();
        match self {
            AskError::UnknownPortal { .. } => AskError::UnknownPortal { portal },
            AskError::ReplierFailed { .. } => AskError::ReplierFailed { portal },
            AskError::Denied { .. } => AskError::Denied { portal },
            AskError::WrongRequestType { .. } => AskError::WrongRequestType { portal },
            AskError::Timeout { after_ms, .. } => AskError::Timeout { portal, after_ms },
            AskError::Remote { message, .. } => AskError::Remote { portal, message },
            other @ (AskError::WrongReplyType { .. }
            | AskError::Undecodable { .. }
            | AskError::ReplyDenied { .. }) => other,
        }
    }
}

impl std::error::Error for AskError {}

/// What a task handler may return: `()` or a `Result<(), E>` whose error fails the task.
pub trait Outcome {
    /// The handler's outcome as a result.
    fn into_result(self) -> Result<(), TaskError>;
}

impl Outcome for () {
    fn into_result(self) -> Result<(), TaskError> {
        Ok(())
    }
}

impl<E: fmt::Display> Outcome for Result<(), E> {
    fn into_result(self) -> Result<(), TaskError> {
        self.map_err(|e| TaskError::new(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_from_another_process_names_the_portal_as_asked() {
        let far = AskError::Timeout {
            portal: "/math/portals/double".into(),
            after_ms: 5,
        };
        assert_eq!(
            far.asked_at("/peers/b/math/portals/double"),
            AskError::Timeout {
                portal: "/peers/b/math/portals/double".into(),
                after_ms: 5
            }
        );
        let undecodable = AskError::Undecodable {
            ask: "a".into(),
            message: "m".into(),
        };
        assert_eq!(undecodable.clone().asked_at("/p"), undecodable);
        assert_eq!(
            undecodable.to_string(),
            "ask a: the encoded reply cannot be decoded: m"
        );
    }
}
