//! Core's Event publisher against the real API server: kube's recorder folds repeated Events
//! into a series, and `normal_related` keeps Events about different related objects apart (an
//! Event that names the object it created must not be folded into the first one's note), and a
//! renewed recorder starts over.

#[allow(dead_code)] // the shared helpers; this file needs only `eventually`
mod common;

use std::time::Duration;

use common::eventually;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::{Api, Resource};
use vertice_core::events::Events;
use vertice_testkit::{control_plane::ControlPlane, namespace::TestNamespace};

const WAIT: Duration = Duration::from_secs(20);

async fn config_map(api: &Api<ConfigMap>, name: &str) -> anyhow::Result<ObjectReference> {
    let mut map = ConfigMap::default();
    map.metadata.name = Some(name.to_owned());
    Ok(api
        .create(&PostParams::default(), &map)
        .await?
        .object_ref(&()))
}

/// `(note, related object's name, series count)` of every `Created` Event about `regarding`.
async fn created_events(
    events: &Api<Event>,
    regarding: &str,
) -> anyhow::Result<Vec<(String, String, i32)>> {
    let mut found: Vec<_> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|event| {
            event.reason.as_deref() == Some("Created")
                && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding)
        })
        .map(|event| {
            (
                event.note.clone().unwrap_or_default(),
                event
                    .related
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default(),
                event.series.as_ref().map_or(1, |series| series.count),
            )
        })
        .collect();
    found.sort();
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_about_different_related_objects_are_not_folded() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    let ns = TestNamespace::create(&client, "core-events").await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let events: Api<Event> = Api::namespaced(client.clone(), ns.name());
    let parent = config_map(&maps, "parent").await?;
    let first = config_map(&maps, "child-1").await?;
    let second = config_map(&maps, "child-2").await?;
    let publisher = Events::new(client.clone(), "vertice-core-tests", "pod-0");

    publisher
        .normal_related(&parent, &first, "Created", "Create", "created child-1")
        .await;
    publisher
        .normal_related(&parent, &second, "Created", "Create", "created child-2")
        .await;
    // The same related object again: the recorder makes it a series of the first Event.
    publisher
        .normal_related(&parent, &first, "Created", "Create", "created child-1")
        .await;

    let wanted = vec![
        ("created child-1".to_owned(), "child-1".to_owned(), 2),
        ("created child-2".to_owned(), "child-2".to_owned(), 1),
    ];
    eventually(
        "two Created Events, child-1's with a series of 2",
        WAIT,
        || async {
            let found = created_events(&events, &parent.name.clone().unwrap_or_default())
                .await
                .ok()?;
            (found == wanted).then_some(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_recorder_forgets_what_it_published() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    let ns = TestNamespace::create(&client, "core-events-renew").await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let events: Api<Event> = Api::namespaced(client.clone(), ns.name());
    let parent = config_map(&maps, "parent").await?;
    let child = config_map(&maps, "child").await?;
    // A fresh recorder after every 2 publishes: the third repeat starts a new series, because
    // the recorder that remembered the first two (and their memory) is gone.
    let publisher = Events::with_rotation(client.clone(), "vertice-core-tests", "pod-0", 2);
    for _ in 0..3 {
        publisher
            .normal_related(&parent, &child, "Created", "Create", "created child")
            .await;
    }
    let wanted = vec![
        ("created child".to_owned(), "child".to_owned(), 1),
        ("created child".to_owned(), "child".to_owned(), 2),
    ];
    eventually(
        "a series of 2, then a new Event after the renewal",
        WAIT,
        || async {
            let found = created_events(&events, "parent").await.ok()?;
            (found == wanted).then_some(())
        },
    )
    .await?;
    Ok(())
}
