//! Pulls the `reply` string out of a JSON answer while it is still arriving,
//! and cuts it into sentences as each one completes, so speech can start on
//! the first sentence instead of waiting for the whole answer.
//!
//! The reader is a small byte-level JSON scanner: it tracks nesting, keys at
//! the top level and string escapes (including `\uXXXX` and surrogate pairs),
//! so text may be split anywhere — even inside an escape or a UTF-8
//! character. Only a top-level `"reply"` string is read; the rest of the
//! answer is validated once it is complete.

/// Words whose trailing period does not end a sentence.
const ABBREVIATIONS: [&str; 16] = [
    "mr", "mrs", "ms", "dr", "st", "ave", "rd", "jr", "sr", "no", "vs", "etc", "e.g", "i.e", "a.m",
    "p.m",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Between tokens.
    Outside,
    /// Inside a string; `escape` after a backslash.
    Text { escape: bool },
    /// Inside `\uXXXX`, with the digits read so far.
    Unicode { digits: u8, value: u16 },
}

/// Where the current string's decoded bytes go.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sink {
    Key,
    Reply,
    Ignore,
}

/// Incremental reader of the `reply` field; feed it the answer text.
#[derive(Debug)]
pub struct ReplyReader {
    mode: Mode,
    sink: Sink,
    depth: u32,
    /// At the top level, the next string is a key.
    expect_key: bool,
    /// At the top level, after a `:`: the next token is a value.
    in_value: bool,
    key: Vec<u8>,
    last_key: Vec<u8>,
    /// A `\uD800`–`\uDBFF` escape waiting for its low half.
    high_surrogate: Option<u16>,
    /// Decoded reply bytes not yet sent as a sentence.
    pending: Vec<u8>,
    done: bool,
}

impl Default for ReplyReader {
    fn default() -> Self {
        ReplyReader {
            mode: Mode::Outside,
            sink: Sink::Ignore,
            depth: 0,
            expect_key: false,
            in_value: false,
            key: Vec::new(),
            last_key: Vec::new(),
            high_surrogate: None,
            pending: Vec::new(),
            done: false,
        }
    }
}

