//! Chunk encryption: AES-256-GCM under a per-backup data key, with the nonce and associated
//! data binding each chunk to its backup, its position and whether it is the last one (see the
//! format in [`crate::format`]).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::BackupError;
use crate::format::{BACKUP_ID_LEN, BackupId};

/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;

/// Length of the GCM tag appended to every encrypted chunk.
pub const TAG_LEN: usize = 16;

const CHUNK_AAD_MAGIC: &[u8; 8] = b"VRTXBKC1";

/// Fills a buffer from the operating system's secure random generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], BackupError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| BackupError::Internal("the system random generator failed".into()))?;
    Ok(bytes)
}

/// The per-backup data key that encrypts the chunks.
pub struct DataKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// The nonce of chunk `index`.
pub fn chunk_nonce(index: u64, is_final: bool) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(is_final);
    nonce
}

/// The associated data of chunk `index` of backup `backup_id`.
pub fn chunk_aad(backup_id: &BackupId, index: u64, is_final: bool) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[..8].copy_from_slice(CHUNK_AAD_MAGIC);
    aad[8..8 + BACKUP_ID_LEN].copy_from_slice(backup_id);
    aad[24..32].copy_from_slice(&index.to_be_bytes());
    aad[32] = u8::from(is_final);
    aad
}

impl DataKey {
    /// A data key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<Self, BackupError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| BackupError::Internal("cannot build an AES-256-GCM key".into()))?;
        Ok(DataKey {
            key: LessSafeKey::new(key),
        })
    }

    /// Encrypts chunk `index` in place, appending the tag.
    pub fn seal_chunk(
        &self,
        backup_id: &BackupId,
        index: u64,
        is_final: bool,
        mut data: Vec<u8>,
    ) -> Result<Vec<u8>, BackupError> {
        let nonce = Nonce::assume_unique_for_key(chunk_nonce(index, is_final));
        let aad = chunk_aad(backup_id, index, is_final);
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(aad), &mut data)
            .map_err(|_| BackupError::Internal(format!("cannot encrypt chunk {index}")))?;
        Ok(data)
    }

    /// Decrypts and authenticates chunk `index`; any change to the data, its position, its
    /// backup or its final flag is an integrity error.
    pub fn open_chunk(
        &self,
        backup_id: &BackupId,
        index: u64,
        is_final: bool,
        mut data: Vec<u8>,
    ) -> Result<Vec<u8>, BackupError> {
        let nonce = Nonce::assume_unique_for_key(chunk_nonce(index, is_final));
        let aad = chunk_aad(backup_id, index, is_final);
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut data)
            .map_err(|_| {
                BackupError::Integrity(format!(
                    "chunk {index} fails authentication (altered, reordered, truncated or from another backup)"
                ))
            })?
            .len();
        data.truncate(plain_len);
        Ok(data)
    }
}

/// Encrypts a small secret (a data key) under `key` with a random nonce; returns
/// `(nonce, ciphertext || tag)`.
pub fn seal_with_random_nonce(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    secret: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), BackupError> {
    let nonce: [u8; NONCE_LEN] = random_bytes()?;
    let key = UnboundKey::new(&AES_256_GCM, key)
        .map_err(|_| BackupError::Internal("cannot build an AES-256-GCM key".into()))?;
    let mut data = secret.to_vec();
    LessSafeKey::new(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut data,
        )
        .map_err(|_| BackupError::Internal("cannot wrap the data key".into()))?;
    Ok((nonce, data))
}

/// Opens what [`seal_with_random_nonce`] sealed; `None` if the key or the data is wrong.
pub fn open_with_nonce(
    key: &[u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    mut sealed: Vec<u8>,
) -> Option<Vec<u8>> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut sealed,
        )
        .ok()?
        .len();
    sealed.truncate(len);
    Some(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: BackupId = [1u8; BACKUP_ID_LEN];

    fn key() -> DataKey {
        DataKey::from_bytes(&[9u8; KEY_LEN]).unwrap()
    }

    #[test]
    fn chunks_round_trip() {
        let sealed = key().seal_chunk(&ID, 5, false, b"hello".to_vec()).unwrap();
        assert_eq!(sealed.len(), 5 + TAG_LEN);
        assert_eq!(key().open_chunk(&ID, 5, false, sealed).unwrap(), b"hello");
    }

    #[test]
    fn position_final_flag_backup_and_bytes_are_authenticated() {
        let sealed = key().seal_chunk(&ID, 5, true, b"hello".to_vec()).unwrap();
        assert!(key().open_chunk(&ID, 4, true, sealed.clone()).is_err());
        assert!(key().open_chunk(&ID, 5, false, sealed.clone()).is_err());
        assert!(
            key()
                .open_chunk(&[2u8; 16], 5, true, sealed.clone())
                .is_err()
        );
        let other = DataKey::from_bytes(&[8u8; KEY_LEN]).unwrap();
        assert!(other.open_chunk(&ID, 5, true, sealed.clone()).is_err());
        for position in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[position] ^= 0x01;
            let error = key().open_chunk(&ID, 5, true, flipped).unwrap_err();
            assert!(matches!(error, BackupError::Integrity(_)));
        }
    }

    #[test]
    fn nonces_differ_by_index_and_final_flag() {
        assert_ne!(chunk_nonce(1, false), chunk_nonce(2, false));
        assert_ne!(chunk_nonce(1, false), chunk_nonce(1, true));
    }

    #[test]
    fn wrapping_round_trips_and_rejects_wrong_keys() {
        let kek = [3u8; KEY_LEN];
        let (nonce, sealed) = seal_with_random_nonce(&kek, b"aad", b"secret").unwrap();
        assert_eq!(
            open_with_nonce(&kek, nonce, b"aad", sealed.clone()).unwrap(),
            b"secret"
        );
        assert!(open_with_nonce(&[4u8; KEY_LEN], nonce, b"aad", sealed.clone()).is_none());
        assert!(open_with_nonce(&kek, nonce, b"other", sealed).is_none());
    }
}
