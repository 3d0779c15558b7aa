//! The keys a run uses, from its [`EncryptionSpec`]: the one a new backup is encrypted with,
//! and every key that may open an existing one.

use crate::error::BackupError;
use crate::keys::{KeyEncryptionKey, KeyRing};

use super::spec::EncryptionSpec;

impl EncryptionSpec {
    /// Every key given, for reading: `keyFile`, then `previousKeyFiles` in order, then
    /// `keyEnv`. `keyId` names the first of them. Errors: `Config` when a key file or variable
    /// cannot be read or does not hold a key.
    pub fn key_ring(&self) -> Result<KeyRing, BackupError> {
        let mut keys = Vec::new();
        let files = self.key_file.iter().chain(&self.previous_key_files);
        for (position, path) in files.enumerate() {
            let id = (position == 0).then(|| self.key_id.clone()).flatten();
            keys.push(KeyEncryptionKey::from_file(path, id)?);
        }
        if let Some(var) = &self.key_env {
            let id = keys.is_empty().then(|| self.key_id.clone()).flatten();
            keys.push(KeyEncryptionKey::from_env(var, id)?);
        }
        Ok(KeyRing::new(keys))
    }

    /// The one key new backups are encrypted with (`keyFile`, else `keyEnv`), or `None` when
    /// `disabled`. Errors: `Config` when neither is given (backups are encrypted unless told
    /// otherwise), or the key cannot be read.
    pub fn writing_key(&self) -> Result<Option<KeyEncryptionKey>, BackupError> {
        if self.disabled {
            return Ok(None);
        }
        if let Some(path) = self.key_file.as_ref().or(self.previous_key_files.first()) {
            return Ok(Some(KeyEncryptionKey::from_file(
                path,
                self.key_id.clone(),
            )?));
        }
        if let Some(var) = &self.key_env {
            return Ok(Some(KeyEncryptionKey::from_env(var, self.key_id.clone())?));
        }
        Err(BackupError::Config(
            "backups are encrypted: give --encryption-key-file or --encryption-key-env \
             (or --no-encryption to store it in the clear)"
                .into(),
        ))
    }
}
