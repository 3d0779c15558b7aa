//! `examples/backup/`: the demo applies these very files — one of each kind at the top, and
//! the project backup of `projects/` ([`PROJECT_EXAMPLE`]). They name the services by fixed,
//! documented addresses (PostgreSQL `127.0.0.1:5432`, S3 `http://127.0.0.1:9000`, bucket
//! `backups`); [`localize`] replaces exactly those fields with what the demo (or a test) started,
//! so the files stay realistic and one copy serves the demo, the tests and a reader.

use std::path::Path;

use anyhow::{Context, bail};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;

/// The field manager of the demo's server-side applies.
const FIELD_MANAGER: &str = "vertice-demo";

/// The kinds, in the order they are applied (a request names a policy, a restore a request).
pub const KINDS: [&str; 3] = ["VerticeBackup", "BackupRequest", "RestoreRequest"];

/// The project backup (a dump and a bucket copy in one run), under `examples/backup/`; applied
/// after the others.
pub const PROJECT_EXAMPLE: &str = "projects/project-backup.yaml";

/// Where the services the examples name really are.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// PostgreSQL host, e.g. `127.0.0.1`.
    pub database_host: String,
    /// PostgreSQL TCP port.
    pub database_port: u16,
    /// S3 endpoint URL, e.g. `http://127.0.0.1:41234`.
    pub s3_endpoint: String,
    /// The bucket backups go to.
    pub bucket: String,
}

/// One example file, parsed.
#[derive(Clone, Debug)]
pub struct Example {
    /// The file name, e.g. `verticebackup.yaml`.
    pub file: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// The whole object.
    pub object: Value,
}

/// The examples of `dir`, one per kind of [`KINDS`], in that order.
///
/// Errors: a file is unreadable or not one YAML object with `kind` and `metadata.name`, a kind
/// is missing, or appears twice.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Example>> {
    let mut examples = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        examples.push(load_file(&path, &entry.file_name().to_string_lossy())?);
    }
    let mut ordered = Vec::new();
    for kind in KINDS {
        let mut of_kind = examples.iter().filter(|example| example.kind == kind);
        match (of_kind.next(), of_kind.next()) {
            (Some(example), None) => ordered.push(example.clone()),
            (None, _) => bail!("{} has no {kind} example", dir.display()),
            (Some(first), Some(second)) => bail!(
                "{} has two {kind} examples ({} and {}): the demo applies one of each",
                dir.display(),
                first.file,
                second.file
            ),
        }
    }
    Ok(ordered)
}

/// The example in `path`, called `file` in messages.
///
/// Errors: the file is unreadable or not one YAML object with `kind` and `metadata.name`.
pub fn load_file(path: &Path, file: &str) -> anyhow::Result<Example> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let object: Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let (Some(kind), Some(name)) = (object["kind"].as_str(), object["metadata"]["name"].as_str())
    else {
        bail!("{} has no kind or metadata.name", path.display());
    };
    Ok(Example {
        file: file.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        object,
    })
}

/// The project backup example ([`PROJECT_EXAMPLE`]) of `dir`.
///
/// Errors: as [`load_file`]'s, or it is not a BackupRequest.
pub fn load_project(dir: &Path) -> anyhow::Result<Example> {
    let example = load_file(&dir.join(PROJECT_EXAMPLE), PROJECT_EXAMPLE)?;
    if example.kind != "BackupRequest" {
        bail!(
            "{PROJECT_EXAMPLE} is a {}, not a BackupRequest",
            example.kind
        );
    }
    Ok(example)
}

/// Points every database target and S3 store of `object` at `endpoints`: `host`/`port` of
/// `spec.target`, `endpoint`/`bucket` of `spec.storage` and `spec.source.storage`, and
/// `endpoint` of `spec.objectStore.source` (the bucket copied from keeps its name: the demo
/// creates it), when their `store` is `s3`. Nothing else changes.
pub fn localize(object: &mut Value, endpoints: &Endpoints) {
    if let Some(target) = object
        .pointer_mut("/spec/target")
        .and_then(Value::as_object_mut)
    {
        target.insert("host".into(), endpoints.database_host.clone().into());
        target.insert("port".into(), endpoints.database_port.into());
    }
    for path in ["/spec/storage", "/spec/source/storage"] {
        let Some(storage) = object.pointer_mut(path).and_then(Value::as_object_mut) else {
            continue;
        };
        if storage.get("store").and_then(Value::as_str) == Some("s3") {
            storage.insert("endpoint".into(), endpoints.s3_endpoint.clone().into());
            storage.insert("bucket".into(), endpoints.bucket.clone().into());
        }
    }
    if let Some(source) = object
        .pointer_mut("/spec/objectStore/source")
        .and_then(Value::as_object_mut)
        && source.get("store").and_then(Value::as_str) == Some("s3")
    {
        source.insert("endpoint".into(), endpoints.s3_endpoint.clone().into());
    }
}

