//! lorry's output on its way to the webapp: bytes from a pipe become text
//! lines with credentials hidden, and text the webapp has not acknowledged
//! yet waits in a bounded buffer.

use std::borrow::Cow;

use lc_base::redact::{MASK, redact};

/// Longest line kept back waiting for its newline; a longer one is sent in
/// pieces (cut at a character boundary).
const MAX_PARTIAL_LINE: usize = 64 * 1024;

/// Hides credentials in output: every URL credential (see
/// [`lc_base::redact`]) and every literal secret the minion knows of, such
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

/// Bytes a character takes in an `application/x-www-form-urlencoded`
/// body, as reqwest encodes it (WHATWG URL's form encoding: ASCII
/// letters, digits, `*-._` as they are, space as `+`, every other byte as
/// `%XX`). Non-ASCII text therefore takes three times its UTF-8 length.
pub fn form_encoded_len(c: char) -> usize {
    if c.is_ascii_alphanumeric() || matches!(c, '*' | '-' | '.' | '_' | ' ') {
        1
    } else {
        3 * c.len_utf8()
    }
}

/// Bytes `text` takes form-encoded (see [`form_encoded_len`]).
pub fn encoded_len(text: &str) -> usize {
    text.chars().map(form_encoded_len).sum()
}

/// Text of one stream that the webapp has not acknowledged yet.
///
/// It is bounded: when the webapp stays away long enough for more than
/// `cap` bytes to pile up, the oldest text is dropped and the webapp gets a
/// line saying how much. The job's exit is never part of this buffer and is
/// never dropped. It is sent in [`Chunk`]s small enough for one request
/// body and removed only when the webapp has acknowledged a chunk.
#[derive(Debug)]
pub struct Unsent {
    text: String,
    /// Offset of `text`'s first byte among all bytes ever pushed.
    start: u64,
    dropped: u64,
    /// Why text was dropped, for the note.
    why: &'static str,
    cap: usize,
}

/// A prefix of an [`Unsent`] taken for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// What to send: the note about dropped text, if any, then text.
    pub text: String,
    /// The offset just past the text sent (see [`Unsent::acknowledge`]).
    end: u64,
    /// The dropped bytes its note reported.
    noted: u64,
}

impl Unsent {
    pub fn new(cap: usize) -> Self {
        Unsent {
            text: String::new(),
            start: 0,
            dropped: 0,
            why: "while the webapp was unreachable",
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
            self.why = "while the webapp was unreachable";
            self.start += cut as u64;
            self.text.drain(..cut);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.dropped == 0
    }

    /// Form-encoded size of everything waiting (note included).
    pub fn encoded_len(&self) -> usize {
        self.note()
            .chars()
            .chain(self.text.chars())
            .map(form_encoded_len)
            .sum()
    }

    fn note(&self) -> String {
        if self.dropped == 0 {
            String::new()
        } else {
            format!(
                "[lorry-controller-minion: {} bytes of output dropped {}]\n",
                self.dropped, self.why
            )
        }
    }

    /// The longest prefix (the note about dropped text first, if any) whose
    /// form encoding takes at most `budget` bytes; at least one character
    /// when there is any text, so that a tiny budget still makes progress.
    pub fn chunk(&self, budget: usize) -> Chunk {
        let mut text = self.note();
        let mut used: usize = text.chars().map(form_encoded_len).sum();
        let mut end = 0;
        for (i, c) in self.text.char_indices() {
            let len = form_encoded_len(c);
            if used + len > budget && !(text.is_empty() && end == 0) {
                break;
            }
            used += len;
            end = i + c.len_utf8();
            if used >= budget {
                break;
            }
        }
        text.push_str(&self.text[..end]);
        Chunk {
            text,
            end: self.start + end as u64,
            noted: self.dropped,
        }
    }

    /// The webapp has `chunk`: it is removed (what was dropped meanwhile
    /// is accounted for by offsets).
    pub fn acknowledge(&mut self, chunk: &Chunk) {
        if chunk.end > self.start {
            let mut cut = usize::try_from(chunk.end - self.start)
                .unwrap_or(usize::MAX)
                .min(self.text.len());
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
            self.start = chunk.end.max(self.start);
        }
        self.dropped = self.dropped.saturating_sub(chunk.noted);
    }

    /// Whether only a note about dropped text waits.
    pub fn has_text(&self) -> bool {
        !self.text.is_empty()
    }

    /// Whether the webapp having `chunk` leaves nothing waiting.
    pub fn covered_by(&self, chunk: &Chunk) -> bool {
        chunk.end >= self.start + self.text.len() as u64 && chunk.noted >= self.dropped
    }

    /// Forgets everything waiting, counting it as dropped for `why`.
    pub fn drop_all(&mut self, why: &'static str) {
        self.why = why;
        self.dropped += self.text.len() as u64;
        self.start += self.text.len() as u64;
        self.text.clear();
    }

    /// Everything waiting (note included), for tests and messages.
    pub fn to_send(&self) -> Cow<'_, str> {
        if self.dropped == 0 {
            Cow::Borrowed(&self.text)
        } else {
            Cow::Owned(format!("{}{}", self.note(), self.text))
        }
    }

    /// The webapp has everything [`Unsent::to_send`] gave.
    pub fn clear(&mut self) {
        self.start += self.text.len() as u64;
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

    #[test]
    fn the_encoded_length_is_what_form_encoding_makes() {
        let text = "az AZ09*-._~!/%+&=\né€😀\u{7f}\t";
        let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        assert_eq!(
            text.chars().map(form_encoded_len).sum::<usize>(),
            encoded.len()
        );
        assert_eq!("é".chars().map(form_encoded_len).sum::<usize>(), 6);
    }

    #[test]
    fn chunks_fit_the_budget_and_acknowledged_chunks_leave() {
        let mut unsent = Unsent::new(1 << 20);
        let text = "ééé abc\n".repeat(100);
        unsent.push(&text);
        let mut received = String::new();
        while !unsent.is_empty() {
            let chunk = unsent.chunk(50);
            assert!(!chunk.text.is_empty());
            assert!(chunk.text.chars().map(form_encoded_len).sum::<usize>() <= 50);
            // Text arriving while a chunk is out does not disturb it.
            received.push_str(&chunk.text);
            unsent.acknowledge(&chunk);
        }
        assert_eq!(received, text);
        // A budget smaller than one character still moves on.
        unsent.push("€");
        let chunk = unsent.chunk(1);
        assert_eq!(chunk.text, "€");
        unsent.acknowledge(&chunk);
        assert!(unsent.is_empty());
    }

    #[test]
    fn text_dropped_while_a_chunk_is_out_is_accounted_for() {
        let mut unsent = Unsent::new(1024);
        unsent.push(&"a".repeat(1000));
        let chunk = unsent.chunk(600);
        assert_eq!(chunk.text.len(), 600);
        // 2000 more bytes: the first 1976 (the chunk's text among them) go.
        unsent.push(&"b".repeat(2000));
        unsent.acknowledge(&chunk);
        let rest = unsent.to_send().into_owned();
        assert!(rest.contains("bytes of output dropped"), "{rest}");
        assert!(rest.ends_with(&"b".repeat(1024)), "{rest}");
        let mut all = Unsent::new(1024);
        all.push("x\ny\n");
        all.drop_all("for a test");
        assert!(
            all.to_send()
                .contains("4 bytes of output dropped for a test")
        );
    }
}
