//! The on-store format of a backup, version 2: the layout and data objects (here), the chunk
//! framing, the manifest ([`manifest`]), its seal ([`seal`]) and the wrapped keys ([`keys`]).
//!
//! # Layout
//!
//! A backup named `NAME` in a store with prefix `PREFIX` is the folder `PREFIX/NAME/`:
//!
//! ```text
//! PREFIX/NAME/data-000000.vbk    data objects, uploaded as streamed multipart uploads
//! PREFIX/NAME/data-000001.vbk    (a new one starts when one would exceed the object size limit)
//! PREFIX/NAME/manifest.json      written LAST: a folder without it is not a backup
//! PREFIX/NAME/reservation.json   written FIRST, create-only: claims the name for one run
//! PREFIX/NAME/verification.json  the last passed verify or drill (optional)
//! PREFIX/NAME/objects-index.json the objects of a bucket copy (optional, see [`bucket_copy`])
//! ```
//!
//! These names are a backup's own objects: deleting a backup deletes exactly the objects of
//! these names directly in its folder, never anything deeper (another store's prefix may be
//! `PREFIX/NAME`, with backups of its own below it). Backups made before the reservation
//! existed have none; nothing requires it when reading.
//!
//! # Data objects
//!
//! Each data object starts with a 32-byte header, followed by the stored chunks back to back:
//!
//! ```text
//! offset  size  field
//! 0       8     magic "VRTXBKD1"
//! 8       4     format version, u32 big-endian (the manifest's `formatVersion`)
//! 12      4     index of this data object in the backup, u32 big-endian
//! 16      16    backup id (random, also in the manifest)
//! 32      ...   stored chunks; their offsets and sizes are listed in the manifest
//! ```
//!
//! # Chunks
//!
//! The dump is cut into fixed-size raw chunks (`chunkSize` in the manifest, 4 MiB by default;
//! only the last one may be shorter; an empty dump is one empty chunk). Each chunk is, on its
//! own and independently of the others (so chunks are compressed and encrypted in parallel):
//!
//! 1. compressed: a complete zstd frame, a complete gzip member, or the raw bytes (`none`);
//! 2. encrypted with AES-256-GCM under the backup's data key (when encryption is on):
//!    the stored chunk is `ciphertext || 16-byte tag`;
//!    - nonce (12 bytes) = chunk index as u64 big-endian ‖ `00 00 00` ‖ final flag (`01` on
//!      the last chunk, `00` otherwise). A data key is used for one backup only, and each index
//!      once, so a nonce never repeats under a key;
//!    - associated data (33 bytes) = `"VRTXBKC1"` ‖ backup id (16) ‖ chunk index (u64 BE) ‖
//!      final flag (1). Reordered chunks, chunks from another backup, and a truncated chunk list
//!      (whose new last chunk does not carry the final flag) all fail authentication;
//! 3. hashed: BLAKE3 of the stored bytes goes into the manifest's chunk list.
//!
//! The manifest also holds the BLAKE3 of the whole raw dump.
//!
//! # Versions
//!
//! Version 2 differs from version 1 in one thing: the manifest no longer holds a BLAKE3 of
//! each whole data object (`objects[].blake3`). That hash covered nothing the reader does not
//! check otherwise — the header is compared byte for byte, the chunk list must tile the object
//! exactly (no byte before, between or after the chunks), each chunk has its own hash, and a
//! longer or shorter object is refused — yet it cost a pass over every stored byte on a serial
//! path, both writing and reading (about a tenth of the pipeline's CPU per megabyte). This build
//! writes version 2 and reads both; reading a version 1 backup still checks its object hashes.
//! A build that knows only version 1 refuses version 2 backups with `UnsupportedFormat`.
//!
//! # Keys
//!
//! Every backup has its own random 256-bit data key. It is stored in the manifest wrapped
//! (AES-256-GCM, random 12-byte nonce, associated data `"VRTXBKW1"` ‖ backup id ‖ key id) by a
//! key-encryption key that the user supplies from a file, an environment variable or a
//! Kubernetes Secret. The manifest names the key-encryption key by its id, so keys can rotate:
//! new backups use the new key; old backups are re-wrapped (`rekey`) by rewriting only
//! their manifest, never their data. A key id defaults to a fingerprint of the key
//! (`k-` + 16 hex digits of a BLAKE3 key derivation), which tells keys apart without revealing
//! them.
//!
//! # Manifest seal
//!
//! An encrypted backup's manifest carries `seal`: the BLAKE3 keyed hash of the manifest's JSON
//! without `seal`, under the key `blake3::derive_key("vertice-backup manifest seal v1", data
//! key)`. It covers what the chunk tags cannot — the dump-time row and key counts a drill
//! compares against, labels, versions, sizes — so only a holder of the key-encryption key can
//! change them; `rekey` checks the seal before it re-wraps and seals again. An unencrypted
//! backup has no seal: its manifest is protected by the store's access control alone.
//!
//! # Reading
//!
//! A reader refuses a manifest whose `formatVersion` it does not know, checks the seal of an
//! encrypted backup before it uses anything else the manifest says, checks that the chunk
//! list tiles every data object exactly, verifies every hash and every tag, and checks the raw
//! sizes and the raw hash, before a restore writes a single byte to its target.

pub mod bucket_copy;
pub mod keys;
pub mod manifest;
pub mod seal;

use crate::error::BackupError;

