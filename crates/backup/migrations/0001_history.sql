-- Backup history, version 1: one row per finished backup run and restore run, keyed by the
-- run's Kubernetes UID (so a retried write or an operator restart updates the row instead of
-- adding one), per-project totals kept in step with them, and two views for people.
-- Applied by the operator (crates/backup/src/history/migrate.rs) inside one transaction.

CREATE TABLE vertice_history.backup_runs (
    uid              text PRIMARY KEY,
    namespace        text NOT NULL,
    name             text NOT NULL,
    project          text NOT NULL,
    environment      text NOT NULL DEFAULT '',
    policy           text,
    phase            text NOT NULL CHECK (phase IN ('Succeeded', 'Failed')),
    reason           text,
    message          text,
    backup_name      text,
    location         text,
    raw_bytes        bigint,
    stored_bytes     bigint,
    error_kind       text,
    error_message    text,
    attempts         integer,
    started_at       timestamptz,
    completed_at     timestamptz,
    duration_seconds double precision,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX backup_runs_project_completed
    ON vertice_history.backup_runs (project, environment, completed_at DESC);

CREATE TABLE vertice_history.restore_runs (
    uid              text PRIMARY KEY,
    namespace        text NOT NULL,
    name             text NOT NULL,
    project          text NOT NULL,
    environment      text NOT NULL DEFAULT '',
    phase            text NOT NULL CHECK (phase IN ('Succeeded', 'Failed')),
    reason           text,
    message          text,
    backup_name      text,
    target           text,
    raw_bytes        bigint,
    verification     text,
    error_kind       text,
    error_message    text,
    attempts         integer,
    started_at       timestamptz,
    completed_at     timestamptz,
    duration_seconds double precision,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX restore_runs_project_completed
    ON vertice_history.restore_runs (project, environment, completed_at DESC);

-- Recomputed from the two run tables in the transaction that writes a run, so it never counts
-- a run twice.
CREATE TABLE vertice_history.project_totals (
    project                 text NOT NULL,
    environment             text NOT NULL DEFAULT '',
    backups_succeeded       bigint NOT NULL DEFAULT 0,
    backups_failed          bigint NOT NULL DEFAULT 0,
    restores_succeeded      bigint NOT NULL DEFAULT 0,
    restores_failed         bigint NOT NULL DEFAULT 0,
    stored_bytes_total      bigint NOT NULL DEFAULT 0,
    last_backup_success_at  timestamptz,
    last_backup_failure_at  timestamptz,
    last_restore_at         timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, environment)
);

-- Successful backups of the last 30 days, newest first when ordered by completed_at.
CREATE VIEW vertice_history.recent_successful_backups AS
SELECT project, environment, namespace, name, policy, backup_name, location,
       raw_bytes, stored_bytes, duration_seconds, completed_at
FROM vertice_history.backup_runs
WHERE phase = 'Succeeded' AND completed_at > now() - interval '30 days';

-- One line per project and environment: its totals, its newest successful backup and how long
-- ago that was.
CREATE VIEW vertice_history.project_summary AS
SELECT t.project, t.environment,
       t.backups_succeeded, t.backups_failed, t.restores_succeeded, t.restores_failed,
       t.stored_bytes_total, t.last_backup_success_at, t.last_backup_failure_at,
       t.last_restore_at,
       extract(epoch FROM now() - t.last_backup_success_at) AS seconds_since_last_success,
       CASE WHEN t.backups_succeeded + t.backups_failed = 0 THEN NULL
            ELSE t.backups_succeeded::double precision / (t.backups_succeeded + t.backups_failed)
       END AS backup_success_ratio
FROM vertice_history.project_totals t;
