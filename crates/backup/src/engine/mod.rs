//! The engine as a library: what one run does, independent of who asks (the CLI, the Job's
//! `runner`, the operator's in-process executor).
//!
//! One function per action — [`backup()`], [`restore()`], [`verify()`], [`drill()`],
//! [`prune()`], [`list()`] (both filtered by a [`LabelSelector`] over the manifests' labels) —
//! each taking typed options (built from a [`RunSpec`] with
//! `from_spec`, or by the CLI from its flags), the store, a progress sink ([`Progress`]: atomic
//! counters and a phase name the caller samples when it likes) and a [`CancellationToken`]
//! (cancelling stops the run and leaves nothing that looks like a backup or a restored
//! target). [`run()`] runs a whole [`RunSpec`]. Nothing here prints: the CLI formats the
//! outcomes (`cli/reports.rs`).
//!
//! [`CancellationToken`]: tokio_util::sync::CancellationToken

pub mod backup;
pub mod drill;
pub mod keys;
pub mod list;
pub mod objects;
pub mod prune;
pub mod restore;
pub mod run;
pub mod selector;
pub mod spec;
pub mod verify;

pub use crate::progress::Progress;
pub use backup::{BackupInput, BackupReport, BackupRun, PipelineSettings, backup};
pub use drill::{DrillRun, drill};
pub use list::{ListEntry, list};
pub use objects::ObjectCopyConfig;
pub use prune::{PruneOptions, PruneOutcome, prune};
pub use restore::{RestoreInto, RestoreOutcome, RestoreRun, restore};
pub use run::{RunOutcome, run};
pub use selector::{LabelSelector, Requirement};
pub use spec::{Action, EncryptionSpec, RestoreSpec, RunSpec, parse_spec, run_spec_schema};
pub use verify::{VerifyRun, verify};
