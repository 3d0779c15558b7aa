//! The seal of an encrypted backup's manifest: a BLAKE3 keyed hash (a MAC) over the whole
//! manifest but the seal itself, under a key derived from the backup's data key.
//!
//! The chunk tags already authenticate the data, its order and its end; the seal covers what
//! only the manifest says — the dump-time row and key counts a drill compares against, the
//! labels, the source versions, the sizes. Only a holder of a key-encryption key that unwraps
//! the data key can make a valid seal, so write access to the store is not enough to change
//! what a drill checks. An unencrypted backup has no key and therefore no seal.
//!
//! What is sealed is the manifest's JSON as this crate serialises it with `seal` left out:
//! every map in it is ordered (`BTreeMap`) and it holds no floating-point numbers, so reading a
//! manifest and serialising it again gives the same bytes.

use crate::error::BackupError;
use crate::keys::KeyRing;
use crate::manifest::Manifest;
use crate::pipeline::encrypt::KEY_LEN;

/// BLAKE3 key-derivation context; changing it invalidates every seal.
const SEAL_KEY_CONTEXT: &str = "vertice-backup manifest seal v1";

/// The data key of an encrypted backup, unwrapped with one of `keys`, once the manifest's seal
/// has been checked with it; `None` for an unencrypted backup. Every reader that opens a
/// backup comes through here, so none can use an unchecked manifest.
pub fn unseal_data_key(
    manifest: &Manifest,
    keys: &KeyRing,
) -> Result<Option<[u8; KEY_LEN]>, BackupError> {
    let Some(wrapped) = &manifest.encryption else {
        return Ok(None);
    };
    let data_key = keys.unwrap_key(&manifest.backup_id_bytes()?, wrapped)?;
    ManifestSealKey::derive(&data_key).check(manifest)?;
    Ok(Some(data_key))
}

/// The key that seals one backup's manifest.
pub struct ManifestSealKey {
    key: [u8; 32],
}

impl std::fmt::Debug for ManifestSealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManifestSealKey(<redacted>)")
    }
}

impl ManifestSealKey {
    /// Derives the seal key from the backup's data key.
    pub fn derive(data_key: &[u8; KEY_LEN]) -> Self {
        ManifestSealKey {
            key: blake3::derive_key(SEAL_KEY_CONTEXT, data_key),
        }
    }

    /// Sets `manifest.seal` for the manifest as it is now.
    pub fn seal(&self, manifest: &mut Manifest) -> Result<(), BackupError> {
        manifest.seal = None;
        let mac = self.mac(manifest)?;
        manifest.seal = Some(mac.to_hex().to_string());
        Ok(())
    }

    /// Checks `manifest.seal`; a missing or wrong seal is an integrity error.
    pub fn check(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let altered = || {
            BackupError::Integrity(format!(
                "the manifest of backup {:?} does not match its seal: it was altered after \
                 the backup was made",
                manifest.name
            ))
        };
        let stored = manifest.seal.as_deref().ok_or_else(|| {
            BackupError::Integrity(format!(
                "the manifest of encrypted backup {:?} carries no seal",
                manifest.name
            ))
        })?;
        let stored = blake3::Hash::from_hex(stored).map_err(|_| altered())?;
        let mut unsealed = manifest.clone();
        unsealed.seal = None;
        // blake3::Hash compares in constant time.
        if self.mac(&unsealed)? == stored {
            Ok(())
        } else {
            Err(altered())
        }
    }

    fn mac(&self, unsealed: &Manifest) -> Result<blake3::Hash, BackupError> {
        let bytes = serde_json::to_vec(unsealed).map_err(|error| {
            BackupError::Internal(format!("cannot serialise a manifest: {error}"))
        })?;
        Ok(blake3::keyed_hash(&self.key, &bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::manifest::tests::sample;
    use crate::source::ObjectCounts;

    fn sealed(data_key: u8) -> (ManifestSealKey, Manifest) {
        let key = ManifestSealKey::derive(&[data_key; KEY_LEN]);
        let mut manifest = sample();
        manifest.counts = Some(ObjectCounts::Tables(BTreeMap::from([
            ("public.a".to_string(), 10),
            ("public.b".to_string(), 20),
        ])));
        manifest.labels = BTreeMap::from([("schedule".into(), "nightly".into())]);
        key.seal(&mut manifest).unwrap();
        (key, manifest)
    }

    #[test]
    fn a_sealed_manifest_checks_after_a_trip_through_json() {
        let (key, manifest) = sealed(1);
        let text = serde_json::to_string_pretty(&manifest).unwrap();
        let read: Manifest = serde_json::from_str(&text).unwrap();
        key.check(&read).unwrap();
    }

    #[test]
    fn changed_counts_labels_or_sizes_break_the_seal() {
        let (key, manifest) = sealed(1);
        let edits: [fn(&mut Manifest); 3] = [
            |m| m.counts = Some(ObjectCounts::Keys(7)),
            |m| {
                m.labels.insert("schedule".into(), "weekly".into());
            },
            |m| m.raw_size += 1,
        ];
        for edit in edits {
            let mut altered = manifest.clone();
            edit(&mut altered);
            let error = key.check(&altered).unwrap_err();
            assert!(error.to_string().contains("altered"), "{error}");
        }
    }

    #[test]
    fn another_data_key_a_missing_or_garbled_seal_is_refused() {
        let (_, manifest) = sealed(1);
        assert!(
            ManifestSealKey::derive(&[2; KEY_LEN])
                .check(&manifest)
                .is_err()
        );
        let key = ManifestSealKey::derive(&[1; KEY_LEN]);
        let mut unsealed = manifest.clone();
        unsealed.seal = None;
        let error = key.check(&unsealed).unwrap_err();
        assert!(error.to_string().contains("carries no seal"), "{error}");
        let mut garbled = manifest;
        garbled.seal = Some("zz".into());
        assert!(matches!(
            key.check(&garbled),
            Err(BackupError::Integrity(_))
        ));
    }

    #[test]
    fn the_seal_key_never_shows_in_debug_output() {
        let key = ManifestSealKey::derive(&[9; KEY_LEN]);
        assert_eq!(format!("{key:?}"), "ManifestSealKey(<redacted>)");
    }
}