impl ReplyReader {
    /// Feeds the next piece of answer text; returns the sentences it completed.
    /// When the reply string closes, its last sentence is returned too.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.step(b) {
                out.extend(self.take_sentences(true));
            }
        }
        out.extend(self.take_sentences(false));
        out
    }

    /// True once the whole reply has been read.
    #[cfg(test)]
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Consumes one byte; true when it closed the reply string.
    fn step(&mut self, b: u8) -> bool {
        match self.mode {
            Mode::Outside => {
                self.outside(b);
                false
            }
            Mode::Text { escape: false } => match b {
                b'\\' => {
                    self.mode = Mode::Text { escape: true };
                    false
                }
                b'"' => self.end_string(),
                _ => {
                    self.flush_surrogate();
                    self.emit(&[b]);
                    false
                }
            },
            Mode::Text { escape: true } => {
                self.mode = Mode::Text { escape: false };
                let decoded: &[u8] = match b {
                    b'n' | b'r' => b"\n",
                    b't' => b" ",
                    b'b' | b'f' => b"",
                    b'u' => {
                        self.mode = Mode::Unicode {
                            digits: 0,
                            value: 0,
                        };
                        return false;
                    }
                    other => &[other][..],
                };
                self.flush_surrogate();
                let decoded = decoded.to_vec();
                self.emit(&decoded);
                false
            }
            Mode::Unicode { digits, value } => {
                let Some(d) = (b as char).to_digit(16) else {
                    // A broken escape: mark it and read the byte as text.
                    self.mode = Mode::Text { escape: false };
                    self.flush_surrogate();
                    self.emit("\u{FFFD}".as_bytes());
                    return self.step(b);
                };
                let value = (value << 4) | d as u16;
                if digits < 3 {
                    self.mode = Mode::Unicode {
                        digits: digits + 1,
                        value,
                    };
                } else {
                    self.mode = Mode::Text { escape: false };
                    self.on_code_unit(value);
                }
                false
            }
        }
    }

    fn outside(&mut self, b: u8) {
        let top = self.depth == 1;
        match b {
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth == 1 {
                    self.expect_key = b == b'{';
                }
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 1 {
                    self.in_value = false;
                }
            }
            b',' if top => {
                self.expect_key = true;
                self.in_value = false;
            }
            b':' if top => self.in_value = true,
            b'"' => {
                self.sink = if top && self.expect_key {
                    self.expect_key = false;
                    self.key.clear();
                    Sink::Key
                } else if top && self.in_value && !self.done && self.last_key == b"reply" {
                    Sink::Reply
                } else {
                    Sink::Ignore
                };
                self.mode = Mode::Text { escape: false };
            }
            _ => {}
        }
    }

    /// A string closed; true when it was the reply.
    fn end_string(&mut self) -> bool {
        self.flush_surrogate();
        self.mode = Mode::Outside;
        match self.sink {
            Sink::Key => {
                self.last_key = std::mem::take(&mut self.key);
                false
            }
            Sink::Reply => {
                self.done = true;
                self.sink = Sink::Ignore;
                true
            }
            Sink::Ignore => false,
        }
    }

    fn on_code_unit(&mut self, unit: u16) {
        match (self.high_surrogate.take(), unit) {
            (Some(high), 0xDC00..=0xDFFF) => {
                let c = 0x10000 + (((high as u32) - 0xD800) << 10) + (unit as u32 - 0xDC00);
                self.emit_char(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            (high, 0xD800..=0xDBFF) => {
                if high.is_some() {
                    self.emit_char('\u{FFFD}');
                }
                self.high_surrogate = Some(unit);
            }
            (high, _) => {
                if high.is_some() {
                    self.emit_char('\u{FFFD}');
                }
                self.emit_char(char::from_u32(unit as u32).unwrap_or('\u{FFFD}'));
            }
        }
    }

    /// A lone high surrogate followed by something else is not a character.
    fn flush_surrogate(&mut self) {
        if self.high_surrogate.take().is_some() {
            self.emit_char('\u{FFFD}');
        }
    }

    fn emit_char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.emit(c.encode_utf8(&mut buf).as_bytes());
    }

    fn emit(&mut self, bytes: &[u8]) {
        match self.sink {
            Sink::Key => self.key.extend_from_slice(bytes),
            Sink::Reply => self.pending.extend_from_slice(bytes),
            Sink::Ignore => {}
        }
    }

    /// Complete sentences from `pending`; with `all`, the rest as well.
    fn take_sentences(&mut self, all: bool) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((end, next)) = sentence_end(&self.pending) {
            push_sentence(&mut out, &self.pending[..end]);
            self.pending.drain(..next);
        }
        if all {
            push_sentence(&mut out, &self.pending);
            self.pending.clear();
        }
        out
    }
}

fn push_sentence(out: &mut Vec<String>, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !text.is_empty() {
        out.push(text);
    }
}

