//! Key-encryption keys: loaded from a file (a mounted Secret) or an environment variable, named
//! by an id, and used to wrap each backup's random data key. The key bytes never reach a log,
//! an error message or a command line.

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::format::{BackupId, from_hex};
use crate::pipeline::encrypt::{KEY_LEN, open_with_nonce, random_bytes, seal_with_random_nonce};

const WRAP_AAD_MAGIC: &[u8; 8] = b"VRTXBKW1";

/// A key-encryption key and its id.
#[derive(Clone)]
pub struct KeyEncryptionKey {
    id: String,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyEncryptionKey {{ id: {:?}, key: <redacted> }}",
            self.id
        )
    }
}

/// The data key of one backup, wrapped by a key-encryption key (stored in the manifest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WrappedKey {
    /// Always `aes-256-gcm`.
    pub algorithm: String,
    /// Id of the key-encryption key that wraps the data key.
    pub key_id: String,
    /// The wrapping nonce, base64.
    pub nonce: String,
    /// The wrapped data key and its tag, base64.
    pub wrapped_key: String,
}

fn wrap_aad(backup_id: &BackupId, key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + backup_id.len() + key_id.len());
    aad.extend_from_slice(WRAP_AAD_MAGIC);
    aad.extend_from_slice(backup_id);
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

/// Checks a user-chosen key id: short, printable, no separators that would confuse a reader.
fn check_key_id(id: &str) -> Result<(), BackupError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if valid {
        Ok(())
    } else {
        Err(BackupError::Config(
            "an encryption key id is 1–128 characters of A–Z a–z 0–9 - _ . :".into(),
        ))
    }
}

impl KeyEncryptionKey {
    /// A key from its material: exactly 32 raw bytes, or (trimmed) 64 hex digits, or base64 of
    /// 32 bytes. `id` defaults to the key's fingerprint.
    pub fn from_material(material: &[u8], id: Option<String>) -> Result<Self, BackupError> {
        let key = parse_material(material).ok_or_else(|| {
            BackupError::Config(
                "an encryption key must be 32 raw bytes, 64 hex digits or base64 of 32 bytes"
                    .into(),
            )
        })?;
        let id = match id {
            Some(id) => {
                check_key_id(&id)?;
                id
            }
            None => fingerprint(&key),
        };
        Ok(KeyEncryptionKey { id, key })
    }

    /// Reads a key from a file (for example a mounted Kubernetes Secret key).
    pub fn from_file(path: &Path, id: Option<String>) -> Result<Self, BackupError> {
        let material = std::fs::read(path).map_err(|error| {
            BackupError::Config(format!(
                "cannot read the encryption key file {}: {error}",
                path.display()
            ))
        })?;
        Self::from_material(&material, id)
    }

    /// Reads a key from the environment variable `var`.
    pub fn from_env(var: &str, id: Option<String>) -> Result<Self, BackupError> {
        let material = std::env::var_os(var).ok_or_else(|| {
            BackupError::Config(format!("the environment variable {var} is not set"))
        })?;
        Self::from_material(material.as_encoded_bytes(), id)
    }

    /// The key's id, recorded in manifests.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Draws a fresh data key and wraps it; returns the data key and its wrapped form.
    pub fn new_data_key(
        &self,
        backup_id: &BackupId,
    ) -> Result<([u8; KEY_LEN], WrappedKey), BackupError> {
        let data_key: [u8; KEY_LEN] = random_bytes()?;
        let wrapped = self.wrap(backup_id, &data_key)?;
        Ok((data_key, wrapped))
    }

    /// Wraps a data key for backup `backup_id`.
    pub fn wrap(
        &self,
        backup_id: &BackupId,
        data_key: &[u8; KEY_LEN],
    ) -> Result<WrappedKey, BackupError> {
        let (nonce, sealed) =
            seal_with_random_nonce(&self.key, &wrap_aad(backup_id, &self.id), data_key)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(WrappedKey {
            algorithm: "aes-256-gcm".into(),
            key_id: self.id.clone(),
            nonce: b64.encode(nonce),
            wrapped_key: b64.encode(sealed),
        })
    }

    /// Unwraps a backup's data key; a wrong key is [`BackupError::WrongKey`].
    pub fn unwrap_key(
        &self,
        backup_id: &BackupId,
        wrapped: &WrappedKey,
    ) -> Result<[u8; KEY_LEN], BackupError> {
        if wrapped.algorithm != "aes-256-gcm" {
            return Err(BackupError::Integrity(format!(
                "unknown key wrapping algorithm {:?}",
                wrapped.algorithm
            )));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce: [u8; 12] = b64
            .decode(&wrapped.nonce)
            .ok()
            .and_then(|nonce| nonce.try_into().ok())
            .ok_or_else(|| BackupError::Integrity("the wrapped key's nonce is malformed".into()))?;
        let sealed = b64
            .decode(&wrapped.wrapped_key)
            .map_err(|_| BackupError::Integrity("the wrapped key is malformed".into()))?;
        let opened = open_with_nonce(
            &self.key,
            nonce,
            &wrap_aad(backup_id, &wrapped.key_id),
            sealed,
        )
        .ok_or_else(|| {
            BackupError::WrongKey(format!(
                "the key with id {:?} does not open this backup's data key",
                self.id
            ))
        })?;
        opened
            .try_into()
            .map_err(|_| BackupError::Integrity("the wrapped data key has the wrong length".into()))
    }
}

/// The keys a reader may use; it picks the one whose id the manifest names.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: Vec<KeyEncryptionKey>,
}

