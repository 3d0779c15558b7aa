//! Finished runs leave the operator's caches (issue 7's memory target: 10,000 finished runs
//! must not cost the operator their size in memory).
//!
//! A BackupRequest or RestoreRequest whose work is all done — final status written, counted,
//! offered to the history archive and, for backups, post hooks and notifications sent — gets
//! the label [`FINISHED`](labels::FINISHED)`=true`. Every watch the operator keeps on the run
//! kinds selects [`unfinished`] runs, so a labelled run leaves the caches (the watches report
//! it as deleted) and costs nothing until it is deleted. Nothing else changes for the user: the
//! run keeps its status, and `kubectl get br` lists it.
//!
//! What still needs finished runs reads them with a paged list when the controller starts
//! ([`for_each_finished`]): the size gauge and the history archive (runs that finished while
//! the archive was behind are offered again, as before this label). A run finished by an
//! older operator has no label yet: it is in the cache, its reconcile finds its work done, and
//! labels it.

use kube::api::{ListParams, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use vertice_core::Context;

use super::labels;

/// Runs listed per page by the start-up pass: a bounded slice of memory however many runs
/// exist.
const PAGE_SIZE: u32 = 200;

/// The label selector of the runs still to work on: `!backup.vertice.dev/finished`.
pub fn unfinished() -> String {
    format!("!{}", labels::FINISHED)
}

/// `selector` (a label selector, may be empty) narrowed to [`unfinished`] runs.
pub fn unfinished_and(selector: &str) -> String {
    if selector.is_empty() {
        unfinished()
    } else {
        format!("{selector},{}", unfinished())
    }
}

/// Whether `run` carries the finished label.
pub fn is_labelled<K: Resource>(run: &K) -> bool {
    run.labels()
        .get(labels::FINISHED)
        .is_some_and(|value| value == "true")
}

/// The merge-patch body that marks a run finished (with any other `annotations`).
fn patch(annotations: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "labels": {labels::FINISHED: "true"},
            "annotations": annotations,
        }
    })
}

/// Labels `run` finished, and sets `annotations` (a JSON object, may be empty) in the same
/// write: it leaves the caches. A failure is logged, not returned: the run then stays cached,
/// and its next reconcile (at the latest after a restart) labels it.
pub async fn label<K>(run: &K, annotations: serde_json::Value, ctx: &Context)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = ctx.api(&run.namespace().unwrap_or_default());
    let body = patch(annotations);
    if let Err(error) = api
        .patch(
            &run.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
    {
        tracing::warn!(
            "cannot label the finished run {} (it stays cached until it is): {error}",
            run.name_any()
        );
    }
}

/// Calls `visit` with every finished (labelled) run of `K` in `namespace` (all namespaces for
/// `None`), one page of [`PAGE_SIZE`] at a time, until the list ends or `ctx` stops. Returns
/// how many runs it visited; a failed page is logged and ends the pass (the next start runs it
/// again).
pub async fn for_each_finished<K>(
    ctx: &Context,
    namespace: Option<&str>,
    mut visit: impl FnMut(&K),
) -> usize
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(namespace) => ctx.api(namespace),
        None => Api::all(ctx.client().clone()),
    };
    let selector = format!("{}=true", labels::FINISHED);
    let mut params = ListParams::default().labels(&selector).limit(PAGE_SIZE);
    let stop = ctx.stop_token();
    let mut visited = 0;
    loop {
        let page = tokio::select! {
            () = stop.cancelled() => return visited,
            page = api.list(&params) => page,
        };
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(
                    kind = K::kind(&()).as_ref(),
                    "the start-up pass over finished runs stopped: {error}"
                );
                return visited;
            }
        };
        for run in &page.items {
            visit(run);
        }
        visited += page.items.len();
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return visited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_exclude_finished_runs_and_keep_the_given_part() {
        assert_eq!(unfinished(), "!backup.vertice.dev/finished");
        assert_eq!(
            unfinished_and("app.kubernetes.io/managed-by=vertice-backup"),
            "app.kubernetes.io/managed-by=vertice-backup,!backup.vertice.dev/finished"
        );
        assert_eq!(unfinished_and(""), unfinished());
    }

    #[test]
    fn the_patch_sets_the_label_beside_the_given_annotations() {
        let body = patch(serde_json::json!({"a": "b"}));
        assert_eq!(
            body["metadata"]["labels"]["backup.vertice.dev/finished"],
            "true"
        );
        assert_eq!(body["metadata"]["annotations"]["a"], "b");
    }
}
