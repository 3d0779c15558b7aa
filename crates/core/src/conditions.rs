//! Conditions that follow the Kubernetes API conventions.
//!
//! Operators describe the conditions they want (type, status, reason, message) and the runtime
//! merges them with what the object already has: `lastTransitionTime` is kept unless `status`
//! flipped, and `observedGeneration` is the generation that was reconciled. That keeps the status
//! deterministic, so writing it only when it changed really means "only on a change".

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// The condition every Vértice resource has: the summary a user (and `kubectl wait`) looks at.
pub const READY: &str = "Ready";

/// Reason of `Ready=True` when the operator did not give a more specific one.
pub const REASON_RECONCILED: &str = "Reconciled";

/// The three values of a condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell (yet).
    Unknown,
}

impl ConditionStatus {
    /// The API spelling: `True`, `False` or `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds { Self::True } else { Self::False }
    }
}

/// A condition as an operator wants it. `lastTransitionTime` and `observedGeneration` are
/// placeholders here; [`merge`] fills them in.
pub fn new(
    type_: &str,
    status: impl Into<ConditionStatus>,
    reason: &str,
    message: impl Into<String>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.into().as_str().to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: None,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// The condition of type `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|condition| condition.type_ == type_)
}

/// Whether the condition `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|condition| condition.status == "True")
}

/// The current wall-clock time at whole-second precision (see [`time`]). The runtime stamps
/// conditions with [`Context::now`](crate::Context::now) instead, so that an injected
/// [`Clock`](crate::clock::Clock) decides it.
pub fn now() -> Time {
    time(chrono::Utc::now())
}

/// `at` as a condition time at whole-second precision: the API stores `Time` in seconds, so a
/// finer value would never compare equal to what we read back.
pub fn time(at: chrono::DateTime<chrono::Utc>) -> Time {
    Time(Timestamp::from_second(at.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The conditions to write: `desired` in order, each stamped with `generation`, keeping the
/// previous `lastTransitionTime` of a condition whose `status` did not change and using `now`
/// for new conditions and flips. Conditions only in `previous` are dropped: the operator reports
/// the full set every time.
pub fn merge(
    previous: &[Condition],
    desired: Vec<Condition>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .into_iter()
        .map(|mut condition| {
            condition.observed_generation = generation;
            condition.last_transition_time = match find(previous, &condition.type_) {
                Some(old) if old.status == condition.status => old.last_transition_time.clone(),
                _ => now.clone(),
            };
            condition
        })
        .collect()
}

/// Sets one condition in `conditions` (replacing the one of the same type, keeping the others and
/// their order) with the same time rules as [`merge`]. Used when only `Ready` changes, e.g. on an
/// error, and the operator's other conditions stay as they were.
pub fn set(
    conditions: &mut Vec<Condition>,
    desired: Condition,
    generation: Option<i64>,
    now: &Time,
) {
    let merged = merge(conditions, vec![desired], generation, now);
    for condition in merged {
        match conditions
            .iter_mut()
            .find(|old| old.type_ == condition.type_)
        {
            Some(slot) => *slot = condition,
            None => conditions.insert(0, condition),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    #[test]
    fn new_condition_gets_now_and_generation() {
        let merged = merge(
            &[],
            vec![new(READY, true, "Reconciled", "")],
            Some(3),
            &at(100),
        );
        assert_eq!(merged[0].last_transition_time, at(100));
        assert_eq!(merged[0].observed_generation, Some(3));
        assert_eq!(merged[0].status, "True");
    }

    #[test]
    fn unchanged_status_keeps_transition_time_even_if_reason_changes() {
        let previous = merge(&[], vec![new(READY, true, "A", "a")], Some(1), &at(100));
        let merged = merge(
            &previous,
            vec![new(READY, true, "B", "b")],
            Some(2),
            &at(200),
        );
        assert_eq!(merged[0].last_transition_time, at(100));
        assert_eq!(merged[0].reason, "B");
        assert_eq!(merged[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let previous = merge(&[], vec![new(READY, true, "A", "")], Some(1), &at(100));
        let merged = merge(
            &previous,
            vec![new(READY, false, "Broken", "")],
            Some(1),
            &at(200),
        );
        assert_eq!(merged[0].last_transition_time, at(200));
    }

    #[test]
    fn merge_is_idempotent() {
        let first = merge(&[], vec![new(READY, true, "A", "m")], Some(1), &at(100));
        let second = merge(&first, vec![new(READY, true, "A", "m")], Some(1), &at(500));
        assert_eq!(first, second);
    }

    #[test]
    fn set_replaces_one_type_and_keeps_others() {
        let mut conditions = merge(
            &[],
            vec![new(READY, true, "A", ""), new("Synced", true, "A", "")],
            Some(1),
            &at(100),
        );
        set(
            &mut conditions,
            new(READY, false, "Bad", "no"),
            Some(2),
            &at(200),
        );
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].last_transition_time, at(200));
        assert_eq!(conditions[1].last_transition_time, at(100));
        assert_eq!(conditions[1].observed_generation, Some(1));
        assert!(!is_true(&conditions, READY));
        assert!(is_true(&conditions, "Synced"));
    }

    #[test]
    fn time_drops_sub_seconds() {
        let instant =
            chrono::DateTime::from_timestamp(1_700_000_123, 999_000_000).unwrap_or_default();
        assert_eq!(time(instant), at(1_700_000_123));
    }

    #[test]
    fn set_inserts_missing_ready_first() {
        let mut conditions = merge(&[], vec![new("Synced", true, "A", "")], Some(1), &at(1));
        set(
            &mut conditions,
            new(READY, false, "Bad", ""),
            Some(1),
            &at(2),
        );
        assert_eq!(conditions[0].type_, READY);
    }
}
