//! Tokenizer shared by the rule extractors: splits a transcript into words that
//! remember their original spelling, their byte span in the source and the
//! punctuation that followed them. Everything downstream matches on tokens, so
//! "tap" never matches inside "tape".

/// Punctuation that followed a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    None,
    /// A clause break: comma, semicolon, colon, dash.
    Comma,
    /// A sentence end: full stop, question or exclamation mark.
    Stop,
}

/// One word of a transcript.
#[derive(Debug, Clone)]
pub struct Tok<'a> {
    /// The word as written, surrounding punctuation trimmed.
    pub raw: &'a str,
    /// Lower case, curly apostrophes straightened, dots inside words dropped ("a.m." → "am").
    pub low: String,
    /// `low` with a plural ending removed, for lexicon matching.
    pub stem: String,
    pub start: usize,
    pub end: usize,
    pub brk: Break,
}

impl Tok<'_> {
    pub fn is(&self, w: &str) -> bool {
        self.low == w
    }

    /// True when the word starts with a capital letter as written.
    pub fn capitalized(&self) -> bool {
        self.raw.chars().next().is_some_and(char::is_uppercase)
    }
}

/// Abbreviations whose trailing dot does not end a sentence.
const ABBREVIATIONS: [&str; 11] = [
    "mr", "mrs", "ms", "dr", "st", "ave", "apt", "rd", "am", "pm", "blvd",
];

/// Splits `text` into tokens. Hyphens split words ("forty-two", "555-1234").
pub fn tokenize(text: &str) -> Vec<Tok<'_>> {
    let mut out: Vec<Tok<'_>> = Vec::with_capacity(text.len() / 4 + 1);
    for (chunk_start, chunk) in chunks(text, |c| c.is_whitespace()) {
        for (piece_start, piece) in chunks(chunk, |c| matches!(c, '-' | '–' | '—' | '/')) {
            push_piece(text, chunk_start + piece_start, piece, &mut out);
        }
        // A dash or slash at a chunk's edge reads as a clause break.
        if chunk.ends_with(['-', '–', '—']) {
            if let Some(last) = out.last_mut() {
                if last.brk == Break::None {
                    last.brk = Break::Comma;
                }
            }
        }
    }
    out
}

fn push_piece<'a>(text: &'a str, offset: usize, piece: &'a str, out: &mut Vec<Tok<'a>>) {
    let lead = piece.len()
        - piece
            .trim_start_matches(|c: char| !c.is_alphanumeric())
            .len();
    let body = piece[lead..].trim_end_matches(|c: char| !c.is_alphanumeric());
    let tail = &piece[lead + body.len()..];
    if piece[..lead].contains('#') {
        // "#4" is spoken as "number 4".
        out.push(make_tok(
            text,
            offset,
            offset + lead,
            "number".into(),
            Break::None,
        ));
    }
    let brk = if tail.contains(['.', '!', '?']) {
        Break::Stop
    } else if tail.contains([',', ';', ':']) {
        Break::Comma
    } else {
        Break::None
    };
    if body.is_empty() {
        if brk != Break::None {
            if let Some(last) = out.last_mut() {
                last.brk = last.brk.max_with(brk);
            }
        }
        return;
    }
    let mut low: String = body
        .chars()
        .map(|c| if c == '’' || c == '‘' { '\'' } else { c })
        .flat_map(char::to_lowercase)
        .collect();
    if low.contains('.') && low.chars().any(|c| c.is_alphabetic()) {
        low.retain(|c| c != '.');
    }
    let brk = if brk == Break::Stop && ABBREVIATIONS.contains(&low.as_str()) && tail == "." {
        Break::None
    } else {
        brk
    };
    let start = offset + lead;
    let mut tok = make_tok(text, start, start + body.len(), low, brk);
    tok.raw = &text[start..start + body.len()];
    out.push(tok);
}

