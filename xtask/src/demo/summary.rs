//! What `--once` prints at the end: the backups made, the project backup's objects checked
//! against the documents the demo uploaded, and the restore checked against its source by the
//! demo's own row counts — or, when something failed, every condition of the
//! watched objects, the operator's last log lines and the notifications it sent.

use anyhow::bail;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use vertice_backup::api::BackupRequest;

use super::database::{self, RowCounts};
use super::progress::{self, Snapshot};
use super::stack::{NAMESPACE, Stack};

/// How many lines of each runner container's output a failure report shows.
const RUNNER_LOG_LINES: usize = 15;

/// Prints the summary of a successful demo and checks that the restored database has the
/// source's rows, table by table.
///
/// Errors: the restore target could not be counted, or its counts differ from the source's.
pub async fn print(stack: &Stack, snapshot: &Snapshot) -> anyhow::Result<()> {
    println!();
    println!("Summary");
    for (what, request) in [
        ("on-demand backup", &snapshot.on_demand),
        ("first scheduled backup", &snapshot.first_scheduled),
    ] {
        if let Some(request) = request {
            println!("  {what}:");
            for line in backup_lines(request) {
                println!("    {line}");
            }
        }
    }
    print_project(stack, snapshot)?;
    let restore_example = stack.example("RestoreRequest")?;
    let Some(target_database) = restore_example.object["spec"]["target"]["database"].as_str()
    else {
        bail!("the RestoreRequest example names no target database");
    };
    let restored = database::row_counts(&stack.postgres, target_database).await?;
    let source_total = database::total_rows(&stack.source_rows);
    println!("  restore {}:", restore_example.name);
    if let Some(result) = snapshot.restore.as_ref().and_then(|r| r.status.as_ref()) {
        if let Some(backup) = result
            .result
            .as_ref()
            .and_then(|r| r.backup_name.as_deref())
        {
            println!("    from backup {backup}");
        }
        if let Some(verification) = &result.verification {
            println!(
                "    operator's verification: {:?} ({} objects compared)",
                verification.result,
                verification.objects_compared.unwrap_or_default()
            );
        }
    }
    println!(
        "    target: database {target_database} on {}:{}: {} rows in {} tables (source {}: {} rows in {} tables)",
        stack.postgres.host(),
        stack.postgres.port(),
        database::total_rows(&restored),
        restored.len(),
        database::SOURCE_DATABASE,
        source_total,
        stack.source_rows.len()
    );
    let differences = differences(&stack.source_rows, &restored);
    if !differences.is_empty() {
        for line in &differences {
            println!("    DIFFERS {line}");
        }
        bail!("the restored database differs from its source");
    }
    println!("    every table has the source's row count (counted by the demo with SQL)");
    Ok(())
}

/// Prints the project backup and checks that it holds every uploaded document its globs do
/// not exclude.
///
/// Errors: it has no result, or its object count differs from what the demo uploaded.
fn print_project(stack: &Stack, snapshot: &Snapshot) -> anyhow::Result<()> {
    let Some(request) = &snapshot.project else {
        bail!("the project backup {} was not found", stack.project.name);
    };
    println!("  project backup (database dump + uploaded documents):");
    for line in backup_lines(request) {
        println!("    {line}");
    }
    let result = request.status.as_ref().and_then(|s| s.result.as_ref());
    let objects = result.and_then(|r| r.object_count);
    let seeded = stack.uploads;
    println!(
        "    objects: {} ({} copied, {} of {}) in the backup; the demo uploaded {} and the example excludes {}",
        objects.map_or("?".to_owned(), |n| n.to_string()),
        result.and_then(|r| r.objects_copied).unwrap_or_default(),
        progress::human_bytes(result.and_then(|r| r.object_bytes).unwrap_or_default()),
        super::uploads::UPLOADS_BUCKET,
        seeded.included + seeded.excluded,
        seeded.excluded
    );
    if objects != i64::try_from(seeded.included).ok() {
        bail!(
            "the project backup holds {objects:?} objects; {} were expected",
            seeded.included
        );
    }
    println!("    every uploaded document the globs do not exclude is in the backup");
    Ok(())
}