/// Server-side applies `object` in `namespace` (its `apiVersion` and `kind` pick the API).
///
/// Errors: the object has no `apiVersion`, or the apiserver refused it (admission's message
/// names the field).
pub async fn apply(client: &kube::Client, namespace: &str, object: &Value) -> anyhow::Result<()> {
    let (Some(api_version), Some(kind), Some(name)) = (
        object["apiVersion"].as_str(),
        object["kind"].as_str(),
        object["metadata"]["name"].as_str(),
    ) else {
        bail!("an object to apply needs apiVersion, kind and metadata.name");
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let object: DynamicObject =
        serde_json::from_value(object.clone()).with_context(|| format!("{kind} {name}"))?;
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .with_context(|| format!("applying {kind} {name}"))?;
    Ok(())
}

/// Every Secret name the object refers to (any `…SecretRef.name`, also in lists), sorted.
pub fn secret_names(object: &Value) -> Vec<String> {
    fn walk(value: &Value, names: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key.ends_with("SecretRef") || key.ends_with("SecretRefs") {
                        collect_names(child, names);
                    }
                    walk(child, names);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, names)),
            _ => {}
        }
    }
    fn collect_names(value: &Value, names: &mut Vec<String>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| collect_names(item, names)),
            other => {
                if let Some(name) = other["name"].as_str() {
                    names.push(name.to_owned());
                }
            }
        }
    }
    let mut names = Vec::new();
    walk(object, &mut names);
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints {
            database_host: "10.1.2.3".into(),
            database_port: 15432,
            s3_endpoint: "http://127.0.0.1:39000".into(),
            bucket: "demo-bucket".into(),
        }
    }

    /// Every example the demo applies: one of each kind, then the project backup.
    fn examples() -> Vec<Example> {
        let dir = crate::workspace_root().join("examples/backup");
        let mut all = load(&dir).unwrap_or_else(|e| panic!("{e:#}"));
        all.push(load_project(&dir).unwrap_or_else(|e| panic!("{e:#}")));
        all
    }

    #[test]
    fn the_examples_hold_one_object_of_each_kind_in_apply_order() {
        let dir = crate::workspace_root().join("examples/backup");
        let loaded = load(&dir).unwrap_or_else(|e| panic!("{e:#}"));
        let kinds: Vec<_> = loaded.into_iter().map(|example| example.kind).collect();
        assert_eq!(kinds, KINDS);
    }

    #[test]
    fn the_project_example_dumps_a_database_and_copies_a_bucket_folder() {
        let dir = crate::workspace_root().join("examples/backup");
        let project = load_project(&dir).unwrap_or_else(|e| panic!("{e:#}"));
        let spec = &project.object["spec"];
        assert!(spec["target"].is_object(), "{spec}");
        assert_eq!(spec["objectStore"]["source"]["store"], "s3");
        assert_eq!(
            spec["objectStore"]["source"]["bucket"],
            super::super::uploads::UPLOADS_BUCKET
        );
    }

    #[test]
    fn localize_moves_every_target_and_s3_store_and_nothing_else() {
        for example in examples() {
            let mut object = example.object.clone();
            localize(&mut object, &endpoints());
            for path in ["/spec/target", "/spec/storage", "/spec/source/storage"] {
                let Some(section) = object.pointer(path) else {
                    continue;
                };
                if path == "/spec/target" {
                    assert_eq!(section["host"], "10.1.2.3", "{}", example.file);
                    assert_eq!(section["port"], 15432, "{}", example.file);
                } else if section["store"] == "s3" {
                    assert_eq!(section["endpoint"], "http://127.0.0.1:39000");
                    assert_eq!(section["bucket"], "demo-bucket");
                }
            }
            if let Some(source) = object.pointer("/spec/objectStore/source") {
                assert_eq!(source["endpoint"], "http://127.0.0.1:39000");
                assert_eq!(
                    source["bucket"], example.object["spec"]["objectStore"]["source"]["bucket"],
                    "the copied bucket keeps its name"
                );
            }
            // Put the example's own values back: then nothing else may differ.
            let mut restored = object.clone();
            for (path, fields) in [
                ("/spec/target", &["host", "port"][..]),
                ("/spec/storage", &["endpoint", "bucket"]),
                ("/spec/source/storage", &["endpoint", "bucket"]),
                ("/spec/objectStore/source", &["endpoint"]),
            ] {
                for field in fields {
                    let pointer = format!("{path}/{field}");
                    if let Some(value) = restored.pointer_mut(&pointer) {
                        *value = example
                            .object
                            .pointer(&pointer)
                            .cloned()
                            .unwrap_or(Value::Null);
                    }
                }
            }
            assert_eq!(restored, example.object, "{}", example.file);
        }
    }

    #[test]
    fn localize_leaves_non_s3_stores_and_missing_sections_alone() {
        let local = json!({"spec": {"storage": {"store": "local", "persistentVolumeClaim": {"name": "b"}}}});
        let gcs = json!({"spec": {"source": {"storage": {"store": "gcs", "bucket": "keep"}}}});
        let bare = json!({"spec": {"backupRef": {"name": "p"}}});
        for original in [local, gcs, bare] {
            let mut object = original.clone();
            localize(&mut object, &endpoints());
            assert_eq!(object, original);
        }
        let mut restore_from_storage =
            json!({"spec": {"source": {"storage": {"store": "s3", "bucket": "old"}}}});
        localize(&mut restore_from_storage, &endpoints());
        assert_eq!(
            restore_from_storage["spec"]["source"]["storage"]["bucket"],
            "demo-bucket"
        );
    }

    #[test]
    fn secret_names_are_found_at_any_depth_and_in_lists() {
        let object = json!({
            "spec": {
                "target": {"passwordSecretRef": {"name": "db", "key": "password"}},
                "encryption": {
                    "keySecretRef": {"name": "key", "key": "key"},
                    "previousKeySecretRefs": [{"name": "old-key", "key": "key"}]
                },
                "notifications": [{"webhook": {"urlSecretRef": {"name": "hook", "key": "url"}}}],
                "storage": {"credentialsSecretRef": {"name": "db"}}
            }
        });
        assert_eq!(secret_names(&object), ["db", "hook", "key", "old-key"]);
    }

    #[test]
    fn the_demo_creates_every_secret_the_examples_name() {
        let created = super::super::secrets::NAMES;
        for example in examples() {
            for name in secret_names(&example.object) {
                assert!(
                    created.contains(&name.as_str()),
                    "{} names Secret {name}, which the demo does not create",
                    example.file
                );
            }
        }
    }
}