fn make_tok(text: &str, start: usize, end: usize, low: String, brk: Break) -> Tok<'_> {
    Tok {
        raw: &text[start..end],
        stem: stem(&low),
        low,
        start,
        end,
        brk,
    }
}

impl Break {
    fn max_with(self, other: Break) -> Break {
        match (self, other) {
            (Break::Stop, _) | (_, Break::Stop) => Break::Stop,
            (Break::Comma, _) | (_, Break::Comma) => Break::Comma,
            _ => Break::None,
        }
    }
}

/// Splits `s` on characters matching `sep`, yielding non-empty pieces with their offsets.
fn chunks(s: &str, sep: impl Fn(char) -> bool) -> impl Iterator<Item = (usize, &str)> {
    let mut pieces = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if sep(c) {
            if let Some(st) = start.take() {
                pieces.push((st, &s[st..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        pieces.push((st, &s[st..]));
    }
    pieces.into_iter()
}

/// Removes a plural ending so "leaks", "roaches" and "keys" match "leak", "roach", "key".
/// Applied alike to lexicon phrases and transcript words, so it only has to be consistent.
pub fn stem(low: &str) -> String {
    // A possessive is the noun: "hornet's nest".
    let low = low.strip_suffix("'s").unwrap_or(low);
    if low.contains('\'') || low.len() <= 3 || low.ends_with("ss") || low.ends_with("us") {
        return low.to_string();
    }
    for suffix in ["ches", "shes", "xes"] {
        if low.ends_with(suffix) {
            return low[..low.len() - 2].to_string();
        }
    }
    match low.strip_suffix('s') {
        Some(s) => s.to_string(),
        None => low.to_string(),
    }
}

/// Index ranges of the sentences in `toks` (split after tokens that end a sentence).
pub fn sentences(toks: &[Tok<'_>]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        if t.brk == Break::Stop {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < toks.len() {
        out.push(start..toks.len());
    }
    out
}

/// The source text from token `first` to token `last` inclusive.
pub fn span<'a>(text: &'a str, toks: &[Tok<'_>], first: usize, last: usize) -> &'a str {
    &text[toks[first].start..toks[last].end]
}

/// Capitalises the first letter of each word of a lower-case string.
pub fn title_case(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_spelling_offsets_and_breaks() {
        let text = "Hi, it’s 42 Oak St. and call 555-1234! Ten a.m. works.";
        let toks = tokenize(text);
        let lows: Vec<&str> = toks.iter().map(|t| t.low.as_str()).collect();
        assert_eq!(
            lows,
            ["hi", "it's", "42", "oak", "st", "and", "call", "555", "1234", "ten", "am", "works"]
        );
        assert_eq!(toks[0].brk, Break::Comma);
        assert_eq!(
            toks[4].brk,
            Break::None,
            "abbreviation dot is not a sentence end"
        );
        assert_eq!(toks[8].brk, Break::Stop);
        assert_eq!(toks[11].brk, Break::Stop);
        assert_eq!(span(text, &toks, 2, 4), "42 Oak St");
        assert!(toks[2].raw == "42" && toks[3].capitalized());
    }

    #[test]
    fn hash_reads_as_number_and_stems_are_consistent() {
        let lows: Vec<String> = tokenize("unit #4").into_iter().map(|t| t.low).collect();
        assert_eq!(lows, ["unit", "number", "4"]);
        assert_eq!(stem("roaches"), "roach");
        assert_eq!(stem("keys"), "key");
        assert_eq!(stem("gas"), "gas");
        assert_eq!(stem("glass"), "glass");
        assert_eq!(stem("hornet's"), "hornet");
        assert_eq!(stem("won't"), "won't");
    }

    #[test]
    fn sentences_split_on_stops() {
        let toks = tokenize("My sink leaks. Can you come? Thanks");
        assert_eq!(sentences(&toks), vec![0..3, 3..6, 6..7]);
    }
}
