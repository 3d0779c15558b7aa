//! The RestoreRequest controller against the real kube-apiserver and job controller, the
//! kubelet stand-in running the real `vertice-backup runner`, real PostgreSQL and the real S3
//! server: a restore from a BackupRequest equals its source, a restore waits for its backup
//! and fails when that failed, an existing database is replaced only with `overwrite`, and a
//! finished restore is labelled finished (out of the operator's caches).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use kube::Api;
use kube::api::{ListParams, PostParams};
use operator_env::{Env, eventually, sample};
use serde_json::{Value, json};
use vertice_backup::api::restore_request::{RestoreRequest, VerificationResult};
use vertice_backup::api::run::{ErrorKind, RunPhase};
use vertice_backup::controller::labels::FINISHED;

/// A running operator with the kubelet stand-in, and a Succeeded backup `nightly` of `shop`.
async fn env_with_backup(prefix: &str) -> Env {
    let mut env = Env::new(prefix, true).await;
    env.start_kubelet().await;
    env.start_operator(&[], None).await;
    env.inline_request("nightly", json!({}), json!({})).await;
    env.wait_phase("nightly", RunPhase::Succeeded).await;
    env
}

fn restores(env: &Env) -> Api<RestoreRequest> {
    Api::namespaced(env.client.clone(), env.ns.name())
}

/// A restore target on the test's PostgreSQL; `extra` is merged in.
fn target(env: &Env, extra: Value) -> Value {
    let mut target = json!({
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": env.pg.port(),
        "user": env.pg.superuser(),
        "passwordSecretRef": {"name": "db", "key": "password"},
    });
    operator_env::merge(&mut target, extra);
    target
}

async fn create_restore(env: &Env, name: &str, spec: Value) -> RestoreRequest {
    let object = json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "RestoreRequest",
        "metadata": {"name": name},
        "spec": spec,
    });
    let request: RestoreRequest = serde_json::from_value(object).unwrap();
    restores(env)
        .create(&PostParams::default(), &request)
        .await
        .unwrap()
}

async fn wait_restore(env: &Env, name: &str, phase: RunPhase) -> RestoreRequest {
    let api = restores(env);
    eventually(
        &format!("RestoreRequest {name} to be {phase:?}"),
        || async {
            let found = api.get(name).await.ok()?;
            let status = found.status.as_ref()?;
            if status.phase.is_finished() && status.phase != phase {
                panic!("{name} ended {:?}, not {phase:?}: {status:?}", status.phase);
            }
            (status.phase == phase).then_some(found)
        },
    )
    .await
}

fn ready_reason(request: &RestoreRequest) -> Option<String> {
    request
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|condition| condition.type_ == "Ready")
        .map(|condition| condition.reason.clone())
}

