//! The GCS object store: object_store's `GoogleCloudStorage` for everything but writes, which
//! go through the JSON API instead of the XML API object_store writes with. Both APIs are
//! Google's and work on real GCS; GCS emulators such as fake-gcs-server implement only the
//! JSON one, so this way one client works on both.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::gcp::GoogleCloudStorage;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions,
};

use super::error::ApiError;
use super::json_api::JsonApi;
use super::resumable::ResumableUpload;

/// A GCS bucket that reads through object_store and writes through the JSON API.
#[derive(Debug)]
pub(crate) struct GcsStore {
    inner: GoogleCloudStorage,
    api: Arc<JsonApi>,
}

impl GcsStore {
    /// Wraps `inner`; `api` must address the same bucket with the same credentials.
    pub(crate) fn new(inner: GoogleCloudStorage, api: JsonApi) -> Self {
        GcsStore {
            inner,
            api: Arc::new(api),
        }
    }
}

impl fmt::Display for GcsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait::async_trait]
impl ObjectStore for GcsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        // Tags do not exist in GCS; object_store's contract is to ignore them.
        let metadata = object_resource(location, &opts.attributes)?;
        let (generation_match, create) = match &opts.mode {
            PutMode::Overwrite => (None, false),
            PutMode::Create => (Some("0"), true),
            PutMode::Update(version) => {
                let generation = version.version.as_deref().ok_or_else(|| {
                    ApiError::protocol(format!(
                        "updating {location} needs the object's generation (a PutResult version)"
                    ))
                    .into_store_error(location, false)
                })?;
                (Some(generation), false)
            }
        };
        self.api
            .upload(location, &metadata, payload, generation_match)
            .await
            .map_err(|error| error.into_store_error(location, create))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let metadata = object_resource(location, &opts.attributes)?;
        let session = self
            .api
            .start_session(location, &metadata)
            .await
            .map_err(|error| error.into_store_error(location, false))?;
        Ok(Box::new(ResumableUpload::new(
            Arc::clone(&self.api),
            location.clone(),
            session,
        )))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    /// Through the XML API (object_store's own): works on real GCS, not on fake-gcs-server.
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    /// Through the XML API (object_store's own): works on real GCS, not on fake-gcs-server.
    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// The JSON API object resource a write starts with: the name, and the attributes as the
/// resource's fields. The content type defaults to `application/octet-stream`.
fn object_resource(
    location: &Path,
    attributes: &Attributes,
) -> object_store::Result<serde_json::Value> {
    let mut resource = serde_json::Map::new();
    resource.insert("name".into(), location.as_ref().into());
    resource.insert("contentType".into(), "application/octet-stream".into());
    let mut custom = serde_json::Map::new();
    for (attribute, value) in attributes {
        let value = serde_json::Value::from(value.as_ref());
        let field = match attribute {
            Attribute::ContentType => "contentType",
            Attribute::ContentEncoding => "contentEncoding",
            Attribute::ContentDisposition => "contentDisposition",
            Attribute::ContentLanguage => "contentLanguage",
            Attribute::CacheControl => "cacheControl",
            Attribute::StorageClass => "storageClass",
            Attribute::Metadata(key) => {
                custom.insert(key.to_string(), value);
                continue;
            }
            // A newer object_store's attribute: refuse rather than drop it silently.
            unknown => {
                return Err(object_store::Error::NotImplemented {
                    operation: format!("the {unknown:?} attribute"),
                    implementer: "GcsStore".into(),
                });
            }
        };
        resource.insert(field.into(), value);
    }
    if !custom.is_empty() {
        resource.insert("metadata".into(), custom.into());
    }
    Ok(resource.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::AttributeValue;

    #[test]
    fn resources_name_the_object_and_default_the_content_type() {
        let resource =
            object_resource(&Path::from("team/x/manifest.json"), &Attributes::new()).unwrap();
        assert_eq!(
            resource,
            serde_json::json!({
                "name": "team/x/manifest.json",
                "contentType": "application/octet-stream",
            })
        );
    }

    #[test]
    fn attributes_become_resource_fields() {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, AttributeValue::from("text/plain"));
        attributes.insert(Attribute::CacheControl, AttributeValue::from("no-store"));
        attributes.insert(Attribute::StorageClass, AttributeValue::from("NEARLINE"));
        attributes.insert(
            Attribute::Metadata("backup".into()),
            AttributeValue::from("nightly"),
        );
        let resource = object_resource(&Path::from("a"), &attributes).unwrap();
        assert_eq!(
            resource,
            serde_json::json!({
                "name": "a",
                "contentType": "text/plain",
                "cacheControl": "no-store",
                "storageClass": "NEARLINE",
                "metadata": { "backup": "nightly" },
            })
        );
    }
}
