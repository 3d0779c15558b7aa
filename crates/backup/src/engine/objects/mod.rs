//! The object-storage part of a backup run: copying a bucket folder into the backup's store
//! (issue 8 §1), incrementally, and putting it back. The on-store format and layout are in
//! [`crate::format::bucket_copy`].
//!
//! - [`part`]: the copy as a part of a backup run (after the dump, before the manifest);
//! - [`filter`]: the `include`/`exclude` globs;
//! - [`previous`]: the earlier copy an incremental copy references;
//! - [`transfer`]: one object's bytes (server-side copy, or streamed with bounded memory);
//! - [`check`]: `verify` of the index and every object; [`restore`]: putting objects back;
//! - [`collect`]: deleting copied bytes no kept backup references (run by `prune`).

pub mod check;
pub mod collect;
pub mod config;
pub mod filter;
pub(crate) mod layout;
pub mod part;
pub mod previous;
pub mod restore;
pub mod transfer;

pub use check::verify_objects;
pub use collect::{CopiedObjectsOutcome, collect_copied_objects};
pub use config::ObjectCopyConfig;
pub use part::ObjectCopyPart;
pub use restore::{ObjectRestoreOutcome, ObjectRestoreRun, restore_objects};