/// The rows of `items` in `database`, as one digest (equal digests: equal contents).
async fn digest(env: &Env, database: &str) -> String {
    env.pg
        .sql_in(
            database,
            "SELECT count(*) || ':' || md5(string_agg(id || '=' || name, ',' ORDER BY id)) FROM items",
        )
        .await
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_a_backup_request_equals_its_source() {
    let env = env_with_backup("rr-equal").await;
    create_restore(
        &env,
        "copy",
        json!({"source": {"backupRequestRef": {"name": "nightly"}}, "target": target(&env, json!({}))}),
    )
    .await;
    let done = wait_restore(&env, "copy", RunPhase::Succeeded).await;
    let status = done.status.clone().unwrap();
    let result = status.result.clone().unwrap();
    assert_eq!(result.backup_name.as_deref(), Some("nightly"));
    let target = result.target.clone().unwrap();
    // The default target is a new database named after the source and the request.
    let database = target.rsplit('/').next().unwrap().to_owned();
    assert!(database.starts_with("shop_restore_"), "{target}");
    assert_eq!(digest(&env, &database).await, digest(&env, "shop").await);
    assert!(result.raw_size.unwrap_or(0) > 0, "{result:?}");
    assert!(status.times.duration_seconds.is_some());
    assert_eq!(ready_reason(&done).as_deref(), Some("Succeeded"));
    let verification = status.verification.unwrap();
    assert_eq!(
        verification.result,
        VerificationResult::Passed,
        "{verification:?}"
    );
    assert!(verification.objects_compared.unwrap_or(0) >= 1);
    let metrics = env.metrics().await;
    let series = format!(
        "vertice_backup_restores_total{{namespace=\"{}\",result=\"success\"}}",
        env.ns.name()
    );
    assert_eq!(sample(&metrics, &series), Some(1.0), "{metrics}");
    // Exactly one restore Job ran.
    let jobs = env
        .jobs()
        .list(&ListParams::default().labels("backup.vertice.dev/restore=copy"))
        .await
        .unwrap();
    assert_eq!(jobs.items.len(), 1);
    // Its work done, the restore leaves the operator's caches: labelled finished, like the
    // backup it restored from.
    let restores: Api<RestoreRequest> = Api::namespaced(env.client.clone(), env.ns.name());
    let finished = |labels: Option<std::collections::BTreeMap<String, String>>| {
        labels.and_then(|labels| labels.get(FINISHED).cloned()) == Some("true".to_owned())
    };
    eventually("the restore to be labelled finished", || async {
        finished(restores.get("copy").await.ok()?.metadata.labels).then_some(())
    })
    .await;
    eventually("its backup to be labelled finished", || async {
        finished(env.requests().get("nightly").await.ok()?.metadata.labels).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_waits_for_its_backup_and_fails_when_the_backup_failed() {
    let mut env = Env::new("rr-wait", true).await;
    env.start_kubelet().await;
    env.start_operator(&[], None).await;
    env.secret("wrong", &[("password", "not-the-password".to_owned())])
        .await;
    // The restore comes first: its BackupRequest does not exist yet.
    create_restore(
        &env,
        "early",
        json!({"source": {"backupRequestRef": {"name": "later"}}, "target": target(&env, json!({}))}),
    )
    .await;
    eventually("the restore to say its backup is missing", || async {
        let found = restores(&env).get("early").await.ok()?;
        (ready_reason(&found).as_deref() == Some("BackupRequestNotFound")).then_some(())
    })
    .await;
    // Then a backup that cannot succeed (wrong password): the restore fails with it, Job-less.
    env.inline_request(
        "later",
        json!({"target": env.target(env.pg.port(), "wrong")}),
        json!({}),
    )
    .await;
    env.wait_phase("later", RunPhase::Failed).await;
    let failed = wait_restore(&env, "early", RunPhase::Failed).await;
    let result = failed.status.unwrap().result.unwrap();
    assert_eq!(result.error_kind, Some(ErrorKind::NotFound));
    assert!(
        result.error_message.unwrap_or_default().contains("later"),
        "the message names the failed BackupRequest"
    );
    let jobs = env
        .jobs()
        .list(&ListParams::default().labels("backup.vertice.dev/restore=early"))
        .await
        .unwrap();
    assert!(jobs.items.is_empty(), "no restore Job for a failed backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_database_is_replaced_only_with_overwrite() {
    let env = env_with_backup("rr-overwrite").await;
    env.pg.create_database("reports").await.unwrap();
    env.pg
        .sql_in(
            "reports",
            "CREATE TABLE items (id bigint, name text); INSERT INTO items VALUES (1, 'keep me');",
        )
        .await
        .unwrap();
    let before = digest(&env, "reports").await;
    create_restore(
        &env,
        "refused",
        json!({
            "source": {"backupRequestRef": {"name": "nightly"}},
            "target": target(&env, json!({"database": "reports"})),
        }),
    )
    .await;
    let refused = wait_restore(&env, "refused", RunPhase::Failed).await;
    let result = refused.status.unwrap().result.unwrap();
    assert_eq!(
        result.error_kind,
        Some(ErrorKind::AlreadyExists),
        "{result:?}"
    );
    assert_eq!(
        digest(&env, "reports").await,
        before,
        "nothing was overwritten"
    );

    create_restore(
        &env,
        "replace",
        json!({
            "source": {"backupRequestRef": {"name": "nightly"}},
            "target": target(&env, json!({"database": "reports"})),
            "overwrite": true,
        }),
    )
    .await;
    wait_restore(&env, "replace", RunPhase::Succeeded).await;
    assert_eq!(digest(&env, "reports").await, digest(&env, "shop").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policys_restore_drill_verifies_and_leaves_no_scratch_database() {
    let env = env_with_backup("rr-drill").await;
    // A VerticeBackup whose schedule is far away: it only owns the drill.
    let policy: vertice_backup::api::VerticeBackup = serde_json::from_value(json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "VerticeBackup",
        "metadata": {"name": "shop"},
        "spec": {
            "target": env.target(env.pg.port(), "db"),
            "schedule": "0 0 1 1 *",
            "storage": env.storage(),
            "encryption": env.encryption(),
        },
    }))
    .unwrap();
    let policies: Api<vertice_backup::api::VerticeBackup> =
        Api::namespaced(env.client.clone(), env.ns.name());
    let policy = policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let owner = json!([{
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "VerticeBackup",
        "name": "shop",
        "uid": policy.metadata.uid.clone().unwrap(),
        "controller": true,
    }]);
    let object = json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "RestoreRequest",
        "metadata": {"name": "shop-verify", "ownerReferences": owner},
        "spec": {
            "source": {
                "storage": env.storage(),
                "backupName": "nightly",
                "encryption": env.encryption(),
            },
            "target": target(&env, json!({})),
            "verify": true,
        },
    });
    let drill: RestoreRequest = serde_json::from_value(object).unwrap();
    restores(&env)
        .create(&PostParams::default(), &drill)
        .await
        .unwrap();
    let done = wait_restore(&env, "shop-verify", RunPhase::Succeeded).await;
    let status = done.status.unwrap();
    let verification = status.verification.unwrap();
    assert_eq!(
        verification.result,
        VerificationResult::Passed,
        "{verification:?}"
    );
    assert!(
        verification.objects_compared.unwrap_or(0) >= 1,
        "{verification:?}"
    );
    let target = status.result.unwrap().target.unwrap_or_default();
    assert!(target.contains("removed"), "{target}");
    // The runner removed its scratch database; only the test's own databases remain.
    let leftovers = env
        .pg
        .sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'vertice_drill%' OR datname LIKE '%_restore_%'")
        .await
        .unwrap();
    assert_eq!(leftovers.trim(), "0", "a drill leaves no database behind");
}
