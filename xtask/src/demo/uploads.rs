//! The documents the project backup example copies: the `uploads` bucket on the demo's S3
//! server with a folder of a shop's uploaded files under `shop/documents/`, some of them
//! generated files the example excludes (thumbnails, `*.tmp`). Names hold spaces, `+` and
//! non-ASCII letters, as users' uploads do.

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use vertice_testkit::services::s3::S3Server;

/// The bucket the project example copies from (`spec.objectStore.source.bucket`).
pub const UPLOADS_BUCKET: &str = "uploads";

/// The folder the example copies (`spec.objectStore.prefix`).
const PREFIX: &str = "shop/documents/";

/// The uploaded files: (key under [`PREFIX`], whether the example's `exclude` globs skip it).
const FILES: [(&str, bool); 8] = [
    ("invoices/2026-11/invoice 0001.pdf", false),
    ("invoices/2026-11/invoice 0002.pdf", false),
    ("contracts/contrat signé + annexe.txt", false),
    ("contracts/renewal (2027).txt", false),
    ("photos/vitrine-été.jpg", false),
    ("photos/thumbnails/vitrine-été.jpg", true),
    ("photos/thumbnails/deep/er/still.jpg", true),
    ("exports/upload-42.tmp", true),
];

/// What was seeded: the objects the example copies and those it excludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seeded {
    /// Objects the copy takes.
    pub included: usize,
    /// Objects its `exclude` globs skip.
    pub excluded: usize,
}

/// Creates [`UPLOADS_BUCKET`] on `s3` and writes the files through the S3 API.
///
/// Errors: the bucket exists already, or the server refused a write.
pub async fn seed(s3: &S3Server) -> anyhow::Result<Seeded> {
    s3.create_bucket(UPLOADS_BUCKET)?;
    let store = AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region(s3.region())
        .with_bucket_name(UPLOADS_BUCKET)
        .with_access_key_id(s3.access_key())
        .with_secret_access_key(s3.secret_key())
        .build()?;
    let mut seeded = Seeded {
        included: 0,
        excluded: 0,
    };
    for (index, (name, excluded)) in FILES.iter().enumerate() {
        let key = format!("{PREFIX}{name}");
        let body = format!("document {index}: {name}\n").repeat(64 * (index + 1));
        store
            .put(&Path::parse(&key)?, PutPayload::from(body.into_bytes()))
            .await?;
        if *excluded {
            seeded.excluded += 1;
        } else {
            seeded.included += 1;
        }
    }
    Ok(seeded)
}