/// The format version this build writes (see "Versions" above).
pub const FORMAT_VERSION: u32 = 2;

/// The oldest format version this build reads; it reads every version from this one to
/// [`FORMAT_VERSION`].
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// The first bytes of every data object.
pub const DATA_MAGIC: &[u8; 8] = b"VRTXBKD1";

/// Size of the data object header.
pub const HEADER_LEN: u64 = 32;

/// Name of the manifest object inside a backup's folder.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Name of the object that claims a backup's name for one run (create-only, written first).
pub const RESERVATION_NAME: &str = "reservation.json";

/// Name of the object that records a backup's last successful verification or drill.
pub const VERIFICATION_NAME: &str = "verification.json";

/// Whether `name` (the last segment of an object path) is one of the names a backup's own
/// objects have: the manifest, the reservation, the verification record, the objects index
/// ([`bucket_copy`]), or a data object
/// (`data-` and at least six digits, `.vbk`).
pub fn is_own_object_name(name: &str) -> bool {
    matches!(
        name,
        MANIFEST_NAME | RESERVATION_NAME | VERIFICATION_NAME | bucket_copy::OBJECTS_INDEX_NAME
    ) || name
        .strip_prefix("data-")
        .and_then(|rest| rest.strip_suffix(".vbk"))
        .is_some_and(|digits| digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Default raw chunk size.
pub const DEFAULT_CHUNK_SIZE: usize = 4 * 1024 * 1024;

/// The largest raw chunk size a reader accepts (bounds memory on hostile manifests).
pub const MAX_CHUNK_SIZE: usize = 64 * 1024 * 1024;

/// The smallest raw chunk size a writer accepts.
pub const MIN_CHUNK_SIZE: usize = 64 * 1024;

/// Length of a backup id.
pub const BACKUP_ID_LEN: usize = 16;

/// The random identity of one backup, bound into every chunk's associated data.
pub type BackupId = [u8; BACKUP_ID_LEN];

/// The name of the `index`th data object of a backup.
pub fn data_object_name(index: u32) -> String {
    format!("data-{index:06}.vbk")
}

/// The header that starts data object `object_index` of backup `backup_id`, written in format
/// `format_version`.
pub fn encode_header(
    format_version: u32,
    object_index: u32,
    backup_id: &BackupId,
) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(DATA_MAGIC);
    header[8..12].copy_from_slice(&format_version.to_be_bytes());
    header[12..16].copy_from_slice(&object_index.to_be_bytes());
    header[16..32].copy_from_slice(backup_id);
    header
}

/// Checks a data object's header against what the manifest says it must be: the manifest's
/// format version, the object's position and the backup id.
pub fn check_header(
    header: &[u8],
    format_version: u32,
    object_index: u32,
    backup_id: &BackupId,
) -> Result<(), BackupError> {
    let expected = encode_header(format_version, object_index, backup_id);
    if header.len() < expected.len() || header[..8] != expected[..8] {
        return Err(BackupError::Integrity(format!(
            "{} is not a backup data object (bad magic)",
            data_object_name(object_index)
        )));
    }
    if header[8..12] != expected[8..12] {
        return Err(BackupError::Integrity(format!(
            "{} has an unknown format version",
            data_object_name(object_index)
        )));
    }
    if header[12..32] != expected[12..32] {
        return Err(BackupError::Integrity(format!(
            "{} belongs to another backup or position",
            data_object_name(object_index)
        )));
    }
    Ok(())
}

/// Lower-case hex of some bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Parses hex (either case) into bytes; `None` if it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_other_backups() {
        let id = [7u8; BACKUP_ID_LEN];
        let header = encode_header(FORMAT_VERSION, 3, &id);
        assert!(check_header(&header, FORMAT_VERSION, 3, &id).is_ok());
        assert!(check_header(&header, FORMAT_VERSION, 2, &id).is_err());
        assert!(check_header(&header, FORMAT_VERSION, 3, &[8u8; BACKUP_ID_LEN]).is_err());
        assert!(check_header(&header[..10], FORMAT_VERSION, 3, &id).is_err());
        // A version 1 object is read as version 1, never as the manifest's other version.
        let old = encode_header(1, 3, &id);
        assert!(check_header(&old, 1, 3, &id).is_ok());
        assert!(check_header(&old, FORMAT_VERSION, 3, &id).is_err());
        assert!(check_header(&header, 1, 3, &id).is_err());
        let mut bad = header;
        bad[0] ^= 1;
        assert!(check_header(&bad, FORMAT_VERSION, 3, &id).is_err());
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&bytes), "0001abff");
        assert_eq!(from_hex("0001ABff"), Some(bytes.to_vec()));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
    }

    #[test]
    fn own_object_names() {
        for own in [
            "manifest.json",
            "reservation.json",
            "verification.json",
            "objects-index.json",
            "data-000000.vbk",
            "data-1234567.vbk",
        ] {
            assert!(is_own_object_name(own), "{own}");
        }
        for other in [
            "nightly-1",
            "data-1.vbk",
            "data-00000x.vbk",
            "data-000000.vbk#1",
            "manifest.json.bak",
            "app",
        ] {
            assert!(!is_own_object_name(other), "{other}");
        }
        assert!(is_own_object_name(&data_object_name(u32::MAX)));
    }

    #[test]
    fn data_object_names_sort_in_order() {
        assert_eq!(data_object_name(0), "data-000000.vbk");
        assert!(data_object_name(9) < data_object_name(10));
    }
}
