//! Archives written here by the format's rules, for the versions and endings the real
//! PostgreSQL 15 in `tests/archive_counts.rs` cannot produce.

use super::front::FORMAT_CUSTOM;
use super::*;

struct Writer {
    bytes: Vec<u8>,
    version: (u8, u8),
}

impl Writer {
    fn int(&mut self, value: i64) {
        self.bytes.push(u8::from(value < 0));
        self.bytes
            .extend_from_slice(&u32::try_from(value.abs()).unwrap().to_le_bytes());
    }

    fn string(&mut self, value: Option<&str>) {
        match value {
            Some(text) => {
                self.int(i64::try_from(text.len()).unwrap());
                self.bytes.extend_from_slice(text.as_bytes());
            }
            None => self.int(-1),
        }
    }

    fn entry(&mut self, dump_id: i64, desc: &str, schema: &str, tag: &str, copy: &str) {
        self.int(dump_id);
        self.int(i64::from(desc == "TABLE DATA"));
        self.string(Some("1259"));
        self.string(Some("16384"));
        self.string(Some(tag));
        self.string(Some(desc));
        self.int(2);
        self.string(Some(""));
        self.string(Some(""));
        self.string(Some(copy));
        self.string(Some(schema));
        self.string(Some(""));
        if self.version >= (1, 14) {
            self.string(Some("heap"));
        }
        if self.version >= (1, 16) {
            self.int(i64::from(b'r'));
        }
        self.string(Some("owner"));
        self.string(Some("false"));
        self.string(Some("1"));
        self.string(None);
        self.bytes.push(1); // offset not set
        self.bytes.extend_from_slice(&[0; 8]);
    }
}

/// An archive of `version` with one table `s.t` whose COPY text is `data`, cut into pieces
/// of `piece` bytes, and a large object.
fn archive(version: (u8, u8), data: &[u8], piece: usize) -> Vec<u8> {
    let mut w = Writer {
        bytes: b"PGDMP".to_vec(),
        version,
    };
    w.bytes
        .extend_from_slice(&[version.0, version.1, 0, 4, 8, FORMAT_CUSTOM]);
    if version >= (1, 15) {
        w.bytes.push(0);
    } else {
        w.int(0);
    }
    for field in [1, 2, 3, 4, 5, 125, 0] {
        w.int(field);
    }
    for text in ["db", "17.0", "17.0"] {
        w.string(Some(text));
    }
    w.int(3);
    w.entry(1, "TABLE", "s", "t", "");
    w.entry(2, "TABLE DATA", "s", "t", "COPY s.t (v) FROM stdin;\n");
    w.entry(3, "BLOBS", "", "BLOBS", "");
    w.bytes.push(BLOCK_DATA);
    w.int(2);
    for bytes in data.chunks(piece) {
        w.int(i64::try_from(bytes.len()).unwrap());
        w.bytes.extend_from_slice(bytes);
    }
    w.int(0);
    w.bytes.push(BLOCK_LARGE_OBJECTS);
    w.int(3);
    w.int(16385); // one object holding newlines
    w.int(3);
    w.bytes.extend_from_slice(b"\n\n\n");
    w.int(0);
    w.int(0);
    w.bytes
}

/// The count of `s.t`, the same whether the archive comes 5 bytes at a time (every piece
/// split) or at once (whole pieces, the fast path).
fn count(archive: &[u8]) -> Result<u64, ArchiveError> {
    let mut results = [5, archive.len()].map(|feed| {
        let mut counter = ArchiveCounter::new();
        for bytes in archive.chunks(feed) {
            counter.feed(bytes);
        }
        counter.finish().map(|counts| counts["s"]["t"])
    });
    assert_eq!(results[0], results[1], "split and whole feeds disagree");
    std::mem::replace(&mut results[0], Ok(0))
}

#[test]
fn every_known_version_is_counted() {
    for version in [(1, 12), (1, 13), (1, 14), (1, 15), (1, 16)] {
        let data = b"a\n\\\\.\nb\n\\.\n\n\n";
        // Pieces of 10 bytes: their lengths are newline bytes, which are not rows.
        for piece in [1, 4, 10, 100] {
            assert_eq!(count(&archive(version, data, piece)), Ok(3), "{version:?}");
        }
    }
    for version in [(1, 11), (1, 17), (2, 0)] {
        assert!(matches!(
            count(&archive(version, b"a\n", 10)),
            Err(ArchiveError::Unsupported(_))
        ));
    }
}

#[test]
fn only_a_whole_line_is_the_end_marker() {
    let rows = |data: &[u8]| count(&archive((1, 16), data, 3));
    assert_eq!(rows(b"\\.\n\n\n"), Ok(0));
    assert_eq!(rows(b"\\.\n"), Ok(0));
    assert_eq!(rows(b""), Ok(0));
    assert_eq!(
        rows(b"\n\\.\n"),
        Ok(1),
        "an empty string row, then the marker"
    );
    // Without a marker, rows ending in an escaped backslash and a dot are rows.
    assert_eq!(rows(b"x\\\\.\n\n\n"), Ok(3));
    assert_eq!(rows(b"x\\\\.\n"), Ok(1));
    assert_eq!(rows(b"a\nb\n"), Ok(2));
}

#[test]
fn a_table_without_its_data_block_is_an_error() {
    let mut bytes = archive((1, 16), b"a\n", 10);
    // Cut right before the table's data block (type 1, dump id 2): the stream then ends
    // where a block may start, but the table's block never came.
    let block = bytes
        .windows(6)
        .position(|w| w == [BLOCK_DATA, 0, 2, 0, 0, 0])
        .unwrap();
    bytes.truncate(block);
    let mut counter = ArchiveCounter::new();
    counter.feed(&bytes);
    assert!(matches!(counter.finish(), Err(ArchiveError::Malformed(_))));
}
