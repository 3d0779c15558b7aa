//! What the `mariadb` client reads during a restore passes through here:
//! - every `CREATE EVENT` of the dump is rewritten from `ENABLE` to `DISABLE` (unless the user
//!   keeps events enabled), before the client sees it — disabling after the restore would let
//!   the server's event scheduler run the copy's events in between (an `EVERY 1 SECOND` event
//!   fires at once);
//! - every `INSERT` statement passes through [`super::long_values`], which builds values too
//!   large for one statement piece by piece (and leaves every other statement as it was);
//! - the longest line (mariadb-dump writes each row on a line of its own) is recorded, so a
//!   restore that the server cut off can say which statement outgrew its `max_allowed_packet`.
//!
//! mariadb-dump writes an event as one statement whose first line is
//! ``/*!50106 CREATE*/ /*!50117 DEFINER=…*/ /*!50106 EVENT `name` ON SCHEDULE … ON COMPLETION
//! [NOT] PRESERVE ENABLE [COMMENT '…'] DO body``: the status always follows `ON COMPLETION …
//! PRESERVE`, before the comment and the body, so the rewrite touches exactly that word.
//! Everything else passes through unchanged and, away from line starts that could begin such a
//! statement, without a copy.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;

use super::PROTOCOL_MAX_PACKET;
use super::long_values::{CHECK_MARKER, InsertSplitter};
use crate::source::process::then;
use crate::source::{RestoreStream, SourceError};

/// How mariadb-dump (and MySQL's mysqldump) begins the first line of an event.
const EVENT_MARKER: &[u8] = b"/*!50106 CREATE*/";

/// How a dump's data lines begin (see [`super::long_values`]).
const INSERT_MARKER: &[u8] = b"INSERT INTO ";

/// The largest piece of a value sent in one statement.
const MAX_PIECE_BYTES: u64 = 4 << 20;

/// Puts the filter in front of `stream`'s writer, and makes its completion explain a failure
/// caused by a statement larger than the server's `max_allowed_packet` (in bytes).
pub fn apply(stream: &mut RestoreStream, disable_events: bool, server_max_packet: u64) {
    let watch = Arc::new(StatementWatch::default());
    let writer = std::mem::replace(&mut stream.writer, Box::pin(tokio::io::sink()));
    let budget = (server_max_packet / 4).clamp(1024, MAX_PIECE_BYTES) as usize;
    stream.writer = Box::pin(RestoreFilter::new(
        writer,
        disable_events,
        budget,
        watch.clone(),
    ));
    let completion = std::mem::replace(&mut stream.completion, Box::pin(async { Ok(()) }));
    stream.completion = then(completion, move |result| async move {
        result.map_err(|error| explain_packet_limit(error, watch.longest(), server_max_packet))
    });
}

/// `error` as [`SourceError::PacketTooLarge`] when the dump held a statement the server could
/// not accept (the server then drops the connection: "server has gone away", "lost
/// connection", or "packet bigger than max_allowed_packet"); otherwise unchanged.
fn explain_packet_limit(error: SourceError, longest: LongestLine, limit: u64) -> SourceError {
    // The check after a value built piece by piece failed: the value outgrew the limit.
    let value_too_large = match &error {
        SourceError::Tool { message, .. } => {
            message.contains(CHECK_MARKER) || message.contains("ERROR 1242")
        }
        _ => false,
    };
    if value_too_large && let SourceError::Tool { tool, message } = error {
        return SourceError::ValueTooLarge {
            tool,
            max_allowed_packet: limit,
            output: error_lines(message),
        };
    }
    // The packet holds the statement and a one-byte command.
    if longest.bytes < limit {
        return error;
    }
    let (tool, output) = match error {
        SourceError::Tool { tool, message } => (tool, message),
        SourceError::Connect { message, .. } => ("mariadb".to_owned(), message),
        other => return other,
    };
    let output = error_lines(output);
    const MIB: u64 = 1 << 20;
    let needed_bytes = (longest.bytes + 1).div_ceil(MIB).saturating_mul(MIB);
    SourceError::PacketTooLarge {
        tool,
        line: longest.line,
        statement_bytes: longest.bytes,
        max_allowed_packet: limit,
        needed_bytes: needed_bytes.min(PROTOCOL_MAX_PACKET),
        output,
    }
}