/// Prints why the demo did not succeed: every watched object's phase and conditions, the
/// operator's log tail, the runner Pods' output and how many failure notifications arrived.
/// `failed` names the cause.
pub async fn print_failure(
    client: &kube::Client,
    stack: &Stack,
    snapshot: &Snapshot,
    failed: &str,
) {
    eprintln!();
    eprintln!("FAILED: {failed}");
    let requests = [
        &snapshot.on_demand,
        &snapshot.first_scheduled,
        &snapshot.project,
    ];
    for request in requests.into_iter().flatten() {
        eprintln!(
            "  BackupRequest/{}: {:?}",
            request.metadata.name.as_deref().unwrap_or_default(),
            progress::br_phase(request)
        );
        if let Some(result) = request
            .status
            .as_ref()
            .and_then(|s| s.result.as_ref())
            .filter(|r| r.error_kind.is_some())
        {
            eprintln!(
                "    error: {:?}: {}",
                result.error_kind,
                result.error_message.as_deref().unwrap_or_default()
            );
        }
        for line in progress::condition_lines(progress::conditions_of_br(request)) {
            eprintln!("{line}");
        }
    }
    if let Some(restore) = &snapshot.restore {
        eprintln!(
            "  RestoreRequest/{}: {:?}",
            restore.metadata.name.as_deref().unwrap_or_default(),
            progress::rr_phase(restore)
        );
        if let Some(result) = restore
            .status
            .as_ref()
            .and_then(|s| s.result.as_ref())
            .filter(|r| r.error_kind.is_some())
        {
            eprintln!(
                "    error: {:?}: {}",
                result.error_kind,
                result.error_message.as_deref().unwrap_or_default()
            );
        }
        for line in progress::condition_lines(progress::conditions_of_rr(restore)) {
            eprintln!("{line}");
        }
    }
    eprintln!(
        "  failure notifications received by the demo's webhook: {}",
        stack.webhook.requests().len()
    );
    eprintln!(
        "  the operator's log ({}) ends:",
        stack.operator.log_path().display()
    );
    for line in stack.operator.log_tail(40).lines() {
        eprintln!("    {line}");
    }
    print_runner_logs(client, stack).await;
}

/// The last lines of every container the kubelet stand-in ran in the demo's namespace.
async fn print_runner_logs(client: &kube::Client, stack: &Stack) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let pods = match pods.list(&ListParams::default()).await {
        Ok(pods) => pods.items,
        Err(error) => {
            eprintln!("  listing the runner Pods failed: {error}");
            return;
        }
    };
    for pod in pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let containers = pod.spec.map(|spec| spec.containers).unwrap_or_default();
        for container in containers {
            let log = stack.kubelet.logs(NAMESPACE, &pod_name, &container.name);
            let lines: Vec<_> = log.lines().collect();
            eprintln!("  Pod {pod_name} container {} output ends:", container.name);
            for line in &lines[lines.len().saturating_sub(RUNNER_LOG_LINES)..] {
                eprintln!("    {line}");
            }
        }
    }
}

fn backup_lines(request: &BackupRequest) -> Vec<String> {
    let name = request.metadata.name.as_deref().unwrap_or_default();
    let Some(result) = request.status.as_ref().and_then(|s| s.result.as_ref()) else {
        return vec![format!("BackupRequest/{name}: no result")];
    };
    let mut lines = vec![format!(
        "BackupRequest/{name} -> backup {}",
        result.backup_name.as_deref().unwrap_or("?")
    )];
    if let (Some(stored), Some(raw)) = (result.stored_size, result.raw_size) {
        lines.push(format!(
            "size: {} stored ({} raw)",
            progress::human_bytes(stored),
            progress::human_bytes(raw)
        ));
    }
    if let Some(location) = &result.location {
        lines.push(format!("location: {location}"));
    }
    lines
}

/// `table: source N, restored M` for every table whose counts differ or that is missing on
/// one side.
fn differences(source: &RowCounts, restored: &RowCounts) -> Vec<String> {
    let tables: std::collections::BTreeSet<_> = source.keys().chain(restored.keys()).collect();
    tables
        .into_iter()
        .filter(|table| source.get(*table) != restored.get(*table))
        .map(|table| {
            let show = |count: Option<&u64>| count.map_or("missing".to_owned(), u64::to_string);
            format!(
                "{table}: source {}, restored {}",
                show(source.get(table)),
                show(restored.get(table))
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(entries: &[(&str, u64)]) -> RowCounts {
        entries.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    #[test]
    fn equal_counts_have_no_differences() {
        let source = counts(&[("public.a", 3), ("s.\"b c\"", 0)]);
        assert!(differences(&source, &source.clone()).is_empty());
    }

    #[test]
    fn every_kind_of_difference_is_named() {
        let source = counts(&[("public.a", 3), ("public.b", 5)]);
        let restored = counts(&[("public.a", 2), ("public.c", 1)]);
        assert_eq!(
            differences(&source, &restored),
            [
                "public.a: source 3, restored 2",
                "public.b: source 5, restored missing",
                "public.c: source missing, restored 1",
            ]
        );
    }
}
