//! Whether a restored copy can act on anything but itself, and what a restore did to keep it
//! from doing so.
//!
//! A copy restored next to its source (a new name on the same server is the default) holds the
//! source's code: routines, views, triggers and events (MariaDB), foreign servers, user
//! mappings, `dblink` calls and subscriptions (PostgreSQL). Code that names the source's
//! database, or another server, reads or writes production from the copy. The restore cannot
//! rewrite that code safely, so it
//! - keeps scheduled code from running on its own: MariaDB events arrive `DISABLE`d unless
//!   the user asks to keep them enabled; PostgreSQL subscriptions arrive disabled and without a
//!   replication slot (pg_dump writes them with `connect = false`) and are checked to be so;
//! - reports every object that reaches outside the copy, so a person decides;
//! - and a drill, whose copy must touch nothing, fails its "isolated" check on any of them.
//!
//! Redis snapshots hold data and functions that act only on their own server: nothing to check.
//! PostgreSQL publications and event triggers act only inside their own database, so they are
//! not reported.

use serde::Serialize;

/// What kind of object reaches outside the copy (or is scheduled to run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    /// A stored procedure or function.
    Routine,
    /// A view.
    View,
    /// A trigger.
    Trigger,
    /// A MariaDB event (scheduled SQL).
    Event,
    /// A PostgreSQL foreign server (postgres_fdw, dblink, any FDW).
    ForeignServer,
    /// A PostgreSQL user mapping (credentials for a foreign server).
    UserMapping,
    /// A PostgreSQL logical replication subscription.
    Subscription,
}

impl ObjectKind {
    /// The word for messages.
    pub fn word(self) -> &'static str {
        match self {
            ObjectKind::Routine => "routine",
            ObjectKind::View => "view",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Event => "event",
            ObjectKind::ForeignServer => "foreign server",
            ObjectKind::UserMapping => "user mapping",
            ObjectKind::Subscription => "subscription",
        }
    }
}

/// One object in the restored copy that names something outside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalReference {
    /// The object's kind.
    pub kind: ObjectKind,
    /// Where the object lives: the restored database (MariaDB) or schema (PostgreSQL).
    pub container: String,
    /// The object's name.
    pub name: String,
    /// What it reaches: `database shop`, `server host=… port=… dbname=…`, `dblink`.
    pub reaches: String,
    /// Whether what it reaches is the database the backup was taken from.
    pub names_source: bool,
}

/// One scheduled or replicating object and whether it can run in the copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledObject {
    /// Event or subscription.
    pub kind: ObjectKind,
    /// The restored database (MariaDB) or the copy's database (PostgreSQL).
    pub container: String,
    /// The object's name.
    pub name: String,
    /// Whether it is enabled in the copy.
    pub enabled: bool,
}

/// What a restore found in the copy about its isolation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IsolationReport {
    /// Objects that name something outside the copy.
    pub external_references: Vec<ExternalReference>,
    /// Events and subscriptions, enabled or not.
    pub scheduled: Vec<ScheduledObject>,
}

impl IsolationReport {
    /// True when nothing in the copy reaches outside it and nothing scheduled can run.
    pub fn isolated(&self) -> bool {
        self.external_references.is_empty() && self.scheduled.iter().all(|object| !object.enabled)
    }

    /// One line per finding that breaks isolation (empty when [`Self::isolated`]).
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .external_references
            .iter()
            .map(|reference| {
                format!(
                    "{} {}.{} reaches {}{}",
                    reference.kind.word(),
                    reference.container,
                    reference.name,
                    reference.reaches,
                    if reference.names_source {
                        " (the backup's source)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        problems.extend(
            self.scheduled
                .iter()
                .filter(|object| object.enabled)
                .map(|object| {
                    format!(
                        "{} {}.{} is enabled and runs in the copy",
                        object.kind.word(),
                        object.container,
                        object.name
                    )
                }),
        );
        problems
    }

    /// Lines for the restore's text output: every finding, and what arrived disabled.
    pub fn text_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .problems()
            .into_iter()
            .map(|problem| format!("warning: {problem}"))
            .collect();
        let disabled: Vec<String> = self
            .scheduled
            .iter()
            .filter(|object| !object.enabled)
            .map(|object| format!("{}.{}", object.container, object.name))
            .collect();
        if !disabled.is_empty() {
            lines.push(format!(
                "disabled in the copy (enable them yourself once it may run): {}",
                disabled.join(", ")
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(enabled: bool) -> ScheduledObject {
        ScheduledObject {
            kind: ObjectKind::Event,
            container: "copy".into(),
            name: "tick".into(),
            enabled,
        }
    }

    #[test]
    fn isolated_only_without_references_and_enabled_schedules() {
        let mut report = IsolationReport::default();
        assert!(report.isolated());
        report.scheduled.push(event(false));
        assert!(report.isolated());
        assert!(report.problems().is_empty());
        assert_eq!(report.text_lines().len(), 1);
        report.scheduled.push(event(true));
        assert!(!report.isolated());
        assert_eq!(report.problems().len(), 1);
        let mut report = IsolationReport::default();
        report.external_references.push(ExternalReference {
            kind: ObjectKind::Routine,
            container: "copy".into(),
            name: "n_orders".into(),
            reaches: "database shop".into(),
            names_source: true,
        });
        assert!(!report.isolated());
        assert!(report.problems()[0].contains("the backup's source"));
    }
}
