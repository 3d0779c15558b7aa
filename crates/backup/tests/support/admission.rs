//! Admission tests' helpers: the backup CRDs installed on the real apiserver, untyped APIs
//! (so specs the Rust types would refuse can be sent), the examples, and a runner of
//! refused cases. Shared by `api_admission*.rs` and `api_snapshot_admission.rs`.
#![allow(dead_code)]

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::crds::install_crds;
use vertice_testkit::namespace::TestNamespace;

pub const GROUP: &str = "backup.vertice.dev";
pub const VERSION: &str = "v1alpha1";

/// The shared control plane with the backup CRDs, and a new namespace named after `prefix`.
pub async fn setup(prefix: &str) -> (kube::Client, TestNamespace) {
    let control_plane = ControlPlane::shared().await.unwrap();
    let client = control_plane.admin_client().await.unwrap();
    install_crds(&client, &vertice_backup::crds())
        .await
        .unwrap();
    let namespace = TestNamespace::create(&client, prefix).await.unwrap();
    (client, namespace)
}

/// The API of backup `kind` objects in `namespace`, untyped (so invalid specs can be sent).
pub fn api(client: &kube::Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, VERSION, kind));
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// `examples/backup/<file>`.
pub fn example(file: &str) -> Value {
    workspace_yaml(&format!("examples/backup/{file}"))
}

/// The YAML file at `path` in the workspace.
pub fn workspace_yaml(path: &str) -> Value {
    let path = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `base` with the value at JSON pointer `path` replaced (or removed when `value` is None).
pub fn edit(base: &Value, path: &str, value: Option<Value>) -> Value {
    let mut copy = base.clone();
    let (parent, key) = path.rsplit_once('/').unwrap();
    let parent = copy
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    let map = parent.as_object_mut().unwrap();
    match value {
        Some(value) => {
            map.insert(key.to_owned(), value);
        }
        None => {
            map.remove(key);
        }
    }
    copy
}

/// Creates `object` as `name`; the apiserver's refusal as text.
pub async fn create(api: &Api<DynamicObject>, mut object: Value, name: &str) -> Result<(), String> {
    object["metadata"] = json!({"name": name});
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Tries every case; collects every case that was accepted or refused for another reason.
pub async fn expect_refused(
    api: &Api<DynamicObject>,
    cases: Vec<(&str, Value, &str)>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (index, (what, object, expected)) in cases.into_iter().enumerate() {
        match create(api, object, &format!("invalid-{index}")).await {
            Ok(()) => wrong.push(format!("{what}: accepted")),
            Err(message) if message.contains(expected) => {}
            Err(message) => wrong.push(format!(
                "{what}: refused with {message:?}, expected {expected:?}"
            )),
        }
    }
    wrong
}
