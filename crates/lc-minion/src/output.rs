//! lorry's output on its way to the webapp: bytes from a pipe become text
//! lines with credentials hidden, and text the webapp has not acknowledged
//! yet waits in a bounded buffer.

use std::borrow::Cow;

use lc_core::redact::{MASK, redact};

/// Longest line kept back waiting for its newline; a longer one is sent in
/// pieces (cut at a character boundary).
const MAX_PARTIAL_LINE: usize = 64 * 1024;

/// Hides credentials in output: every URL credential (see
/// [`lc_core::redact`]) and every literal secret the minion knows of, such
/// as the proxy password it put into lorry's environment.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// Empty strings are ignored; longer secrets are replaced first, so a
    /// secret that contains another is hidden whole.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut text = redact(text).into_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }
}

/// Bytes read from one of lorry's pipes that are not text yet.
#[derive(Debug, Default)]
pub struct StreamBuffer {
    bytes: Vec<u8>,
}

impl StreamBuffer {
    pub fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// Takes the complete lines read so far (everything when `all`), as
    /// text with credentials hidden. A partial line stays for later, so
    /// that a URL is never cut in two before redaction and a character is
    /// never cut between its bytes; invalid UTF-8 becomes U+FFFD.
    pub fn take(&mut self, all: bool, redactor: &Redactor) -> String {
        let end = if all {
            self.bytes.len()
        } else {
            match self.bytes.iter().rposition(|&b| b == b'\n') {
                Some(newline) => newline + 1,
                None if self.bytes.len() >= MAX_PARTIAL_LINE => char_boundary(&self.bytes),
                None => 0,
            }
        };
        if end == 0 {
            return String::new();
        }
        let rest = self.bytes.split_off(end);
        let taken = std::mem::replace(&mut self.bytes, rest);
        match String::from_utf8_lossy(&taken) {
            Cow::Borrowed(text) => redactor.apply(text),
            Cow::Owned(text) => redactor.apply(&text),
        }
    }
}

/// The largest prefix length of `bytes` that does not end inside a UTF-8
/// sequence (at most three bytes are held back).
fn char_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    // Start of the last sequence: back over at most three continuation bytes.
    let mut start = len;
    while start > 0 && len - start < 3 && bytes[start - 1] & 0xC0 == 0x80 {
        start -= 1;
    }
    let Some(&lead) = start.checked_sub(1).and_then(|i| bytes.get(i)) else {
        return len;
    };
    let needed = match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return len,
    };
    if len - (start - 1) < needed {
        start - 1
    } else {
        len
    }
}

/// Text of one stream that the webapp has not acknowledged yet.
///
/// It is bounded: when the webapp stays away long enough for more than
/// `cap` bytes to pile up, the oldest text is dropped and the webapp gets a
/// line saying how much. The job's exit is never part of this buffer and is
/// never dropped.
#[derive(Debug)]
pub struct Unsent {
    text: String,
    dropped: u64,
    cap: usize,
}

impl Unsent {
    pub fn new(cap: usize) -> Self {
        Unsent {
            text: String::new(),
            dropped: 0,
            cap: cap.max(1024),
        }
    }

    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
        if self.text.len() > self.cap {
            let mut cut = self.text.len() - self.cap;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            // Prefer dropping whole lines.
            if let Some(newline) = self.text[cut..].find('\n') {
                cut += newline + 1;
            }
            self.dropped += cut as u64;
            self.text.drain(..cut);
        }
    }

    /// What to send: the note about dropped text, if any, then the text.
    pub fn to_send(&self) -> Cow<'_, str> {
        if self.dropped == 0 {
            Cow::Borrowed(&self.text)
        } else {
            Cow::Owned(format!(
                "[lorry-controller-minion: {} bytes of output dropped while the webapp was unreachable]\n{}",
                self.dropped, self.text
            ))
        }
    }

    /// The webapp has everything [`Unsent::to_send`] gave.
    pub fn clear(&mut self) {
        self.text.clear();
        self.dropped = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_leave_until_the_end() {
        let redactor = Redactor::default();
        let mut buffer = StreamBuffer::default();
        buffer.push(b"one\ntw");
        assert_eq!(buffer.take(false, &redactor), "one\n");
        assert_eq!(buffer.take(false, &redactor), "");
        buffer.push(b"o\nthree");
        assert_eq!(buffer.take(false, &redactor), "two\n");
        assert_eq!(buffer.take(true, &redactor), "three");
        assert_eq!(buffer.take(true, &redactor), "");
    }

    #[test]
    fn a_url_split_between_reads_is_still_redacted() {
        let redactor = Redactor::default();
        let mut buffer = StreamBuffer::default();
        buffer.push(b"fetching https://user:tok");
        assert_eq!(buffer.take(false, &redactor), "");
        buffer.push(b"en@example.com/x.git\n");
        assert_eq!(
            buffer.take(false, &redactor),
            "fetching https://***@example.com/x.git\n"
        );
    }

    #[test]
    fn literal_secrets_are_hidden_longest_first() {
        let redactor = Redactor::new(["pw".to_owned(), "pw%40x".to_owned(), String::new()]);
        assert_eq!(redactor.apply("a pw%40x b pw c"), "a *** b *** c");
        assert_eq!(redactor.apply("nothing here"), "nothing here");
    }

    #[test]
    fn long_lines_are_cut_at_character_boundaries() {
        let redactor = Redactor::default();
        let mut buffer = StreamBuffer::default();
        let mut line = vec![b'a'; MAX_PARTIAL_LINE - 1];
        line.extend_from_slice(&"é".as_bytes()[..1]);
        buffer.push(&line);
        let first = buffer.take(false, &redactor);
        assert_eq!(first.len(), MAX_PARTIAL_LINE - 1);
        assert!(!first.contains('\u{FFFD}'));
        buffer.push(&"é".as_bytes()[1..]);
        assert_eq!(buffer.take(true, &redactor), "é");
        // Invalid bytes do not panic; they become U+FFFD.
        buffer.push(&[0xff, 0xfe, b'\n']);
        assert_eq!(buffer.take(false, &redactor), "\u{FFFD}\u{FFFD}\n");
    }

    #[test]
    fn char_boundary_never_splits_a_sequence() {
        for text in ["abc", "aé", "a€", "a😀", "😀", ""] {
            let bytes = text.as_bytes();
            for cut in 0..=bytes.len() {
                let end = char_boundary(&bytes[..cut]);
                assert!(end <= cut);
                assert!(std::str::from_utf8(&bytes[..end]).is_ok(), "{text} {cut}");
                assert!(cut - end < 4);
            }
        }
    }

    #[test]
    fn unsent_text_is_bounded_and_says_what_it_dropped() {
        let mut unsent = Unsent::new(1024);
        for i in 0..200 {
            unsent.push(&format!("line {i:04}\n"));
        }
        let text = unsent.to_send().into_owned();
        assert!(text.starts_with("[lorry-controller-minion: "), "{text}");
        assert!(text.contains("bytes of output dropped"));
        assert!(text.ends_with("line 0199\n"));
        assert!(text.len() < 1200, "{}", text.len());
        // Whole lines only after the note.
        let body = text.split_once('\n').map(|(_, b)| b).unwrap_or_default();
        assert!(body.starts_with("line "), "{body}");
        unsent.clear();
        assert_eq!(unsent.to_send(), "");
    }
}
