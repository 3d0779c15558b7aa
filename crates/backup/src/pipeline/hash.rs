//! BLAKE3 digests: per stored chunk, per data object and over the raw dump. BLAKE3 runs at
//! several GB/s on one core (SIMD), so hashing never becomes the pipeline's bottleneck the way a
//! single SHA-256 stream would.

use crate::error::BackupError;

/// The BLAKE3 digest of some bytes, hex.
pub fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Checks `actual` against the manifest's `expected` digest of `what`.
pub fn check(actual: &blake3::Hash, expected: &str, what: &str) -> Result<(), BackupError> {
    let expected = blake3::Hash::from_hex(expected).map_err(|_| {
        BackupError::Integrity(format!("the manifest's hash of {what} is malformed"))
    })?;
    // blake3::Hash compares in constant time.
    if *actual == expected {
        Ok(())
    } else {
        Err(BackupError::Integrity(format!(
            "{what} does not match its BLAKE3 hash (corrupted or replaced)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_and_mismatching_digests() {
        let hash = blake3::hash(b"abc");
        assert!(check(&hash, &digest(b"abc"), "x").is_ok());
        assert!(matches!(
            check(&hash, &digest(b"abd"), "x"),
            Err(BackupError::Integrity(_))
        ));
        assert!(check(&hash, "nothex", "x").is_err());
    }
}
