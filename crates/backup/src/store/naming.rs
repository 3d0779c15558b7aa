//! Each cloud's naming rules for the bucket or container a store names, checked before any
//! request: a name the cloud would refuse (or, worse, read as something else — a `/` in an S3
//! bucket becomes part of the object path on some requests and not on others) fails with an
//! invalid-configuration error that says which rule it breaks and, for a folder written into
//! the bucket, how to say it with `--prefix` instead.

use std::net::Ipv4Addr;

use super::{StoreConfig, StoreKind};
use crate::error::BackupError;

/// Checks the bucket/container (and Azure account) of `config` by its store's rules.
/// Errors: [`BackupError::Config`] naming the rule that is broken.
pub fn check_store_names(config: &StoreConfig) -> Result<(), BackupError> {
    let Some(bucket) = config.bucket.as_deref() else {
        return Ok(());
    };
    let (what, broken) = match config.store {
        StoreKind::Local => return Ok(()),
        StoreKind::S3 => ("S3 bucket", s3_bucket_rule(bucket)),
        StoreKind::Gcs => ("GCS bucket", gcs_bucket_rule(bucket)),
        StoreKind::Azure => {
            if let Some(account) = config.account.as_deref()
                && let Some(rule) = azure_account_rule(account)
            {
                return Err(BackupError::Config(format!(
                    "invalid Azure storage account name {account:?}: {rule}"
                )));
            }
            ("Azure container", azure_container_rule(bucket))
        }
    };
    match broken {
        None => Ok(()),
        Some(rule) => Err(BackupError::Config(format!(
            "invalid {what} name {bucket:?}: {rule}{}",
            folder_hint(bucket, &config.prefix)
        ))),
    }
}

/// For a bucket name holding a `/`: the `--bucket`/`--prefix` pair that says the same.
fn folder_hint(bucket: &str, prefix: &str) -> String {
    let Some((head, folder)) = bucket.split_once('/') else {
        return String::new();
    };
    let folder = folder.trim_matches('/');
    let prefix = prefix.trim_matches('/');
    let combined = match (folder.is_empty(), prefix.is_empty()) {
        (true, _) => prefix.to_string(),
        (false, true) => folder.to_string(),
        (false, false) => format!("{folder}/{prefix}"),
    };
    format!(
        "; a folder inside the bucket is given with --prefix: --bucket {head} --prefix {combined}"
    )
}

fn any_char_outside(name: &str, allowed: impl Fn(u8) -> bool) -> Option<char> {
    name.chars()
        .find(|c| !u8::try_from(*c).is_ok_and(|b| b.is_ascii() && allowed(b)))
}

fn bad_char(c: char, allowed: &str) -> String {
    if c == '/' {
        format!("it holds \"/\" (only {allowed} are allowed)")
    } else {
        format!("it holds {c:?} (only {allowed} are allowed)")
    }
}

fn starts_and_ends_alphanumeric(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// The S3 general purpose bucket naming rules, as Amazon states them in "General purpose bucket
/// naming rules" (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html):
/// 3–63 characters of lower-case letters, digits, `.` and `-`; starts and ends with a letter or
/// digit; no two adjacent dots; not shaped like an IPv4 address; none of the reserved prefixes
/// `xn--`, `sthree-`, `amzn-s3-demo-` and suffixes `-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`,
/// `--table-s3`. (Buckets made in us-east-1 before March 2018 could hold upper case and `_`;
/// such names are refused here, as virtual-hosted addressing cannot reach them either.)
/// Returns the broken rule, or `None`.
pub fn s3_bucket_rule(name: &str) -> Option<String> {
    const ALLOWED: &str = "a–z 0–9 . -";
    if let Some(c) = any_char_outside(name, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
    }) {
        return Some(bad_char(c, ALLOWED));
    }
    if !(3..=63).contains(&name.len()) {
        return Some(format!("it is {} characters long (3–63)", name.len()));
    }
    if !starts_and_ends_alphanumeric(name) {
        return Some("it must start and end with a letter or digit".into());
    }
    if name.contains("..") {
        return Some("it holds two adjacent dots".into());
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Some("it is formatted as an IP address".into());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Some(format!("the prefix {prefix:?} is reserved"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Some(format!("the suffix {suffix:?} is reserved"));
        }
    }
    None
}

/// The GCS bucket naming rules, as Google states them in "Bucket names"
/// (cloud.google.com/storage/docs/buckets#naming): lower-case letters, digits, `-`, `_` and
/// `.`; starts and ends with a letter or digit; 3–63 characters, or up to 222 when it holds
/// dots, with each dot-separated part at most 63; not an IPv4 address in dotted-decimal form;
/// does not start with `goog` nor contain `google` (nor its look-alikes such as `g00gle`).
/// Returns the broken rule, or `None`.
pub fn gcs_bucket_rule(name: &str) -> Option<String> {
    const ALLOWED: &str = "a–z 0–9 - _ .";
    if let Some(c) = any_char_outside(name, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
    }) {
        return Some(bad_char(c, ALLOWED));
    }
    let max = if name.contains('.') { 222 } else { 63 };
    if name.len() < 3 || name.len() > max {
        return Some(format!("it is {} characters long (3–{max})", name.len()));
    }
    if name
        .split('.')
        .any(|part| part.is_empty() || part.len() > 63)
    {
        return Some("each dot-separated part must be 1–63 characters".into());
    }
    if !starts_and_ends_alphanumeric(name) {
        return Some("it must start and end with a letter or digit".into());
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Some("it is formatted as an IP address".into());
    }
    if name.starts_with("goog") {
        return Some("it must not start with \"goog\"".into());
    }
    let folded: String = name
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            '3' => 'e',
            other => other,
        })
        .collect();
    if folded.contains("google") || folded.contains("googie") {
        return Some("it must not contain \"google\" or a look-alike".into());
    }
    None
}

