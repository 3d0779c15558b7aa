//! The backup operator's custom resources, `backup.vertice.dev/v1alpha1` (category `vertice`):
//! [`VerticeBackup`] (a policy with a schedule), [`BackupRequest`] (one run) and
//! [`RestoreRequest`] (one restore). Every field's doc comment is its `kubectl explain` text;
//! bounds, enums and CEL rules reject invalid specs at admission.

pub mod backup_request;
pub mod executor;
pub mod notify;
pub mod object_copy;
pub mod policy;
pub mod project;
pub mod refs;
pub mod restore_request;
pub mod run;
pub mod schedule;
pub mod snapshot;
pub mod storage;
pub mod target;
pub mod validation;
pub mod vertice_backup;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use backup_request::{BackupRequest, BackupRequestSpec, BackupRequestStatus};
pub use restore_request::{RestoreRequest, RestoreRequestSpec, RestoreRequestStatus};
pub use vertice_backup::{VerticeBackup, VerticeBackupSpec, VerticeBackupStatus};

/// The CRDs of this operator, in the order they are installed.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        VerticeBackup::crd(),
        BackupRequest::crd(),
        RestoreRequest::crd(),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Paths of schema properties without a description (no `kubectl explain` text).
    fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                let here = format!("{path}.{name}");
                let documented = property
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.trim().is_empty());
                if !documented && !matches!(path, "") {
                    out.push(here.clone());
                }
                undocumented(property, &here, out);
            }
        }
        if let Some(items) = schema.get("items") {
            undocumented(items, &format!("{path}[]"), out);
        }
    }

    #[test]
    fn every_field_has_explain_text() {
        for crd in super::crds() {
            let crd = serde_json::to_value(&crd).unwrap_or_default();
            let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut missing = Vec::new();
            for top in ["spec", "status"] {
                undocumented(&schema["properties"][top], top, &mut missing);
            }
            assert!(
                missing.is_empty(),
                "{}: fields without a description: {missing:?}",
                crd["metadata"]["name"]
            );
        }
    }

    #[test]
    fn kinds_are_in_the_vertice_category_with_short_names() {
        let names: Vec<(String, Vec<String>)> = super::crds()
            .into_iter()
            .map(|crd| {
                assert_eq!(crd.spec.names.categories, Some(vec!["vertice".to_owned()]));
                (
                    crd.spec.names.kind,
                    crd.spec.names.short_names.unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("VerticeBackup".to_owned(), vec!["vb".to_owned()]),
                ("BackupRequest".to_owned(), vec!["br".to_owned()]),
                ("RestoreRequest".to_owned(), vec!["rr".to_owned()]),
            ]
        );
    }
}
