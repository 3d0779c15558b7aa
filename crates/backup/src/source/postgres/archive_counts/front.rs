//! The header and table of contents of a custom-format archive (see the parent module for
//! the layout): read from a [`Cursor`] that may run out, item by item.

use super::ArchiveError;
/// Oldest archive version counted (1.12, pg_dump 9.6).
pub(super) const OLDEST: (u8, u8) = (1, 12);
/// Newest archive version counted (1.16, pg_dump 17 and 18).
pub(super) const NEWEST: (u8, u8) = (1, 16);
/// The custom format's number in the header.
pub(super) const FORMAT_CUSTOM: u8 = 1;
/// The longest string accepted in the table of contents (a view's or function's definition
/// can be long; a corrupt length should not allocate gigabytes).
const MAX_STRING: i64 = 1 << 30;

/// What the header says about how to read the rest.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    pub(super) version: (u8, u8),
    pub(super) int_size: usize,
    pub(super) off_size: usize,
}

/// One table of contents entry, the fields the counter needs.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) dump_id: i64,
    pub(super) tag: String,
    pub(super) desc: String,
    pub(super) schema: String,
    /// Whether the entry has a `COPY` statement (its data is `COPY` text).
    pub(super) copies: bool,
}

/// Reads bytes of the header and table of contents. `Err(None)`: more bytes are needed.
pub(super) struct Cursor<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

pub(super) type Step<T> = Result<T, Option<ArchiveError>>;

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Step<&[u8]> {
        let end = self.at.checked_add(n).ok_or(None)?;
        let taken = self.bytes.get(self.at..end).ok_or(None)?;
        self.at = end;
        Ok(taken)
    }

    fn byte(&mut self) -> Step<u8> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn int(&mut self, layout: Layout) -> Step<i64> {
        let bytes = self.take(1 + layout.int_size)?;
        decode_int(bytes, layout).map_err(Some)
    }

    /// A string; `None` for a null one.
    fn string(&mut self, layout: Layout) -> Step<Option<String>> {
        let len = self.int(layout)?;
        if len < 0 {
            return Ok(None);
        }
        if len > MAX_STRING {
            return Err(Some(ArchiveError::Malformed(format!(
                "a string of {len} bytes"
            ))));
        }
        let len = usize::try_from(len).map_err(|_| None)?;
        Ok(Some(String::from_utf8_lossy(self.take(len)?).into_owned()))
    }
}

/// An archive integer: a sign byte, then `int_size` little-endian bytes.
pub(super) fn decode_int(bytes: &[u8], layout: Layout) -> Result<i64, ArchiveError> {
    if let [sign @ (0 | 1), a, b, c, d] = *bytes {
        let value = i64::from(u32::from_le_bytes([a, b, c, d]));
        return Ok(if sign == 0 { value } else { -value });
    }
    let (sign, magnitude) = bytes
        .split_first()
        .ok_or_else(|| ArchiveError::Malformed("an empty integer".to_owned()))?;
    let mut value: u64 = 0;
    for (shift, byte) in magnitude.iter().enumerate().take(layout.int_size) {
        if shift >= 8 && *byte != 0 {
            return Err(ArchiveError::Malformed(
                "an integer past 64 bits".to_owned(),
            ));
        }
        if shift < 8 {
            value |= u64::from(*byte) << (8 * shift);
        }
    }
    let value = i64::try_from(value)
        .map_err(|_| ArchiveError::Malformed("an integer past 63 bits".to_owned()))?;
    Ok(if *sign == 0 { value } else { -value })
}

/// Reads the archive header.
pub(super) fn read_header(cursor: &mut Cursor) -> Step<Layout> {
    if cursor.take(5)? != b"PGDMP" {
        return Err(Some(ArchiveError::Unsupported("no PGDMP magic".to_owned())));
    }
    let version = cursor.take(3)?;
    let version = (version[0], version[1]);
    if version < OLDEST || version > NEWEST {
        return Err(Some(ArchiveError::Unsupported(format!(
            "archive version {}.{}",
            version.0, version.1
        ))));
    }
    let int_size = usize::from(cursor.byte()?);
    let off_size = usize::from(cursor.byte()?);
    if !(1..=8).contains(&int_size) || !(1..=16).contains(&off_size) {
        return Err(Some(ArchiveError::Malformed(format!(
            "integer size {int_size}, offset size {off_size}"
        ))));
    }
    let format = cursor.byte()?;
    if format != FORMAT_CUSTOM {
        return Err(Some(ArchiveError::Unsupported(format!("format {format}"))));
    }
    let layout = Layout {
        version,
        int_size,
        off_size,
    };
    let compressed = if version >= (1, 15) {
        cursor.byte()? != 0
    } else {
        cursor.int(layout)? != 0
    };
    if compressed {
        return Err(Some(ArchiveError::Unsupported(
            "a compressed archive".to_owned(),
        )));
    }
    for _ in 0..7 {
        cursor.int(layout)?; // creation time: seconds … year, and whether DST applied
    }
    cursor.string(layout)?; // database name
    cursor.string(layout)?; // server version
    cursor.string(layout)?; // pg_dump version
    Ok(layout)
}

/// Reads one table of contents entry (custom format).
pub(super) fn read_entry(cursor: &mut Cursor, layout: Layout) -> Step<Entry> {
    let dump_id = cursor.int(layout)?;
    cursor.int(layout)?; // has data
    cursor.string(layout)?; // catalog table OID
    cursor.string(layout)?; // OID
    let tag = cursor.string(layout)?.unwrap_or_default();
    let desc = cursor.string(layout)?.unwrap_or_default();
    cursor.int(layout)?; // section
    cursor.string(layout)?; // definition
    cursor.string(layout)?; // drop statement
    let copy = cursor.string(layout)?;
    let schema = cursor.string(layout)?.unwrap_or_default();
    cursor.string(layout)?; // tablespace
    if layout.version >= (1, 14) {
        cursor.string(layout)?; // table access method
    }
    if layout.version >= (1, 16) {
        cursor.int(layout)?; // relation kind
    }
    cursor.string(layout)?; // owner
    cursor.string(layout)?; // "with OIDs", always false
    while cursor.string(layout)?.is_some() {} // dependencies, ended by a null string
    cursor.byte()?; // data offset: whether it is set …
    cursor.take(layout.off_size)?; // … and its value
    Ok(Entry {
        dump_id,
        tag,
        desc,
        schema,
        copies: copy.is_some_and(|copy| !copy.is_empty()),
    })
}
