//! Owned and watched kinds proven against a REAL kube-apiserver (from vertice-testkit) with the
//! test-only `Widget` controller: owned children (all, label-filtered, metadata-only), watched
//! kinds (a plain mapper and a reverse lookup through the controller's store), and triggers
//! from outside the watches.
//!
//! Where a test shows that something did NOT happen, it relies on the order of one watch
//! stream: the unwanted event would have come before a later wanted one on the same stream,
//! so once the wanted reconcile is seen, the unwanted one would have been too.

mod common;
mod widget;

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::reflector::ObjectRef,
};
use widget::{
    OWNED_LABEL, WIDGETS_ANNOTATION, WidgetSpec, config_map, create_widgets, data_patch, owned_by,
    plain, secret, setup, system_clock_now, widget,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_children_wake_their_owner_and_unselected_children_are_not_watched()
-> anyhow::Result<()> {
    let setup = setup("core-owns", system_clock_now()).await?;
    let ns = setup.ns.name();
    let journal = setup.operator.journal.clone();
    let config_maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), ns);
    create_widgets(
        &setup,
        vec![
            widget("p1", plain()),
            widget("p2", plain()),
            widget("q", plain()),
        ],
    )
    .await?;
    let p1 = setup.widgets.get("p1").await?;
    let p2 = setup.widgets.get("p2").await?;
    let q = setup.widgets.get("q").await?;

    // A child without the label, then one with it, on the same ConfigMap watch: only the
    // labelled one reaches the controller.
    let (p1_before, p2_before) = (journal.applies("p1"), journal.applies("p2"));
    config_maps
        .create(
            &PostParams::default(),
            &config_map(owned_by(&p1, "p1-plain", false), "1"),
        )
        .await?;
    config_maps
        .create(
            &PostParams::default(),
            &config_map(owned_by(&p2, "p2-labelled", true), "1"),
        )
        .await?;
    setup.operator.reconciled_after("p2", p2_before).await?;
    assert_eq!(
        journal.applies("p1"),
        p1_before,
        "an unlabelled child woke its owner"
    );

    // A change of the labelled child's data, then its deletion, reconcile the owner again.
    let before = journal.applies("p2");
    config_maps
        .patch(
            "p2-labelled",
            &PatchParams::default(),
            &data_patch("value", "2"),
        )
        .await?;
    setup.operator.reconciled_after("p2", before).await?;
    let before = journal.applies("p2");
    config_maps
        .delete("p2-labelled", &DeleteParams::default())
        .await?;
    setup.operator.reconciled_after("p2", before).await?;

    // Labelling the plain child brings it into the filtered watch: now it wakes its owner.
    let before = journal.applies("p1");
    config_maps
        .patch(
            "p1-plain",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {OWNED_LABEL: "yes"}}})),
        )
        .await?;
    setup.operator.reconciled_after("p1", before).await?;

    // A metadata-only owned kind: creating the Secret and changing its data wake the owner.
    let before = journal.applies("q");
    secrets
        .create(
            &PostParams::default(),
            &secret(owned_by(&q, "q-secret", false), "one"),
        )
        .await?;
    setup.operator.reconciled_after("q", before).await?;
    let before = journal.applies("q");
    secrets
        .patch(
            "q-secret",
            &PatchParams::default(),
            &data_patch("password", "dHdv"),
        )
        .await?;
    setup.operator.reconciled_after("q", before).await?;

    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_kinds_reconcile_the_mapped_primaries() -> anyhow::Result<()> {
    let setup = setup("core-watches", system_clock_now()).await?;
    let ns = setup.ns.name();
    let journal = setup.operator.journal.clone();
    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), ns);
    let accounts: Api<ServiceAccount> = Api::namespaced(setup.client.clone(), ns);
    for name in ["creds", "other"] {
        let metadata = ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        };
        secrets
            .create(&PostParams::default(), &secret(metadata, "s3cr3t"))
            .await?;
    }
    let using = |secret_name: &str| WidgetSpec {
        secret_name: Some(secret_name.to_owned()),
        ..plain()
    };
    create_widgets(
        &setup,
        vec![
            widget("a", using("creds")),
            widget("b", using("creds")),
            widget("c", using("other")),
            widget("d", plain()),
        ],
    )
    .await?;
    let before: HashMap<&str, usize> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| (n, journal.applies(n)))
        .collect();

    // Reverse lookup through the store: rotating `creds` reconciles every widget naming it.
    secrets
        .patch(
            "creds",
            &PatchParams::default(),
            &data_patch("password", "cm90YXRlZA=="),
        )
        .await?;
    setup.operator.reconciled_after("a", before["a"]).await?;
    setup.operator.reconciled_after("b", before["b"]).await?;
    assert_eq!(journal.applies("c"), before["c"], "c uses another Secret");
    assert_eq!(journal.applies("d"), before["d"], "d uses no Secret");
    let c_before = journal.applies("c");
    secrets
        .patch(
            "other",
            &PatchParams::default(),
            &data_patch("password", "eA=="),
        )
        .await?;
    setup.operator.reconciled_after("c", c_before).await?;

    // A plain mapper from another kind: the annotation names two widgets.
    let (a_before, d_before, b_before) = (
        journal.applies("a"),
        journal.applies("d"),
        journal.applies("b"),
    );
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("robot".to_owned()),
            annotations: Some([(WIDGETS_ANNOTATION.to_owned(), "a, d".to_owned())].into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    accounts.create(&PostParams::default(), &account).await?;
    setup.operator.reconciled_after("a", a_before).await?;
    setup.operator.reconciled_after("d", d_before).await?;
    assert_eq!(
        journal.applies("b"),
        b_before,
        "b is not named by the ServiceAccount"
    );

    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_reconciles_without_any_object_change() -> anyhow::Result<()> {
    let setup = setup("core-trigger", system_clock_now()).await?;
    let journal = setup.operator.journal.clone();
    let trigger = setup.operator.trigger.clone();
    create_widgets(&setup, vec![widget("t", plain()), widget("u", plain())]).await?;
    let t = setup.widgets.get("t").await?;

    let before = journal.applies("t");
    assert!(trigger.reconcile_object(&t));
    setup.operator.reconciled_after("t", before).await?;
    // An object that does not exist is dropped by the controller without harm.
    assert!(trigger.reconcile(ObjectRef::new("missing").within(setup.ns.name())));
    let (t_before, u_before) = (journal.applies("t"), journal.applies("u"));
    assert!(trigger.reconcile_all());
    setup.operator.reconciled_after("t", t_before).await?;
    setup.operator.reconciled_after("u", u_before).await?;
    // Nothing was written: the triggers changed no object.
    assert_eq!(
        setup.widgets.get("t").await?.resource_version(),
        t.resource_version(),
        "a reconcile with nothing to change writes nothing"
    );

    setup.operator.stop().await?;
    assert!(
        trigger.is_closed(),
        "the stopped controller dropped its receiver"
    );
    assert!(!trigger.reconcile_object(&t));
    Ok(())
}