/// The client echoes the statement it failed on: its `ERROR` lines are what explain.
fn error_lines(output: String) -> String {
    let errors: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("ERROR"))
        .collect();
    if errors.is_empty() {
        output
    } else {
        errors.join("; ")
    }
}

/// The longest line seen so far: its length in bytes and its 1-based line number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LongestLine {
    /// Bytes, without the line break.
    pub bytes: u64,
    /// 1-based line number in the dump.
    pub line: u64,
}

/// Shared between the filter (which writes it) and the restore's completion (which reads it).
#[derive(Debug, Default)]
pub struct StatementWatch(Mutex<LongestLine>);

impl StatementWatch {
    /// The longest line written so far.
    pub fn longest(&self) -> LongestLine {
        self.0.lock().map(|guard| *guard).unwrap_or_default()
    }

    fn offer(&self, candidate: LongestLine) {
        if let Ok(mut longest) = self.0.lock()
            && candidate.bytes > longest.bytes
        {
            *longest = candidate;
        }
    }
}

/// Where the filter is within the current line.
enum LineState {
    /// Inside a line that is not an event's first line: bytes pass through.
    Passing,
    /// At a line start; these bytes so far agree with [`EVENT_MARKER`].
    Start(Vec<u8>),
    /// Inside an event's first line, held until its end to be rewritten.
    Holding(Vec<u8>),
    /// Inside a data line, whose large values are split (see [`super::long_values`]).
    Insert(Box<InsertSplitter>),
}

/// An [`AsyncWrite`] in front of the client's stdin (see the module doc).
pub struct RestoreFilter {
    inner: Pin<Box<dyn AsyncWrite + Send>>,
    disable_events: bool,
    budget: usize,
    watch: Arc<StatementWatch>,
    state: LineState,
    /// Rewritten or held-back bytes still to reach `inner`.
    pending: Vec<u8>,
    pending_from: usize,
    line_bytes: u64,
    line_number: u64,
}

impl RestoreFilter {
    /// A filter writing into `inner`.
    pub fn new(
        inner: Pin<Box<dyn AsyncWrite + Send>>,
        disable_events: bool,
        budget: usize,
        watch: Arc<StatementWatch>,
    ) -> Self {
        Self {
            inner,
            disable_events,
            budget,
            watch,
            state: LineState::Start(Vec::new()),
            pending: Vec::new(),
            pending_from: 0,
            line_bytes: 0,
            line_number: 1,
        }
    }