/// The first sentence end in `text`: the end of the sentence and where the
/// next one starts. A sentence ends at `.`, `!` or `?` (plus any closing
/// quotes or brackets) followed by white space, or at a line break; a
/// period after a known abbreviation or a single initial does not count.
/// Needs to see the white space, so the text's last sentence waits.
fn sentence_end(text: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\n' => return Some((i, i + 1)),
            b'.' | b'!' | b'?' => {
                let mut j = i + 1;
                while j < text.len() && matches!(text[j], b'.' | b'!' | b'?' | b'"' | b'\'' | b')')
                {
                    j += 1;
                }
                match text.get(j) {
                    None => return None,
                    Some(c) if c.is_ascii_whitespace() => {
                        if text[i] != b'.' || !after_abbreviation(&text[..i]) {
                            return Some((j, j));
                        }
                    }
                    Some(_) => {}
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the word just before a period is an abbreviation or an initial.
fn after_abbreviation(before: &[u8]) -> bool {
    let start = before
        .iter()
        .rposition(|b| b.is_ascii_whitespace() || *b == b'(')
        .map_or(0, |p| p + 1);
    let word = String::from_utf8_lossy(&before[start..]).to_lowercase();
    let initial = word.len() == 1 && word.chars().all(|c| c.is_alphabetic());
    initial || ABBREVIATIONS.contains(&word.as_str())
}

/// Splits a finished reply the way the streaming reader does.
pub fn sentences(reply: &str) -> Vec<String> {
    let mut pending = reply.as_bytes().to_vec();
    let mut out = Vec::new();
    while let Some((end, next)) = sentence_end(&pending) {
        push_sentence(&mut out, &pending[..end]);
        pending.drain(..next);
    }
    push_sentence(&mut out, &pending);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `text` split at one position, and byte by byte.
    fn read_split(text: &[u8], at: usize) -> (Vec<String>, bool) {
        let mut r = ReplyReader::default();
        let mut got = r.feed(&text[..at]);
        got.extend(r.feed(&text[at..]));
        (got, r.is_done())
    }

    fn check_every_split(json: &str, want: &[&str]) {
        let bytes = json.as_bytes();
        for at in 0..=bytes.len() {
            let (got, done) = read_split(bytes, at);
            assert_eq!(got, want, "split at byte {at} of {json}");
            assert!(done, "split at byte {at}");
        }
        let mut r = ReplyReader::default();
        let mut got = Vec::new();
        for b in bytes {
            got.extend(r.feed(std::slice::from_ref(b)));
        }
        assert_eq!(got, want, "byte by byte");
    }

    #[test]
    fn plain_reply_first() {
        check_every_split(
            r#"{"reply":"Sorry to hear that. What is the address?","category":"plumbing"}"#,
            &["Sorry to hear that.", "What is the address?"],
        );
    }

    #[test]
    fn escapes_quotes_and_unicode_at_every_split() {
        check_every_split(
            r#"{ "reply" : "He said \"it's flooding!\" Caf\u00e9 or café? \ud83d\ude00 ok\\done.\nNext line", "x": 1}"#,
            &[
                "He said \"it's flooding!\"",
                "Café or café?",
                "😀 ok\\done.",
                "Next line",
            ],
        );
    }

    #[test]
    fn reply_after_other_fields_and_nested_decoys() {
        check_every_split(
            r#"{"meta":{"reply":"no. not this."},"list":["reply","x"],"category":null,"re\u0070ly":"Yes. Dr. Smith at 3 p.m. works."}"#,
            &["Yes.", "Dr. Smith at 3 p.m. works."],
        );
    }

    #[test]
    fn sentences_wait_for_the_following_space() {
        let mut r = ReplyReader::default();
        assert!(r.feed(br#"{"reply":"One. Two"#).len() == 1);
        assert!(r.feed(b"!").is_empty());
        assert_eq!(r.feed(b" Three"), vec!["Two!"]);
        assert!(!r.is_done());
        assert_eq!(r.feed(br#"","a":1}"#), vec!["Three"]);
        assert!(r.is_done());
        // Nothing more once the reply is closed.
        assert!(r.feed(br#","reply":"Again. "}"#).is_empty());
    }

    #[test]
    fn broken_escapes_do_not_panic() {
        let (got, _) = read_split(br#"{"reply":"a\uZZ12b \ud800x. End"}"#, 5);
        assert_eq!(got, vec!["a\u{FFFD}ZZ12b \u{FFFD}x.", "End"]);
    }

    #[test]
    fn finished_reply_splits_the_same_way() {
        assert_eq!(
            sentences("Okay. Mr. Brown, is 5.30 fine?  Thanks"),
            vec!["Okay.", "Mr. Brown, is 5.30 fine?", "Thanks"]
        );
    }
}
