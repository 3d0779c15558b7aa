//! The engine as a library: what one run does, independent of who asks (the CLI, the Job's
//! `runner`, the operator's in-process executor).

pub mod spec;

pub use spec::{Action, EncryptionSpec, RestoreSpec, RunSpec, parse_spec};
