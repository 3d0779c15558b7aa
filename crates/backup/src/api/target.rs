//! The database a backup is taken from or a restore writes to. Field names follow the engine's
//! connection settings (`crate::source`), with the password as a Secret reference.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::refs::SecretKeyRef;

/// Which database engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// PostgreSQL (dumped with `pg_dump -Fc`).
    Postgres,
    /// MariaDB or MySQL (dumped with `mariadb-dump --single-transaction`).
    Mariadb,
    /// Redis (an RDB snapshot).
    Redis,
}

/// How to reach and log in to a database server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerConnection {
    /// The engine: `postgres`, `mariadb` (also MySQL) or `redis`.
    pub engine: EngineKind,
    /// Host name or IP address of the server, e.g. `db.prod.svc.cluster.local`.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port; default 5432 (postgres), 3306 (mariadb) or 6379 (redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Login role or user (for redis: the ACL user; omit for the default user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub user: Option<String>,
    /// The Secret key holding the password of `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Seconds to wait for a connection before the run fails. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub connect_timeout_seconds: Option<i32>,
}

/// A database server and what to back up from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.engine != 'postgres' || has(self.database)").message("a postgres target needs `database`"),
    validation = Rule::new("self.engine == 'postgres' || !has(self.database)").message("`database` is for postgres; mariadb takes `databases` (empty means all), redis neither"),
    validation = Rule::new("self.engine == 'mariadb' || !has(self.databases) || size(self.databases) == 0").message("`databases` is for mariadb only"),
    validation = Rule::new("self.engine == 'redis' || has(self.user)").message("postgres and mariadb targets need `user`"),
    validation = Rule::new("has(self.passwordSecretRef)").message("a target needs `passwordSecretRef`: the operator never connects without credentials")
)]
pub struct DatabaseTarget {
    /// Server, login and password.
    #[serde(flatten)]
    pub connection: ServerConnection,
    /// postgres: the database to back up (one per backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub database: Option<String>,
    /// mariadb: the databases to back up; empty or absent means every database except the
    /// system ones (`mysql`, `information_schema`, `performance_schema`, `sys`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64)))]
    pub databases: Vec<String>,
}
