//! Schema pieces every operator's CRD needs and schemars cannot express on its own.
//!
//! Used with `#[schemars(schema_with = "vertice_core::schema::conditions")]` on a status's
//! `conditions` field. Kubernetes merges such a list by key under server-side apply only when the
//! schema says so (`x-kubernetes-list-type: map`, keyed by `type`), the way built-in kinds'
//! conditions behave (API conventions, "Typical status properties").

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator};

/// The schema of a `conditions` list: `metav1.Condition` items, a list-map keyed by `type`.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".to_owned(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".to_owned(),
        serde_json::json!(["type"]),
    );
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_a_list_map_keyed_by_type() {
        let mut generator = schemars::generate::SchemaSettings::openapi3()
            .with(|s| s.inline_subschemas = true)
            .into_generator();
        let schema = conditions(&mut generator);
        let json = serde_json::to_value(&schema).unwrap_or_default();
        assert_eq!(json["x-kubernetes-list-type"], "map");
        assert_eq!(
            json["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
        assert_eq!(json["type"], "array");
        assert!(json["items"]["properties"]["lastTransitionTime"].is_object());
    }
}
