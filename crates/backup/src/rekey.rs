//! Re-wrapping a backup's data key under another key-encryption key: only the manifest
//! changes (its `encryption` and its seal), never a data object, so keys rotate without
//! re-uploading data.

use crate::error::BackupError;
use crate::keys::{KeyEncryptionKey, KeyRing, WrappedKey};
use crate::manifest::Manifest;
use crate::manifest_seal::{ManifestSealKey, unseal_data_key};

/// Re-wraps `manifest`'s data key (opened with a key of `keys`) under `new_key` and seals the
/// manifest again; returns the wrapping it replaced. The store is not touched.
pub fn rekey_manifest(
    manifest: &mut Manifest,
    keys: &KeyRing,
    new_key: &KeyEncryptionKey,
) -> Result<WrappedKey, BackupError> {
    // The seal is checked first: sealing an altered manifest again would make the
    // alteration look genuine.
    let (Some(old), Some(data_key)) = (
        manifest.encryption.clone(),
        unseal_data_key(manifest, keys)?,
    ) else {
        return Err(BackupError::Config(format!(
            "backup {} is not encrypted",
            manifest.name
        )));
    };
    let backup_id = manifest.backup_id_bytes()?;
    manifest.encryption = Some(new_key.wrap(&backup_id, &data_key)?);
    ManifestSealKey::derive(&data_key).seal(manifest)?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample;

    fn kek(byte: u8) -> KeyEncryptionKey {
        KeyEncryptionKey::from_material(&[byte; 32], None).unwrap()
    }

    /// A sample manifest encrypted (wrapped and sealed) under `key`.
    fn sealed_with(key: &KeyEncryptionKey) -> (Manifest, [u8; 32], WrappedKey) {
        let mut manifest = sample();
        let backup_id = manifest.backup_id_bytes().unwrap();
        let (data_key, wrapped) = key.new_data_key(&backup_id).unwrap();
        manifest.encryption = Some(wrapped.clone());
        ManifestSealKey::derive(&data_key)
            .seal(&mut manifest)
            .unwrap();
        (manifest, data_key, wrapped)
    }

    #[test]
    fn rekeying_rewraps_the_same_data_key_and_seals_again() {
        let (mut manifest, data_key, wrapped) = sealed_with(&kek(1));

        let backup_id = manifest.backup_id_bytes().unwrap();
        let replaced = rekey_manifest(&mut manifest, &KeyRing::new(vec![kek(1)]), &kek(2)).unwrap();
        assert_eq!(replaced, wrapped);
        let rewrapped = manifest.encryption.clone().unwrap();
        assert_eq!(rewrapped.key_id, kek(2).id());
        assert_eq!(kek(2).unwrap_key(&backup_id, &rewrapped).unwrap(), data_key);
        ManifestSealKey::derive(&data_key).check(&manifest).unwrap();
    }

    #[test]
    fn an_altered_manifest_is_not_sealed_again() {
        let (mut manifest, _, wrapped) = sealed_with(&kek(1));
        manifest.raw_size += 1;

        let error =
            rekey_manifest(&mut manifest, &KeyRing::new(vec![kek(1)]), &kek(2)).unwrap_err();
        assert!(matches!(error, BackupError::Integrity(_)), "{error}");
        assert_eq!(manifest.encryption, Some(wrapped), "left as it was");
    }
}
