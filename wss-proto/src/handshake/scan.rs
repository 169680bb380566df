//! Finding the end of an HTTP head as bytes trickle in, without ever looking at a byte twice.

use super::parser::HeadLimits;

/// What the scanner learned from one chunk of input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The head is not finished; every byte of the chunk belongs to it.
    Partial,
    /// The head ends after this many bytes of the chunk (the empty line included).
    Complete(usize),
    /// The head passed `max_head_bytes` before its end.
    TooLarge,
    /// The head has more than `max_headers` field lines.
    TooManyHeaders,
}

/// Line-by-line state machine over a head split into arbitrary chunks.
///
/// It only delimits; httparse does the real parsing once the end is known. Line endings are
/// CRLF or a bare LF (RFC 9112 §2.2 lets a recipient accept the latter, and httparse does).
/// Empty lines before the start line are skipped as RFC 9112 §2.2 asks, but still count
/// against the size limit so that a stream of newlines cannot run forever.
#[derive(Debug, Default, Clone)]
pub(crate) struct HeadScanner {
    /// Bytes of the head seen so far.
    len: usize,
    /// Bytes of the current, unfinished line.
    line_len: usize,
    /// First byte of the current line (meaningful when `line_len > 0`).
    line_first: u8,
    /// Whether the start line has been seen.
    started: bool,
    /// Field lines seen after the start line.
    fields: usize,
}

impl HeadScanner {
    /// Bytes of the head consumed so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn scan(&mut self, chunk: &[u8], limits: &HeadLimits) -> Scan {
        let mut pos = 0;
        loop {
            let rest = chunk.get(pos..).unwrap_or_default();
            let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                self.len += rest.len();
                if self.len > limits.max_head_bytes {
                    return Scan::TooLarge;
                }
                if self.line_len == 0 {
                    if let Some(&first) = rest.first() {
                        self.line_first = first;
                    }
                }
                self.line_len += rest.len();
                return Scan::Partial;
            };
            self.len += newline + 1;
            if self.len > limits.max_head_bytes {
                return Scan::TooLarge;
            }
            if self.line_len == 0 {
                if let Some(&first) = rest.first() {
                    self.line_first = first;
                }
            }
            let line_len = self.line_len + newline;
            self.line_len = 0;
            pos += newline + 1;
            let empty = line_len == 0 || (line_len == 1 && self.line_first == b'\r');
            if empty {
                if self.started {
                    return Scan::Complete(pos);
                }
            } else if !self.started {
                self.started = true;
            } else {
                self.fields += 1;
                if self.fields > limits.max_headers {
                    return Scan::TooManyHeaders;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(chunks: &[&[u8]]) -> Vec<Scan> {
        let mut scanner = HeadScanner::default();
        let limits = HeadLimits::default();
        chunks.iter().map(|c| scanner.scan(c, &limits)).collect()
    }

    #[test]
    fn crlf_split_across_chunks_is_found() {
        assert_eq!(
            scan_all(&[b"GET / HTTP/1.1\r", b"\n\r", b"\nrest"]),
            [Scan::Partial, Scan::Partial, Scan::Complete(1)]
        );
    }

    #[test]
    fn bare_lf_ends_the_head() {
        assert_eq!(
            scan_all(&[b"GET / HTTP/1.1\nHost: a\n\nX"]),
            [Scan::Complete(24)]
        );
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        assert_eq!(
            scan_all(&[b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]),
            [Scan::Complete(22)]
        );
    }

    #[test]
    fn lone_cr_line_is_not_empty_when_longer() {
        assert_eq!(scan_all(&[b"GET / HTTP/1.1\r\n\rx\r\n"]), [Scan::Partial]);
    }
}
