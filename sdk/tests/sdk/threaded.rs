//! Tests of the threaded runtime alone.