impl KeyRing {
    /// A ring of keys.
    pub fn new(keys: Vec<KeyEncryptionKey>) -> Self {
        KeyRing { keys }
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Unwraps a backup's data key with the key the manifest names (or, if the ids differ
    /// because a key was given an explicit id, with each key in turn).
    pub fn unwrap_key(
        &self,
        backup_id: &BackupId,
        wrapped: &WrappedKey,
    ) -> Result<[u8; KEY_LEN], BackupError> {
        if self.keys.is_empty() {
            return Err(BackupError::WrongKey(format!(
                "the backup is encrypted with key id {:?} and no key was supplied",
                wrapped.key_id
            )));
        }
        if let Some(key) = self.keys.iter().find(|key| key.id == wrapped.key_id) {
            return key.unwrap_key(backup_id, wrapped);
        }
        self.keys
            .iter()
            .find_map(|key| key.unwrap_key(backup_id, wrapped).ok())
            .ok_or_else(|| {
                BackupError::WrongKey(format!(
                    "the backup is encrypted with key id {:?}; none of the supplied keys opens it",
                    wrapped.key_id
                ))
            })
    }
}

fn parse_material(material: &[u8]) -> Option<[u8; KEY_LEN]> {
    let trimmed = std::str::from_utf8(material).ok().map(str::trim);
    if let Some(text) = trimmed {
        if let Some(bytes) = from_hex(text).and_then(|bytes| bytes.try_into().ok()) {
            return Some(bytes);
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        if let Some(bytes) = b64
            .decode(text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
        {
            return Some(bytes);
        }
    }
    material.try_into().ok()
}

/// `k-` and 16 hex digits derived from the key: tells keys apart, reveals nothing about them.
fn fingerprint(key: &[u8; KEY_LEN]) -> String {
    let derived = blake3::derive_key("vertice-backup key id v1", key);
    format!("k-{}", crate::format::to_hex(&derived[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: BackupId = [5u8; 16];

    #[test]
    fn material_in_every_accepted_form() {
        let raw = [0xabu8; 32];
        let hex = crate::format::to_hex(&raw);
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        for material in [
            raw.to_vec(),
            format!("{hex}\n").into_bytes(),
            b64.into_bytes(),
        ] {
            let key = KeyEncryptionKey::from_material(&material, None).unwrap();
            assert_eq!(key.key, raw);
            assert!(key.id().starts_with("k-") && key.id().len() == 18);
        }
        assert!(KeyEncryptionKey::from_material(b"short", None).is_err());
        assert!(KeyEncryptionKey::from_material(&raw, Some("bad id/".into())).is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = KeyEncryptionKey::from_material(&[0x41u8; 32], None).unwrap();
        assert!(!format!("{key:?}").contains("AAAA"));
        assert!(!format!("{key:?}").contains("65"));
    }

    #[test]
    fn wrap_unwrap_and_wrong_keys() {
        let kek = KeyEncryptionKey::from_material(&[1u8; 32], None).unwrap();
        let other = KeyEncryptionKey::from_material(&[2u8; 32], None).unwrap();
        let (data_key, wrapped) = kek.new_data_key(&ID).unwrap();
        assert_eq!(wrapped.key_id, kek.id());
        assert_eq!(kek.unwrap_key(&ID, &wrapped).unwrap(), data_key);
        assert!(matches!(
            other.unwrap_key(&ID, &wrapped),
            Err(BackupError::WrongKey(_))
        ));
        assert!(kek.unwrap_key(&[6u8; 16], &wrapped).is_err());
        let ring = KeyRing::new(vec![other.clone(), kek.clone()]);
        assert_eq!(ring.unwrap_key(&ID, &wrapped).unwrap(), data_key);
        let ring = KeyRing::new(vec![other]);
        assert!(matches!(
            ring.unwrap_key(&ID, &wrapped),
            Err(BackupError::WrongKey(_))
        ));
        assert!(matches!(
            KeyRing::default().unwrap_key(&ID, &wrapped),
            Err(BackupError::WrongKey(_))
        ));
    }

    #[test]
    fn rewrapping_keeps_the_data_key() {
        let old = KeyEncryptionKey::from_material(&[1u8; 32], None).unwrap();
        let new = KeyEncryptionKey::from_material(&[2u8; 32], Some("2026-q3".into())).unwrap();
        let (data_key, wrapped) = old.new_data_key(&ID).unwrap();
        let rewrapped = new
            .wrap(&ID, &old.unwrap_key(&ID, &wrapped).unwrap())
            .unwrap();
        assert_eq!(rewrapped.key_id, "2026-q3");
        assert_eq!(new.unwrap_key(&ID, &rewrapped).unwrap(), data_key);
    }
}
