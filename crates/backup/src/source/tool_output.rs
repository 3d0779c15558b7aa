//! What of a tool's stderr goes into an error message: the end (that is what explains), with
//! every long line cut to its beginning. A client that echoes the statement it failed on (the
//! `mariadb` client prints a whole `INSERT` of a 20 MiB row) would otherwise fill the message
//! with row data and push the one line that says what happened out of it.

use std::collections::VecDeque;

/// How many bytes of each line are kept.
pub const LINE_HEAD_BYTES: usize = 160;

/// A bounded tail of a stream, long lines trimmed as they arrive (the stream is never held).
#[derive(Debug)]
pub struct TrimmedTail {
    tail: VecDeque<u8>,
    max_bytes: usize,
    line_kept: usize,
    line_omitted: u64,
}

impl TrimmedTail {
    /// A tail that keeps at most `max_bytes` bytes.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            tail: VecDeque::with_capacity(max_bytes.min(64 * 1024)),
            max_bytes,
            line_kept: 0,
            line_omitted: 0,
        }
    }

    /// Adds the next bytes of the stream.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (line, ends) = match bytes.iter().position(|&byte| byte == b'\n') {
                Some(at) => (&bytes[..at], true),
                None => (bytes, false),
            };
            let kept = line.len().min(LINE_HEAD_BYTES - self.line_kept);
            self.tail.extend(&line[..kept]);
            self.line_kept += kept;
            self.line_omitted += (line.len() - kept) as u64;
            if ends {
                self.end_line();
                self.tail.push_back(b'\n');
                bytes = &bytes[line.len() + 1..];
            } else {
                bytes = &[];
            }
            let excess = self.tail.len().saturating_sub(self.max_bytes);
            self.tail.drain(..excess);
        }
    }

    fn end_line(&mut self) {
        if self.line_omitted > 0 {
            self.tail
                .extend(format!("… [{} more bytes]", self.line_omitted).bytes());
        }
        self.line_kept = 0;
        self.line_omitted = 0;
    }

    /// The kept bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.end_line();
        let excess = self.tail.len().saturating_sub(self.max_bytes);
        self.tail.drain(..excess);
        self.tail.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(input: &[u8], piece: usize, max: usize) -> String {
        let mut tail = TrimmedTail::new(max);
        for part in input.chunks(piece) {
            tail.push(part);
        }
        String::from_utf8_lossy(&tail.finish()).into_owned()
    }

    #[test]
    fn long_lines_keep_their_start_and_the_end_is_kept() {
        let row = format!("INSERT INTO `b` VALUES (2,0x{})", "AB".repeat(100_000));
        let input = format!(
            "--------------\n{row}\n--------------\n\nERROR 2006 (HY000) at line 41: Server has gone away\n"
        );
        for piece in [1, 7, 4096, 1 << 20] {
            let text = trimmed(input.as_bytes(), piece, 8 * 1024);
            assert!(text.len() < 600, "{piece}: {} bytes", text.len());
            assert!(text.contains("INSERT INTO `b` VALUES (2,0xABAB"), "{text}");
            assert!(
                text.contains(&format!("… [{} more bytes]", row.len() - LINE_HEAD_BYTES)),
                "{text}"
            );
            assert!(
                text.ends_with("at line 41: Server has gone away\n"),
                "{text}"
            );
        }
        // Many short lines: only the end is kept.
        let many: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        let text = trimmed(many.as_bytes(), 4096, 1000);
        assert!(text.len() <= 1000);
        assert!(text.ends_with("line 9999\n"), "{text}");
        assert_eq!(
            trimmed(b"no newline at the end", 3, 100),
            "no newline at the end"
        );
    }
}
