//! Work beside the reconcile proven against a REAL kube-apiserver (from vertice-testkit) with
//! the test-only `Widget` controller: background tasks per object (result, refusal of a second
//! task, cancellation on deletion, shutdown and lost leadership), condition times from an
//! injected clock, gauges computed from the cache, a label-selected cache and start hooks.

mod common;
mod widget;

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use common::eventually;
use k8s_openapi::{
    api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use vertice_core::{OperatorError, clock::ManualClock, tasks::SpawnRefused};
use widget::{
    RETIRED_LABEL, Setup, WAIT, WidgetSpec, create_widgets, plain, ready, setup, setup_with,
    system_clock_now, wait_ready, widget,
};

fn time(at: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(at.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_times_come_from_the_injected_clock() -> anyhow::Result<()> {
    // Far from the real time, so the wall clock cannot pass for it.
    let start = DateTime::parse_from_rfc3339("2031-05-06T07:08:09Z")?.with_timezone(&Utc);
    let setup = setup("core-clock", ManualClock::new(start)).await?;
    let clock = setup.operator.clock.clone();
    create_widgets(&setup, vec![widget("k", plain())]).await?;
    let created = setup.widgets.get("k").await?;
    assert_eq!(
        ready(&created).map(|c| c.last_transition_time.clone()),
        Some(time(start))
    );

    // The error path (Ready=False written by the runtime) reads the clock too.
    let broken_at = clock.advance(TimeDelta::minutes(90));
    setup
        .widgets
        .patch(
            "k",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"invalid": true}})),
        )
        .await?;
    let broken = wait_ready(&setup.widgets, "k", "False", "InvalidWidget").await?;
    assert_eq!(
        ready(&broken).map(|c| c.last_transition_time.clone()),
        Some(time(broken_at))
    );

    // Back to True 26 days later, across a month boundary.
    let fixed_at = clock.advance(TimeDelta::days(26));
    setup
        .widgets
        .patch(
            "k",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"invalid": false}})),
        )
        .await?;
    let fixed = wait_ready(&setup.widgets, "k", "True", "Reconciled").await?;
    assert_eq!(
        ready(&fixed).map(|c| c.last_transition_time.clone()),
        Some(time(fixed_at))
    );
    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_gauge_series_come_and_go_with_their_objects() -> anyhow::Result<()> {
    let setup = setup("core-gauge", system_clock_now()).await?;
    let ns = setup.ns.name().to_owned();
    let sized = |size: f64| WidgetSpec { size, ..plain() };
    create_widgets(
        &setup,
        vec![widget("g1", sized(7.5)), widget("g2", sized(2.0))],
    )
    .await?;
    let series = |name: &str, value: &str| {
        format!(r#"vertice_wiring_widget_size{{namespace="{ns}",widget="{name}"}} {value}"#)
    };
    let operator = &setup.operator;
    eventually("both series on /metrics", WAIT, || async {
        let body = operator.metrics().await.ok()?;
        (body.contains(&series("g1", "7.5")) && body.contains(&series("g2", "2.0"))).then_some(())
    })
    .await?;

    // A changed value shows on the next scrape; a deleted object's series disappears.
    setup
        .widgets
        .patch(
            "g2",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"size": 3.25}})),
        )
        .await?;
    setup.widgets.delete("g1", &DeleteParams::default()).await?;
    let body = eventually("g1's series to go and g2's to change", WAIT, || async {
        let body = operator.metrics().await.ok()?;
        (!body.contains(r#"widget="g1""#) && body.contains(&series("g2", "3.25"))).then_some(body)
    })
    .await?;
    assert!(
        body.contains("# TYPE vertice_wiring_widget_size gauge"),
        "{body}"
    );
    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_task_result_reaches_the_reconcile_its_end_triggers() -> anyhow::Result<()> {
    let setup = setup("core-tasks", system_clock_now()).await?;
    let journal = setup.operator.journal.clone();
    let with_task = WidgetSpec {
        task: true,
        ..plain()
    };
    setup
        .widgets
        .create(&PostParams::default(), &widget("job", with_task.clone()))
        .await?;
    wait_ready(&setup.widgets, "job", "False", "TaskRunning").await?;
    eventually("the task to start", WAIT, || async {
        (journal.task_starts("job") == 1).then_some(())
    })
    .await?;

    // Another reconcile while the task runs: a second spawn is refused.
    let job = setup.widgets.get("job").await?;
    setup.operator.trigger.reconcile_object(&job);
    eventually("the duplicate spawn to be refused", WAIT, || async {
        journal
            .refusals()
            .contains(&("job".to_owned(), SpawnRefused::AlreadyRunning))
            .then_some(())
    })
    .await?;

    // The task ends: that alone (no object change) reconciles the widget, which takes the result.
    journal.open_gate("job");
    let done = wait_ready(&setup.widgets, "job", "True", "Reconciled").await?;
    assert_eq!(
        done.status.and_then(|s| s.task_result).as_deref(),
        Some("done:job")
    );
    assert_eq!(journal.task_starts("job"), 1, "one task for one object");
    assert_eq!(
        done.metadata.generation,
        Some(1),
        "nothing but the task's end woke it"
    );

    // A widget deleted while its task runs: the task is cancelled once the controller next
    // looks at its tasks (here: a reconcile of all widgets).
    setup
        .widgets
        .create(&PostParams::default(), &widget("doomed", with_task))
        .await?;
    eventually("doomed's task to start", WAIT, || async {
        (journal.task_starts("doomed") == 1).then_some(())
    })
    .await?;
    setup
        .widgets
        .delete("doomed", &DeleteParams::default())
        .await?;
    eventually("doomed to be gone", WAIT, || async {
        matches!(setup.widgets.get_opt("doomed").await, Ok(None)).then_some(())
    })
    .await?;
    let cancelled = eventually("doomed's task to be cancelled", WAIT, || async {
        setup.operator.trigger.reconcile_all();
        let cancelled = journal.cancelled();
        cancelled
            .contains(&"doomed".to_owned())
            .then_some(cancelled)
    })
    .await?;
    assert!(!cancelled.contains(&"job".to_owned()), "{cancelled:?}");
    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_cancels_background_tasks_and_waits_for_them() -> anyhow::Result<()> {
    let setup = setup("core-task-stop", system_clock_now()).await?;
    let journal = setup.operator.journal.clone();
    let with_task = WidgetSpec {
        task: true,
        ..plain()
    };
    for name in ["long-1", "long-2"] {
        setup
            .widgets
            .create(&PostParams::default(), &widget(name, with_task.clone()))
            .await?;
    }
    eventually("both tasks to start", WAIT, || async {
        (journal.task_starts("long-1") == 1 && journal.task_starts("long-2") == 1).then_some(())
    })
    .await?;
    assert!(journal.cancelled().is_empty());
    // `stop` returns when `Operator::run` does; the tasks take 300 ms after the cancellation.
    setup.operator.stop().await?;
    let mut cancelled = journal.cancelled();
    cancelled.sort();
    assert_eq!(cancelled, vec!["long-1".to_owned(), "long-2".to_owned()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_leadership_cancels_background_tasks_before_the_operator_returns()
-> anyhow::Result<()> {
    let setup = setup_with("core-task-lost", system_clock_now(), true).await?;
    let journal = setup.operator.journal.clone();
    let leases: Api<Lease> = Api::namespaced(setup.client.clone(), setup.ns.name());
    let with_task = WidgetSpec {
        task: true,
        ..plain()
    };
    setup
        .widgets
        .create(&PostParams::default(), &widget("leader-work", with_task))
        .await?;
    eventually("the task to start", WAIT, || async {
        (journal.task_starts("leader-work") == 1).then_some(())
    })
    .await?;

    // Another replica takes the Lease (as after a long pause of this one): the next renewal
    // sees it and this replica must stop acting, its background task included.
    leases
        .patch(
            "wiring-leader",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"holderIdentity": "thief"}})),
        )
        .await?;
    let result = tokio::time::timeout(Duration::from_secs(30), setup.operator.task)
        .await
        .context("the operator did not stop within 30 s of losing the Lease")??;
    assert!(
        matches!(result, Err(OperatorError::LeadershipLost)),
        "{result:?}"
    );
    assert_eq!(journal.cancelled(), vec!["leader-work".to_owned()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unselected_widgets_stay_out_of_the_cache_and_the_start_hook_lists_them()
-> anyhow::Result<()> {
    let setup = setup("core-select", system_clock_now()).await?;
    let ns = setup.ns.name().to_owned();
    let retired = |name: &str, size: f64| {
        let mut object = widget(name, WidgetSpec { size, ..plain() });
        object.metadata.labels = Some([(RETIRED_LABEL.to_owned(), "yes".to_owned())].into());
        object
    };
    // The retired one first: had the watch taken it, it would be cached before "live".
    setup
        .widgets
        .create(&PostParams::default(), &retired("old", 1.5))
        .await?;
    create_widgets(
        &setup,
        vec![widget(
            "live",
            WidgetSpec {
                size: 2.0,
                ..plain()
            },
        )],
    )
    .await?;
    let series =
        |name: &str| format!(r#"vertice_wiring_widget_size{{namespace="{ns}",widget="{name}"}}"#);
    let body = eventually("the live widget's series", WAIT, || async {
        let body = setup.operator.metrics().await.ok()?;
        body.contains(&series("live")).then_some(body)
    })
    .await?;
    assert!(!body.contains(&series("old")), "{body}");
    assert_eq!(setup.operator.journal.applies("old"), 0);
    // The hook runs once per start; whether it listed "old" depends on whether it ran before
    // "old" was created (the restart below is the case that is sure).
    let first = eventually("the start hook", WAIT, || async {
        let listings = setup.operator.journal.start_listings();
        (!listings.is_empty()).then_some(listings)
    })
    .await?;
    assert!(
        first == vec![Vec::<String>::new()] || first == vec![vec!["old".to_owned()]],
        "{first:?}"
    );

    // Retiring an object takes it out of the cache (and so out of the gauge).
    setup
        .widgets
        .patch(
            "live",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {RETIRED_LABEL: "yes"}}})),
        )
        .await?;
    eventually("the retired widget's series to go", WAIT, || async {
        let body = setup.operator.metrics().await.ok()?;
        (!body.contains(&series("live"))).then_some(())
    })
    .await?;

    // A restarted operator's start hook sees both, in its own namespace.
    let Setup {
        client: _,
        ns: namespace,
        widgets: _,
        operator,
    } = setup;
    let clock = operator.clock.clone();
    operator.stop().await?;
    let cp = vertice_testkit::control_plane::ControlPlane::shared().await?;
    let restarted = widget::Running::start(cp, namespace.name(), clock, false).await?;
    eventually("the start hook of the restarted operator", WAIT, || async {
        (!restarted.journal.start_listings().is_empty()).then_some(())
    })
    .await?;
    assert_eq!(
        restarted.journal.start_listings(),
        vec![vec!["live".to_owned(), "old".to_owned()]]
    );
    restarted.stop().await
}
