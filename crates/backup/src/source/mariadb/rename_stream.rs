//! Points a multi-database dump at staging databases while it streams: `mariadb-dump
//! --databases` names each database in exactly three kinds of top-level lines, which are
//! rewritten when they name a dumped database —
//! `CREATE DATABASE /*!32312 IF NOT EXISTS*/ `name` …`, `USE `name`;` and
//! `ALTER DATABASE `name` …` (around routines with another collation). Every other byte
//! passes unchanged; data lines are never buffered beyond the few bytes that decide whether
//! a line could be one of those.
//!
//! References to another dumped database inside views or routines keep the original names:
//! they resolve once the commit has moved everything into those names.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use super::quote_ident;

const PREFIXES: [&str; 3] = [
    "CREATE DATABASE /*!32312 IF NOT EXISTS*/ ",
    "USE ",
    "ALTER DATABASE ",
];

/// The longest line head kept to decide: a prefix and a quoted name of up to 64 characters
/// of up to 4 bytes, backticks doubled.
const MAX_HEAD: usize = 48 + 2 + 64 * 4 * 2;

/// Where in the current line the filter is.
#[derive(Debug)]
enum Line {
    /// Collecting the start of a line that may still be a database line.
    Head(Vec<u8>),
    /// Passing the rest of a line through unchanged.
    Body,
}

/// An `AsyncWrite` that rewrites database names in a dump (see the module doc).
pub(super) struct RenameDatabases {
    inner: Pin<Box<dyn AsyncWrite + Send>>,
    /// Quoted dumped name → quoted staging name.
    renames: BTreeMap<String, String>,
    line: Line,
    /// Bytes accepted but not yet written to `inner`.
    pending: Vec<u8>,
    written: usize,
}

impl RenameDatabases {
    /// Rewrites `(dumped, staging)` names.
    pub(super) fn new(
        inner: Pin<Box<dyn AsyncWrite + Send>>,
        renames: Vec<(String, String)>,
    ) -> Self {
        Self {
            inner,
            renames: renames
                .into_iter()
                .map(|(from, to)| (quote_ident(&from), quote_ident(&to)))
                .collect(),
            line: Line::Head(Vec::new()),
            pending: Vec::new(),
            written: 0,
        }
    }

    /// Filters `input` into `pending`.
    fn accept(&mut self, input: &[u8]) {
        let mut rest = input;
        while !rest.is_empty() {
            match &mut self.line {
                Line::Body => match rest.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.pending.extend_from_slice(&rest[..=end]);
                        rest = &rest[end + 1..];
                        self.line = Line::Head(Vec::new());
                    }
                    None => {
                        self.pending.extend_from_slice(rest);
                        rest = &[];
                    }
                },
                Line::Head(head) => {
                    let end = rest.iter().position(|&b| b == b'\n');
                    let take = end.map_or(rest.len(), |end| end + 1);
                    head.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    let head = std::mem::take(head);
                    if end.is_some() {
                        let line = self.rewrite(head);
                        self.pending.extend_from_slice(&line);
                        self.line = Line::Head(Vec::new());
                    } else if could_be_database_line(&head) {
                        self.line = Line::Head(head);
                    } else {
                        self.pending.extend_from_slice(&head);
                        self.line = Line::Body;
                    }
                }
            }
        }
    }

    /// A complete line, rewritten when it is a database line naming a dumped database.
    fn rewrite(&self, line: Vec<u8>) -> Vec<u8> {
        let Ok(text) = std::str::from_utf8(&line) else {
            return line;
        };
        for prefix in PREFIXES {
            let Some(after) = text.strip_prefix(prefix) else {
                continue;
            };
            for (from, to) in &self.renames {
                if let Some(tail) = after.strip_prefix(from.as_str())
                    && (tail.starts_with(' ') || tail.starts_with(';'))
                {
                    return format!("{prefix}{to}{tail}").into_bytes();
                }
            }
        }
        line
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.written < self.pending.len() {
            let n = std::task::ready!(
                self.inner
                    .as_mut()
                    .poll_write(cx, &self.pending[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

/// Whether a line starting with `head` (no newline yet) may still be a database line.
fn could_be_database_line(head: &[u8]) -> bool {
    head.len() <= MAX_HEAD
        && PREFIXES.iter().any(|prefix| {
            let prefix = prefix.as_bytes();
            let shared = head.len().min(prefix.len());
            head[..shared] == prefix[..shared]
        })
}

impl AsyncWrite for RenameDatabases {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        this.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        this.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Line::Head(head) = &mut this.line
            && !head.is_empty()
        {
            let head = std::mem::take(head);
            let line = this.rewrite(head);
            this.pending.extend_from_slice(&line);
        }
        std::task::ready!(this.poll_drain(cx))?;
        this.inner.as_mut().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn filter(input: &[&[u8]]) -> String {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut writer = RenameDatabases::new(
            Box::pin(client),
            vec![
                ("a".into(), "stage_0".into()),
                ("b`x".into(), "stage_1".into()),
            ],
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for piece in input {
            writer.write_all(piece).await.unwrap();
        }
        writer.shutdown().await.unwrap();
        drop(writer);
        let mut out = String::new();
        server.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn database_lines_are_renamed_across_write_boundaries() {
        let dump = "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a` /*!40100 DEFAULT CHARACTER SET latin1 */;\n\nUSE `a`;\nINSERT INTO `t` VALUES ('USE `a`;');\nUSE `b``x`;\nALTER DATABASE `a` CHARACTER SET utf8mb4 ;\nUSE `ab`;\nUSE `a`;";
        let expected = "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `stage_0` /*!40100 DEFAULT CHARACTER SET latin1 */;\n\nUSE `stage_0`;\nINSERT INTO `t` VALUES ('USE `a`;');\nUSE `stage_1`;\nALTER DATABASE `stage_0` CHARACTER SET utf8mb4 ;\nUSE `ab`;\nUSE `stage_0`;";
        assert_eq!(filter(&[dump.as_bytes()]).await, expected);
        let pieces: Vec<&[u8]> = dump.as_bytes().chunks(3).collect();
        assert_eq!(filter(&pieces).await, expected);
    }
}