    /// Counts lines over bytes that reached `inner` (or the pending buffer).
    fn track(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|&byte| byte == b'\n') {
            self.line_bytes += at as u64;
            self.end_line();
            rest = &rest[at + 1..];
        }
        self.line_bytes += rest.len() as u64;
    }

    fn end_line(&mut self) {
        self.watch.offer(LongestLine {
            bytes: self.line_bytes,
            line: self.line_number,
        });
        self.line_bytes = 0;
        self.line_number += 1;
    }

    fn queue(&mut self, bytes: &[u8]) {
        self.track(bytes);
        self.pending.extend_from_slice(bytes);
    }

    /// Writes the pending bytes; ready once none are left.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.pending_from < self.pending.len() {
            let written = ready!(
                self.inner
                    .as_mut()
                    .poll_write(cx, &self.pending[self.pending_from..])
            )?;
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.pending_from += written;
        }
        self.pending.clear();
        self.pending_from = 0;
        Poll::Ready(Ok(()))
    }

    /// Whether a line starting with `start` may be one the filter rewrites.
    fn may_rewrite(&self, start: &[u8]) -> bool {
        let agrees = |marker: &[u8]| {
            let shown = start.len().min(marker.len());
            start[..shown] == marker[..shown]
        };
        (self.disable_events && agrees(EVENT_MARKER)) || agrees(INSERT_MARKER)
    }

    /// How many leading bytes of `buf` can pass straight through: up to the first line start
    /// that could begin a line the filter rewrites (or where the buffer ends too early to tell).
    fn passable(&self, buf: &[u8]) -> usize {
        let mut from = 0;
        while let Some(at) = buf[from..].iter().position(|&byte| byte == b'\n') {
            let next = from + at + 1;
            if self.may_rewrite(&buf[next..]) {
                return next;
            }
            from = next;
        }
        buf.len()
    }

    /// Takes bytes of `buf` into the held line start, event line or data line; returns how
    /// many.
    fn absorb(&mut self, buf: &[u8]) -> usize {
        match std::mem::replace(&mut self.state, LineState::Passing) {
            LineState::Start(mut start) => {
                for (index, &byte) in buf.iter().enumerate() {
                    start.push(byte);
                    let taken = index + 1;
                    if self.disable_events && start[..] == *EVENT_MARKER {
                        self.state = LineState::Holding(start);
                        return taken;
                    }
                    if start[..] == *INSERT_MARKER {
                        let mut splitter = Box::new(InsertSplitter::new(self.budget));
                        let mut out = Vec::new();
                        splitter.feed(&start, &mut out);
                        self.queue(&out);
                        self.state = LineState::Insert(splitter);
                        return taken;
                    }
                    if !self.may_rewrite(&start) {
                        // Neither: release what was held and pass the rest of the line.
                        self.queue(&start);
                        self.state = if byte == b'\n' {
                            LineState::Start(Vec::new())
                        } else {
                            LineState::Passing
                        };
                        return taken;
                    }
                }
                self.state = LineState::Start(start);
                buf.len()
            }
            LineState::Insert(mut splitter) => {
                // The statement spans lines (a header, then a row a line) up to its `;`.
                let mut out = Vec::new();
                let mut consumed = 0;
                while let Some(at) = buf[consumed..].iter().position(|&byte| byte == b'\n') {
                    splitter.feed(&buf[consumed..consumed + at + 1], &mut out);
                    consumed += at + 1;
                    if splitter.is_done() {
                        self.queue(&out);
                        self.state = LineState::Start(Vec::new());
                        return consumed;
                    }
                }
                splitter.feed(&buf[consumed..], &mut out);
                self.queue(&out);
                self.state = LineState::Insert(splitter);
                buf.len()
            }
            LineState::Holding(mut line) => {
                let (taken, complete) = match buf.iter().position(|&byte| byte == b'\n') {
                    Some(at) => (at + 1, true),
                    None => (buf.len(), false),
                };
                line.extend_from_slice(&buf[..taken]);
                if complete {
                    let rewritten = disable_event(&line).unwrap_or(line);
                    self.queue(&rewritten);
                    self.state = LineState::Start(Vec::new());
                } else {
                    self.state = LineState::Holding(line);
                }
                taken
            }
            LineState::Passing => 0,
        }
    }
}

impl AsyncWrite for RestoreFilter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !matches!(this.state, LineState::Passing) {
            // Held bytes go to `pending`, written on the next call or at flush.
            return Poll::Ready(Ok(this.absorb(buf)));
        }
        let passable = this.passable(buf);
        let written = ready!(this.inner.as_mut().poll_write(cx, &buf[..passable]))?;
        this.track(&buf[..written]);
        if written > 0 && buf[written - 1] == b'\n' {
            // The next byte starts a line, which may begin an event.
            this.state = LineState::Start(Vec::new());
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        this.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // A last line without a line break, or a held start of one, still goes to the client.
        match std::mem::replace(&mut this.state, LineState::Passing) {
            LineState::Start(bytes) | LineState::Holding(bytes) if !bytes.is_empty() => {
                let bytes = disable_event(&bytes).unwrap_or(bytes);
                this.queue(&bytes);
            }
            LineState::Insert(mut splitter) => {
                let mut out = Vec::new();
                splitter.finish(&mut out);
                this.queue(&out);
            }
            _ => {}
        }
        ready!(this.poll_pending(cx))?;
        if this.line_bytes > 0 {
            this.end_line();
        }
        this.inner.as_mut().poll_shutdown(cx)
    }
}

/// The event line with its `ENABLE` status turned into `DISABLE`, or `None` when the line is
/// not an event created `ENABLE` (already disabled, `DISABLE ON SLAVE`, or not an event).
pub fn disable_event(line: &[u8]) -> Option<Vec<u8>> {
    let rest = line.strip_prefix(EVENT_MARKER)?;
    let event_at = find(rest, b"/*!50106 EVENT `")? + b"/*!50106 EVENT ".len();
    let name_end = event_at + quoted_name_len(&rest[event_at..])?;
    let after_name = &rest[name_end..];
    let completion = find(after_name, b" ON COMPLETION ")? + b" ON COMPLETION ".len();
    let words = &after_name[completion..];
    let status = completion
        + if words.starts_with(b"NOT PRESERVE ") {
            b"NOT PRESERVE ".len()
        } else if words.starts_with(b"PRESERVE ") {
            b"PRESERVE ".len()
        } else {
            return None;
        };
    let tail = &after_name[status..];
    if !tail.starts_with(b"ENABLE") || tail.get(6).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    let cut = EVENT_MARKER.len() + name_end + status;
    let mut out = Vec::with_capacity(line.len() + 1);
    out.extend_from_slice(&line[..cut]);
    out.extend_from_slice(b"DISABLE");
    out.extend_from_slice(&line[cut + b"ENABLE".len()..]);
    Some(out)
}

