//! History limits: a VerticeBackup keeps its newest `successfulRunsHistoryLimit` succeeded and
//! `failedRunsHistoryLimit` failed BackupRequests as objects (defaults 3 and 1, as a CronJob's)
//! and deletes older ones, oldest first. Deleting a BackupRequest never touches its stored
//! backup: what is stored follows `retention`.

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use crate::api::run::RunPhase;
use crate::api::{BackupRequest, VerticeBackup};

use super::scheduling::phase;

/// CronJob's default `successfulJobsHistoryLimit`.
pub const DEFAULT_SUCCESSFUL_LIMIT: usize = 3;
/// CronJob's default `failedJobsHistoryLimit`.
pub const DEFAULT_FAILED_LIMIT: usize = 1;

/// The two limits of `backup`.
pub fn limits(backup: &VerticeBackup) -> (usize, usize) {
    let limit = |value: Option<i32>, default: usize| {
        value.map_or(default, |value| usize::try_from(value).unwrap_or(0))
    };
    (
        limit(
            backup.spec.successful_runs_history_limit,
            DEFAULT_SUCCESSFUL_LIMIT,
        ),
        limit(backup.spec.failed_runs_history_limit, DEFAULT_FAILED_LIMIT),
    )
}

/// When a finished run finished: its completion time, else its creation.
pub fn finished_at(run: &BackupRequest) -> Option<DateTime<Utc>> {
    let completion = run
        .status
        .as_ref()
        .and_then(|status| status.times.completion_time.as_ref());
    completion
        .or(run.metadata.creation_timestamp.as_ref())
        .and_then(|time| DateTime::<Utc>::from_timestamp(time.0.as_second(), 0))
}

/// The finished runs beyond the limits, oldest first (ties broken by name). Runs being
/// deleted already are not listed again.
pub fn beyond_limits(
    runs: &[BackupRequest],
    successful_limit: usize,
    failed_limit: usize,
) -> Vec<String> {
    let mut doomed = Vec::new();
    for (wanted, limit) in [
        (RunPhase::Succeeded, successful_limit),
        (RunPhase::Failed, failed_limit),
    ] {
        let mut finished: Vec<&BackupRequest> = runs
            .iter()
            .filter(|run| phase(run) == wanted && run.metadata.deletion_timestamp.is_none())
            .collect();
        // Newest first.
        finished.sort_by(|a, b| {
            finished_at(b)
                .cmp(&finished_at(a))
                .then_with(|| b.name_any().cmp(&a.name_any()))
        });
        let mut old: Vec<&BackupRequest> = finished.into_iter().skip(limit).collect();
        old.reverse();
        doomed.extend(old.into_iter().map(ResourceExt::name_any));
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BackupRequestStatus;
    use crate::api::run::RunTimes;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn run(name: &str, phase: RunPhase, second: i64) -> BackupRequest {
        let mut run = BackupRequest::new(
            name,
            serde_json::from_str("{}").unwrap_or_else(|e| panic!("{e}")),
        );
        run.status = Some(BackupRequestStatus {
            phase,
            times: RunTimes {
                completion_time: Some(Time(
                    Timestamp::from_second(second).unwrap_or(Timestamp::UNIX_EPOCH),
                )),
                ..RunTimes::default()
            },
            ..BackupRequestStatus::default()
        });
        run
    }

    #[test]
    fn oldest_beyond_each_limit_go_first_and_active_runs_stay() {
        let runs = vec![
            run("s1", RunPhase::Succeeded, 10),
            run("s3", RunPhase::Succeeded, 30),
            run("s2", RunPhase::Succeeded, 20),
            run("s4", RunPhase::Succeeded, 40),
            run("f1", RunPhase::Failed, 15),
            run("f2", RunPhase::Failed, 25),
            run("r", RunPhase::Running, 5),
            run("p", RunPhase::Pending, 1),
        ];
        assert_eq!(beyond_limits(&runs, 3, 1), vec!["s1", "f1"]);
        assert_eq!(
            beyond_limits(&runs, 1, 0),
            vec!["s1", "s2", "s3", "f1", "f2"]
        );
        assert!(beyond_limits(&runs, 10, 10).is_empty());
    }
}
