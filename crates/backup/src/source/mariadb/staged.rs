//! Committing a MariaDB restore from its staging databases into the targets.
//!
//! The order keeps the data recoverable at every instant:
//! 1. each existing target's contents move into a holding database (`vertice_old_…`);
//! 2. each staging database's contents move into its target (created when absent), which
//!    takes the staging database's character set, collation and comment — the source's,
//!    given to the staging database when the restore created it;
//! 3. only then are the holding and staging databases dropped.
//!
//! A failure in 1 or 2 undoes the completed moves in reverse order, so every target holds
//! its old contents again; a holding database is dropped only once it is empty again. If an
//! undo itself fails, the error names the holding database that still has the old data.

use super::{MariadbSource, hex_literal, quote_ident};
use crate::source::mariadb_properties::{
    MariadbDatabaseProperties, SESSION_SETUP, read_properties,
};
use crate::source::staging::unique_suffix;
use crate::source::{Engine, SourceError, identifier};

/// One target and the staging database the dump was restored into.
#[derive(Clone, Debug)]
pub(super) struct StagedDatabase {
    pub target: String,
    pub staging: String,
}

impl MariadbSource {
    /// Replaces the targets with their staging databases (see the module doc). Without
    /// `overwrite`, a target that appeared since the restore started is refused.
    pub(super) async fn commit_staged(
        &self,
        plan: &[StagedDatabase],
        overwrite: bool,
    ) -> Result<(), SourceError> {
        let targets: Vec<String> = plan.iter().map(|d| d.target.clone()).collect();
        let existing = match self.existing_databases(&targets).await {
            Ok(existing) => existing,
            Err(error) => {
                self.drop_staging(plan).await;
                return Err(error);
            }
        };
        if !existing.is_empty() && !overwrite {
            self.drop_staging(plan).await;
            return Err(SourceError::TargetExists {
                target: existing.join(", "),
            });
        }
        let mut undo = Undo::default();
        let moved = self.swap_all(plan, &existing, &mut undo).await;
        match moved {
            Ok(()) => {
                for holding in &undo.holding {
                    if let Err(error) = self.drop_database(holding).await {
                        tracing::warn!(%error, database = %holding, "could not drop the replaced contents");
                    }
                }
                self.drop_staging(plan).await;
                Ok(())
            }
            Err(error) => {
                let undone = self.undo(undo).await;
                self.drop_staging(plan).await;
                match undone {
                    Ok(()) => Err(error),
                    Err(kept) => Err(SourceError::Other(format!(
                        "{error}; putting the previous contents back failed too ({kept})"
                    ))),
                }
            }
        }
    }

    async fn swap_all(
        &self,
        plan: &[StagedDatabase],
        existing: &[String],
        undo: &mut Undo,
    ) -> Result<(), SourceError> {
        for target in existing {
            let holding = identifier::generated_name(
                Engine::Mariadb,
                "vertice_old",
                &format!("_{}", unique_suffix()),
            );
            self.create_like(&holding, target).await?;
            undo.holding.push(holding.clone());
            self.move_contents(target, &holding).await?;
            undo.moves.push((target.clone(), holding));
        }
        for database in plan {
            if existing.contains(&database.target) {
                self.alter_like(&database.target, &database.staging).await?;
            } else {
                self.create_like(&database.target, &database.staging)
                    .await?;
                undo.created.push(database.target.clone());
            }
            self.move_contents(&database.staging, &database.target)
                .await?;
            undo.moves
                .push((database.staging.clone(), database.target.clone()));
        }
        Ok(())
    }

    /// Moves back what was moved, newest first; drops what was created once it is empty.
    async fn undo(&self, undo: Undo) -> Result<(), String> {
        let mut kept = Vec::new();
        for (from, to) in undo.moves.iter().rev() {
            if let Err(error) = self.move_contents(to, from).await {
                kept.push(format!(
                    "{to:?} still holds what belongs in {from:?}: {error}"
                ));
            }
        }
        if !kept.is_empty() {
            return Err(kept.join("; "));
        }
        for database in undo.created.iter().chain(&undo.holding) {
            let _ = self.drop_database(database).await;
        }
        Ok(())
    }

    /// Creates `database` with the character set, collation and comment of `model`.
    async fn create_like(&self, database: &str, model: &str) -> Result<(), SourceError> {
        let model = self.properties_of(model).await?;
        self.run_sql(&format!(
            "{SESSION_SETUP}CREATE DATABASE {}{};",
            quote_ident(database),
            model.create_options()
        ))
        .await
    }

    /// Gives `database` the character set, collation and comment of `model` (a comment
    /// `model` lacks is removed).
    async fn alter_like(&self, database: &str, model: &str) -> Result<(), SourceError> {
        let model = self.properties_of(model).await?;
        let current = self.properties_of(database).await?;
        self.run_sql(&format!(
            "{SESSION_SETUP}{}",
            model.alter_statement(database, &current)
        ))
        .await
    }

    /// The character set, collation and comment `database` has now.
    async fn properties_of(
        &self,
        database: &str,
    ) -> Result<MariadbDatabaseProperties, SourceError> {
        read_properties(self, &[database.to_owned()])
            .await?
            .0
            .remove(database)
            .ok_or_else(|| {
                SourceError::Other(format!(
                    "database {database:?} disappeared during the restore"
                ))
            })
    }

    /// Drops the staging databases (best effort: they hold only a copy). Sessions still in
    /// them — the restore's own, when its client was killed while the server was waiting on
    /// a lock for it — are ended first, or the drop would wait for them.
    pub(super) async fn drop_staging(&self, plan: &[StagedDatabase]) {
        let staging: Vec<String> = plan.iter().map(|d| d.staging.clone()).collect();
        let names: Vec<String> = staging.iter().map(|name| hex_literal(name)).collect();
        if let Ok(rows) = self
            .query_rows(&format!(
                "SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE HEX(DB) IN ({}) AND ID <> CONNECTION_ID();",
                names.join(", ")
            ))
            .await
        {
            for id in rows
                .iter()
                .filter_map(|row| row.first()?.parse::<u64>().ok())
            {
                let _ = self.run_sql(&format!("KILL {id};")).await;
            }
        }
        self.drop_databases(&staging).await;
    }
}

/// What a partly done swap must undo.
#[derive(Debug, Default)]
struct Undo {
    /// Moves done, `(from, to)`.
    moves: Vec<(String, String)>,
    /// Targets that did not exist before.
    created: Vec<String>,
    /// Holding databases created for old contents.
    holding: Vec<String>,
}