/// The length of a backtick-quoted name at the start of `text` (doubled backticks inside).
fn quoted_name_len(text: &[u8]) -> Option<usize> {
    if text.first() != Some(&b'`') {
        return None;
    }
    let mut at = 1;
    loop {
        match text.get(at)? {
            b'`' if text.get(at + 1) == Some(&b'`') => at += 2,
            b'`' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    const EVENT: &str = "/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT \
        `tick` ON SCHEDULE EVERY 1 SECOND STARTS '2026-11-30 03:48:19' ON COMPLETION NOT \
        PRESERVE ENABLE COMMENT 'ENABLE DO x' DO INSERT INTO shop.ticks VALUES (NULL, NOW()) \n";

    #[test]
    fn only_the_status_word_changes() {
        let out = String::from_utf8(disable_event(EVENT.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            out,
            EVENT.replacen("PRESERVE ENABLE COMMENT", "PRESERVE DISABLE COMMENT", 1)
        );
        let tricky = "/*!50106 CREATE*/ /*!50106 EVENT `we ON COMPLETION PRESERVE ENABLE` ON \
            SCHEDULE EVERY 1 HOUR ON COMPLETION PRESERVE ENABLE DO SELECT 'ENABLE'\n";
        let out = String::from_utf8(disable_event(tricky.as_bytes()).unwrap()).unwrap();
        assert!(
            out.ends_with("ON COMPLETION PRESERVE DISABLE DO SELECT 'ENABLE'\n"),
            "{out}"
        );
        assert!(out.contains("`we ON COMPLETION PRESERVE ENABLE`"), "{out}");
        for unchanged in [
            EVENT.replace("PRESERVE ENABLE", "PRESERVE DISABLE"),
            EVENT.replace("PRESERVE ENABLE", "PRESERVE DISABLE ON SLAVE"),
            "INSERT INTO t VALUES ('ON COMPLETION PRESERVE ENABLE');\n".to_owned(),
        ] {
            assert_eq!(disable_event(unchanged.as_bytes()), None, "{unchanged}");
        }
    }

    async fn filtered(input: &[u8], piece: usize, disable: bool) -> (Vec<u8>, LongestLine) {
        let (client, mut server) = tokio::io::duplex(64);
        let watch = Arc::new(StatementWatch::default());
        let mut filter = RestoreFilter::new(Box::pin(client), disable, 1 << 20, watch.clone());
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut out)
                .await
                .unwrap();
            out
        });
        for part in input.chunks(piece) {
            filter.write_all(part).await.unwrap();
        }
        filter.shutdown().await.unwrap();
        drop(filter);
        (reader.await.unwrap(), watch.longest())
    }

    #[tokio::test]
    async fn events_are_disabled_across_any_write_boundaries() {
        let long = format!("INSERT INTO t VALUES ('{}');\n", "x".repeat(5000));
        let input = format!("SET a=1;\n/*!50106 DROP EVENT x*/;\n{EVENT}DO more;\n{long}/*!5");
        let expected = input.replacen("PRESERVE ENABLE COMMENT", "PRESERVE DISABLE COMMENT", 1);
        for piece in [1, 3, 7, 17, 64, 1000, 100_000] {
            let (out, longest) = filtered(input.as_bytes(), piece, true).await;
            assert_eq!(String::from_utf8(out).unwrap(), expected, "piece {piece}");
            assert_eq!(longest.bytes, long.len() as u64 - 1, "piece {piece}");
            assert_eq!(longest.line, 5, "piece {piece}");
            let (out, _) = filtered(input.as_bytes(), piece, false).await;
            assert_eq!(String::from_utf8(out).unwrap(), input, "piece {piece}");
        }
    }
}
