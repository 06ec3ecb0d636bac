//! `pods-node`: the Pods daemon as a library.
#![warn(missing_docs)]