/// The Azure Blob container naming rules, as Microsoft states them in "Naming and Referencing
/// Containers, Blobs, and Metadata" (learn.microsoft.com/rest/api/storageservices/
/// naming-and-referencing-containers--blobs--and-metadata): 3–63 characters of lower-case
/// letters, digits and `-`; starts with a letter or digit; every `-` is preceded and followed
/// by a letter or digit. `$root` (the root container) is also a valid name.
/// Returns the broken rule, or `None`.
pub fn azure_container_rule(name: &str) -> Option<String> {
    const ALLOWED: &str = "a–z 0–9 -";
    if name == "$root" {
        return None;
    }
    if let Some(c) = any_char_outside(name, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
    }) {
        return Some(bad_char(c, ALLOWED));
    }
    if !(3..=63).contains(&name.len()) {
        return Some(format!("it is {} characters long (3–63)", name.len()));
    }
    if !starts_and_ends_alphanumeric(name) || name.contains("--") {
        return Some("every \"-\" must stand between letters or digits".into());
    }
    None
}

/// Azure storage account names (same page as the container rules, and "Storage account
/// name" in learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules):
/// 3–24 lower-case letters and digits. Returns the broken rule, or `None`.
pub fn azure_account_rule(name: &str) -> Option<String> {
    if let Some(c) = any_char_outside(name, |b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Some(bad_char(c, "a–z 0–9"));
    }
    if !(3..=24).contains(&name.len()) {
        return Some(format!("it is {} characters long (3–24)", name.len()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long(n: usize) -> String {
        "a".repeat(n)
    }

    #[test]
    fn s3_bucket_names() {
        for good in ["bkt", "my.backups-2024", "a1b", &long(63), "0-0"] {
            assert_eq!(s3_bucket_rule(good), None, "{good:?} was refused");
        }
        for bad in [
            "bkt/team",
            "bkt/",
            "/bkt",
            "Bkt",
            "my_bucket",
            "ab",
            "",
            &long(64),
            "-bkt",
            "bkt-",
            ".bkt",
            "a..b",
            "192.168.5.4",
            "xn--bkt",
            "sthree-bkt",
            "amzn-s3-demo-bkt",
            "bkt-s3alias",
            "bkt--ol-s3",
            "bkt.mrap",
            "bkt--x-s3",
            "bkt--table-s3",
            "bkt team",
            "bkt\tteam",
            "bkt\0",
            "bückets",
            "bkt?x=1",
            "bkt#x",
            "bkt%2fteam",
            "bkt\\team",
        ] {
            assert!(s3_bucket_rule(bad).is_some(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn gcs_bucket_names() {
        for good in [
            "bkt",
            "my_backups-1",
            "a.b.c",
            &format!("{}.{}", long(63), long(63)),
        ] {
            assert_eq!(gcs_bucket_rule(good), None, "{good:?} was refused");
        }
        for bad in [
            "bkt/team",
            "Bkt",
            "ab",
            &long(64),
            &format!("{}.b", long(64)),
            &format!("{}.{}", long(63), long(200)),
            "a..b",
            "_bkt",
            "bkt_",
            "10.0.0.1",
            "goog-backups",
            "my-google-bkt",
            "my-g00gle-bkt",
            "bkt team",
            "bkt\n",
            "bückets",
        ] {
            assert!(gcs_bucket_rule(bad).is_some(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn azure_names() {
        for good in ["bkt", "backups-2024", "$root", &long(63), "a-b-c"] {
            assert_eq!(azure_container_rule(good), None, "{good:?} was refused");
        }
        for bad in [
            "bkt/team",
            "Backups",
            "my.backups",
            "my_backups",
            "ab",
            &long(64),
            "-bkt",
            "bkt-",
            "a--b",
            "$logs/x",
            "bkt team",
            "bückets",
        ] {
            assert!(azure_container_rule(bad).is_some(), "{bad:?} was accepted");
        }
        assert_eq!(azure_account_rule("devstoreaccount1"), None);
        for bad in ["Dev", "ab", &long(25), "dev-store", "dev.store"] {
            assert!(azure_account_rule(bad).is_some(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_folder_in_the_bucket_points_at_prefix() {
        let config = StoreConfig {
            store: StoreKind::S3,
            bucket: Some("bkt/team".into()),
            prefix: "nightly".into(),
            ..StoreConfig::default()
        };
        let message = check_store_names(&config).unwrap_err().to_string();
        assert!(
            message.contains("--bucket bkt --prefix team/nightly"),
            "{message}"
        );
        for store in [StoreKind::Gcs, StoreKind::Azure] {
            let config = StoreConfig {
                store,
                bucket: Some("bkt/team/".into()),
                ..StoreConfig::default()
            };
            let message = check_store_names(&config).unwrap_err().to_string();
            assert!(message.contains("--bucket bkt --prefix team"), "{message}");
        }
        let local = StoreConfig {
            store: StoreKind::Local,
            bucket: Some("whatever/x".into()),
            ..StoreConfig::default()
        };
        assert!(check_store_names(&local).is_ok());
    }
}
