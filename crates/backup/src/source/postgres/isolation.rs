//! What a restored PostgreSQL copy holds that reaches outside it (see [`crate::isolation`]).
//!
//! A PostgreSQL database cannot name another database in SQL, so a copy reaches out only
//! through connections it is given:
//! - foreign servers (postgres_fdw, dblink's `dblink_fdw`, any FDW) and the user mappings
//!   that log in to them: a foreign table of the copy reads and writes the remote server;
//! - routines and views that call `dblink(…)`/`dblink_exec(…)` with a connection string;
//! - subscriptions: an enabled one consumes from its publisher. pg_dump writes them with
//!   `connect = false`, so they arrive disabled and without a replication slot; the report
//!   lists them with their state, and one found enabled breaks isolation.
//!
//! Only connection options that say where (`host`, `hostaddr`, `port`, `dbname`, `service`)
//! are reported; user mappings are reported by server and user, never with their options,
//! which hold passwords.

use super::{PostgresSource, pg_error, quote_ident};
use crate::isolation::{ExternalReference, IsolationReport, ObjectKind, ScheduledObject};
use crate::source::SourceError;

/// Foreign servers with the options that say where they point.
const FOREIGN_SERVERS: &str = "\
    SELECT s.srvname::text, w.fdwname::text, \
           COALESCE(ARRAY(SELECT o FROM unnest(s.srvoptions) AS o \
                          WHERE split_part(o, '=', 1) IN \
                                ('host', 'hostaddr', 'port', 'dbname', 'service') \
                          ORDER BY o), '{}')::text[] \
    FROM pg_catalog.pg_foreign_server s \
    JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw \
    ORDER BY 1";

/// User mappings: server and user only.
const USER_MAPPINGS: &str = "\
    SELECT srvname::text, usename::text FROM pg_catalog.pg_user_mappings ORDER BY 1, 2";

/// The copy's subscriptions and whether they are enabled.
const SUBSCRIPTIONS: &str = "\
    SELECT subname::text, subenabled FROM pg_catalog.pg_subscription \
    WHERE subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
    ORDER BY 1";

/// Routines and views (not the dblink extension's own functions) whose definition calls
/// dblink with a connection; the definition is returned to see whether it names the source.
const DBLINK_CALLS: &str = "\
    SELECT 'routine', n.nspname::text, p.proname::text, pg_catalog.pg_get_functiondef(p.oid) \
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
    WHERE p.prokind IN ('f', 'p') \
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                      WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid \
                        AND d.deptype = 'e') \
      AND pg_catalog.pg_get_functiondef(p.oid) ~* '\\mdblink\\w*\\s*\\(' \
    UNION ALL \
    SELECT 'view', n.nspname::text, c.relname::text, pg_catalog.pg_get_viewdef(c.oid) \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('v', 'm') \
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
      AND pg_catalog.pg_get_viewdef(c.oid) ~* '\\mdblink\\w*\\s*\\(' \
    ORDER BY 1, 2, 3";

impl PostgresSource {
    /// Checks the restored copy `database` (see the module doc); `dumped_databases` names the
    /// backup's source database.
    pub async fn isolation_report(
        &self,
        database: &str,
        dumped_databases: &[String],
    ) -> Result<IsolationReport, SourceError> {
        let password = self.config.password.resolve()?;
        let password = password.as_ref();
        let client = self.connect(database, password).await?;
        let failed =
            |e: tokio_postgres::Error| pg_error("checking the copy's isolation", &e, password);
        let names_source = |options: &str| {
            dumped_databases
                .iter()
                .any(|source| options.contains(&format!("dbname={source}")))
        };
        let mut report = IsolationReport::default();
        for row in client.query(FOREIGN_SERVERS, &[]).await.map_err(failed)? {
            let server: String = row.try_get(0).map_err(failed)?;
            let wrapper: String = row.try_get(1).map_err(failed)?;
            let options: Vec<String> = row.try_get(2).map_err(failed)?;
            let options = options.join(" ");
            report.external_references.push(ExternalReference {
                kind: ObjectKind::ForeignServer,
                container: database.to_owned(),
                name: server,
                names_source: names_source(&options),
                reaches: format!("{wrapper} server {options}").trim_end().to_owned(),
            });
        }
        for row in client.query(USER_MAPPINGS, &[]).await.map_err(failed)? {
            let server: String = row.try_get(0).map_err(failed)?;
            let user: String = row.try_get(1).map_err(failed)?;
            report.external_references.push(ExternalReference {
                kind: ObjectKind::UserMapping,
                container: database.to_owned(),
                name: format!("{user}@{server}"),
                reaches: format!("foreign server {server} with stored credentials"),
                names_source: false,
            });
        }
        for row in client.query(DBLINK_CALLS, &[]).await.map_err(failed)? {
            let kind: String = row.try_get(0).map_err(failed)?;
            let schema: String = row.try_get(1).map_err(failed)?;
            let name: String = row.try_get(2).map_err(failed)?;
            let definition: String = row.try_get(3).map_err(failed)?;
            report.external_references.push(ExternalReference {
                kind: if kind == "view" {
                    ObjectKind::View
                } else {
                    ObjectKind::Routine
                },
                container: schema,
                name,
                reaches: "a dblink connection".to_owned(),
                names_source: names_source(&definition),
            });
        }
        for row in client.query(SUBSCRIPTIONS, &[]).await.map_err(failed)? {
            report.scheduled.push(ScheduledObject {
                kind: ObjectKind::Subscription,
                container: database.to_owned(),
                name: row.try_get(0).map_err(failed)?,
                enabled: row.try_get(1).map_err(failed)?,
            });
        }
        Ok(report)
    }

    /// Drops the subscriptions of `database` without touching their publishers, so that the
    /// database can be dropped (PostgreSQL refuses to drop a database with subscriptions).
    /// A plain `DROP SUBSCRIPTION` would connect to the publisher and drop the replication
    /// slot — the source's own slot when the database is a copy — so each subscription is
    /// first disabled and detached from its slot (`slot_name = NONE`).
    pub async fn detach_subscriptions(&self, database: &str) -> Result<(), SourceError> {
        let password = self.config.password.resolve()?;
        let password = password.as_ref();
        let client = self.connect(database, password).await?;
        let failed =
            |e: tokio_postgres::Error| pg_error("detaching the copy's subscriptions", &e, password);
        for row in client.query(SUBSCRIPTIONS, &[]).await.map_err(failed)? {
            let name: String = row.try_get(0).map_err(failed)?;
            let name = quote_ident(&name);
            for statement in [
                format!("ALTER SUBSCRIPTION {name} DISABLE"),
                format!("ALTER SUBSCRIPTION {name} SET (slot_name = NONE)"),
                format!("DROP SUBSCRIPTION {name}"),
            ] {
                client.batch_execute(&statement).await.map_err(failed)?;
            }
        }
        Ok(())
    }
}
