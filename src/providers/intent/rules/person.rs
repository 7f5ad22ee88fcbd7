//! Who is calling and how to call them back: the caller's name from the usual
//! introductions ("my name is …", "this is …", "it's … calling") or from a bare
//! answer to "what's your name?", and phone numbers said as digits or words
//! ("five five five, one two three four", "double five").

use super::address::street_type;
use super::numbers::{cardinal, digit_word};
use super::text::{title_case, Break, Tok};

/// Words that follow "this is" / "I'm" without being a name.
const NOT_A_NAME: &[&str] = &[
    "urgent",
    "emergency",
    "about",
    "regarding",
    "calling",
    "not",
    "so",
    "very",
    "really",
    "just",
    "still",
    "also",
    "the",
    "a",
    "an",
    "my",
    "your",
    "our",
    "his",
    "her",
    "their",
    "its",
    "it",
    "that",
    "this",
    "what",
    "there",
    "here",
    "and",
    "or",
    "but",
    "from",
    "at",
    "on",
    "in",
    "with",
    "for",
    "to",
    "of",
    "is",
    "was",
    "be",
    "been",
    "i",
    "me",
    "we",
    "you",
    "they",
    "he",
    "she",
    "speaking",
    "again",
    "actually",
    "going",
    "getting",
    "having",
    "happening",
    "kind",
    "sort",
    "pretty",
    "quite",
    "too",
    "serious",
    "important",
    "ridiculous",
    "terrible",
    "bad",
    "awful",
    "great",
    "fine",
    "good",
    "okay",
    "ok",
    "yes",
    "yeah",
    "no",
    "sure",
    "um",
    "uh",
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "please",
    "sorry",
    "crazy",
    "insane",
    "frustrating",
    "weird",
    "definitely",
    "probably",
    "maybe",
    "only",
    "all",
    "like",
    "literally",
    "honestly",
    "because",
    "since",
    "why",
    "how",
    "when",
    "where",
    "who",
    "which",
    "gonna",
    "trying",
    "looking",
    "wondering",
    "hoping",
    "worried",
    "concerned",
    "afraid",
    "locked",
    "out",
    "home",
    "back",
    "stuck",
    "new",
    "late",
    "early",
    "first",
    "last",
    "next",
    "tomorrow",
    "today",
    "tonight",
    "have",
    "need",
    "want",
    "got",
    "think",
    "guess",
    "live",
    "called",
    "call",
    "can",
    "could",
    "would",
    "will",
    "should",
    "do",
    "does",
    "did",
    "am",
    "are",
    "were",
    "had",
    "has",
    "leaking",
    "broken",
    "wet",
    "cold",
    "hot",
    "freezing",
    "worse",
    "bad",
    "done",
    "ready",
    "available",
    "free",
    "busy",
    "outside",
    "inside",
    "upstairs",
    "downstairs",
    "away",
    "right",
    "now",
    "fixed",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "july",
    "september",
    "october",
    "november",
    "december",
];

/// Words that may precede a name without being part of it in a bare answer.
const ANSWER_FILLERS: [&str; 22] = [
    "yes", "yeah", "yep", "sure", "ok", "okay", "oh", "um", "uh", "hi", "hello", "well", "so",
    "it's", "its", "it", "is", "my", "name", "name's", "i'm", "that's",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intro {
    /// "my name is": whatever follows is the name unless it is a common word.
    Stated,
    /// "this is": a name only when it looks like one.
    Introduced,
    /// "it's X calling": needs "calling"/"here"/"speaking" after the name.
    Calling,
    /// "I'm X": needs the name to end the clause.
    Iam,
}

const INTROS: [(&[&str], Intro); 10] = [
    (&["my", "name", "is"], Intro::Stated),
    (&["my", "name's"], Intro::Stated),
    (&["the", "name", "is"], Intro::Stated),
    (&["name's"], Intro::Stated),
    (&["name", "is"], Intro::Stated),
    (&["this", "is"], Intro::Introduced),
    (&["it's"], Intro::Calling),
    (&["it", "is"], Intro::Calling),
    (&["i'm"], Intro::Iam),
    (&["i", "am"], Intro::Iam),
];

/// The caller's name introduced anywhere in `toks`. `cased` says whether the
/// transcript uses capitals, making a capital letter evidence of a name.
pub fn find_name(toks: &[Tok<'_>], cased: bool, skip: &[bool]) -> Option<String> {
    for i in 0..toks.len() {
        for (words, intro) in INTROS {
            let matches = words
                .iter()
                .enumerate()
                .all(|(k, w)| toks.get(i + k).is_some_and(|t| t.is(w)));
            let joined = toks[i..i + words.len().min(toks.len() - i)]
                .iter()
                .take(words.len().saturating_sub(1))
                .all(|t| t.brk == Break::None);
            if matches && joined {
                if let Some(name) = read_name(toks, i + words.len(), intro, cased, skip) {
                    return Some(name);
                }
            }
        }
    }
    None
}

/// A bare answer to "what's your name?": "John Smith.", "Sure, it's Maria."
pub fn name_answer(toks: &[Tok<'_>], cased: bool, skip: &[bool]) -> Option<String> {
    if toks.len() > 12 {
        return None;
    }
    let start = toks
        .iter()
        .position(|t| !ANSWER_FILLERS.contains(&t.low.as_str()))?;
    read_name(toks, start, Intro::Iam, cased, skip)
}

fn read_name(
    toks: &[Tok<'_>],
    at: usize,
    intro: Intro,
    cased: bool,
    skip: &[bool],
) -> Option<String> {
    let previous_break = at
        .checked_sub(1)
        .is_some_and(|p| toks[p].brk == Break::Stop);
    if previous_break {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    let mut end = at;
    while end < toks.len() && parts.len() < 3 {
        let t = &toks[end];
        let name_like = t.low.len() >= 2
            && t.low.chars().all(|c| c.is_alphabetic() || c == '\'')
            && !NOT_A_NAME.contains(&t.low.as_str())
            && !skip.get(end).copied().unwrap_or(false)
            && cardinal(&toks[end..=end]).is_none()
            && street_type(&t.low).is_none();
        let needs_capital = cased && (intro != Intro::Stated || !parts.is_empty());
        if !name_like || (needs_capital && !t.capitalized()) {
            break;
        }
        parts.push(if t.capitalized() {
            t.raw.to_string()
        } else {
            title_case(&t.low)
        });
        end += 1;
        if t.brk != Break::None {
            break;
        }
    }
    if parts.is_empty() {
        return None;
    }
    let ends_clause = toks[end - 1].brk != Break::None || end == toks.len();
    let next = toks.get(end).map(|t| t.low.as_str()).unwrap_or("");
    let accepted = match intro {
        Intro::Stated | Intro::Introduced => true,
        // "It's Joe Rossi." ends a sentence; "It's Dave calling" says so.
        Intro::Calling => {
            let sentence_end = toks[end - 1].brk == Break::Stop || end == toks.len();
            (cased && sentence_end) || matches!(next, "calling" | "here" | "speaking" | "from")
        }
        Intro::Iam => {
            ends_clause || matches!(next, "and" | "calling" | "from" | "here" | "speaking")
        }
    };
    accepted.then(|| parts.join(" "))
}

/// True when the agent's turn asks for the caller's name.
pub fn asks_for_name(agent_text: &str) -> bool {
    let low = agent_text.to_lowercase();
    low.contains("your name")
        || low.contains("who am i speaking")
        || low.contains("who's calling")
        || low.contains("who is calling")
        || low.contains("name please")
}

/// The first phone number (7–15 digits) in `toks`, skipping tokens marked in `skip`.
/// Ten digits read as a North American number and come back in E.164 ("+1…").
pub fn find_phone(toks: &[Tok<'_>], skip: &[bool]) -> Option<String> {
    let mut i = 0;
    while i < toks.len() {
        let starts =
            !skip.get(i).copied().unwrap_or(false) && !matches!(toks[i].low.as_str(), "oh" | "o");
        if starts {
            let (digits, end) = digit_run(toks, i, skip);
            if (7..=15).contains(&digits.len()) {
                let plus = i > 0 && toks[i - 1].is("plus");
                return Some(normalise(&digits, plus));
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    None
}

/// Collects digits from token `i` on; returns them and the index after the run.
fn digit_run(toks: &[Tok<'_>], mut j: usize, skip: &[bool]) -> (String, usize) {
    let mut digits = String::new();
    while j < toks.len() && !skip.get(j).copied().unwrap_or(false) {
        let t = &toks[j];
        let next_digit = toks
            .get(j + 1)
            .filter(|_| t.brk == Break::None)
            .and_then(|n| digit_word(&n.low));
        if t.low.len() <= 11 && t.low.chars().all(|c| c.is_ascii_digit()) {
            digits.push_str(&t.low);
        } else if let Some(d) = digit_word(&t.low) {
            digits.push((b'0' + d) as char);
        } else if let (Some(times), Some(d)) = (repeat(&t.low), next_digit) {
            (0..times).for_each(|_| digits.push((b'0' + d) as char));
            j += 1;
        } else if let Some(pair) = (digits.len() >= 3).then(|| two_digits(toks, j)).flatten() {
            digits.push_str(&pair.0);
            j += pair.1 - 1;
        } else if t.is("hundred") && digits.ends_with(|c: char| c != '0') {
            digits.push_str("00");
        } else {
            break;
        }
        j += 1;
        if toks[j - 1].brk == Break::Stop {
            break;
        }
    }
    (digits, j)
}

fn repeat(low: &str) -> Option<usize> {
    match low {
        "double" => Some(2),
        "triple" => Some(3),
        _ => None,
    }
}

/// "twelve", "thirty four", "forty" inside a phone number, as two digits.
fn two_digits(toks: &[Tok<'_>], j: usize) -> Option<(String, usize)> {
    let (v, n) = super::numbers::cardinal(&toks[j..])?;
    let plain =
        n <= 2 && (10..100).contains(&v) && !toks[j].low.starts_with(|c: char| c.is_ascii_digit());
    plain.then(|| (v.to_string(), n))
}

/// Digits in their stored form: `+` kept, ten digits (or eleven from 1) as
/// North American E.164.
pub(crate) fn normalise(digits: &str, plus: bool) -> String {
    if plus {
        format!("+{digits}")
    } else if digits.len() == 10 {
        format!("+1{digits}")
    } else if digits.len() == 11 && digits.starts_with('1') {
        format!("+{digits}")
    } else {
        digits.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::tokenize;
    use super::*;

    fn name(text: &str) -> Option<String> {
        let toks = tokenize(text);
        find_name(
            &toks,
            text.chars().any(char::is_uppercase),
            &vec![false; toks.len()],
        )
    }

    fn phone(text: &str) -> Option<String> {
        let toks = tokenize(text);
        find_phone(&toks, &vec![false; toks.len()])
    }

    #[test]
    fn introductions() {
        assert_eq!(
            name("Hi, my name is John Smith."),
            Some("John Smith".into())
        );
        assert_eq!(
            name("my name's maria lopez and my sink leaks"),
            Some("Maria Lopez".into())
        );
        assert_eq!(
            name("Hello, this is Sarah from 42 Oak Street"),
            Some("Sarah".into())
        );
        assert_eq!(
            name("It's Dave calling about the roof"),
            Some("Dave".into())
        );
        assert_eq!(name("Yes, I'm Priya."), Some("Priya".into()));
        assert_eq!(name("This is urgent, my pipe burst"), None);
        assert_eq!(name("It's leaking everywhere"), None);
        assert_eq!(name("I'm locked out of my house"), None);
        assert_eq!(name("This is a nightmare"), None);
        assert_eq!(
            name("My furnace smells. It's Joe Rossi."),
            Some("Joe Rossi".into())
        );
        assert_eq!(name("It's Monday."), None);
        assert_eq!(name("It's Oak Street."), None);
        assert_eq!(name("It's Fifteen Maple"), None);
    }

    #[test]
    fn bare_answers_to_a_name_question() {
        let answer = |t: &str| name_answer(&tokenize(t), true, &[]);
        assert_eq!(answer("John Smith."), Some("John Smith".into()));
        assert_eq!(
            answer("Sure, it's Maria Lopez."),
            Some("Maria Lopez".into())
        );
        assert_eq!(answer("I have a leak"), None);
        assert!(asks_for_name("Can I get your name, please?"));
    }

    #[test]
    fn phone_numbers_in_digits_and_words() {
        assert_eq!(
            phone("Call me at 555-123-4567"),
            Some("+15551234567".into())
        );
        assert_eq!(phone("(555) 123-4567"), Some("+15551234567".into()));
        assert_eq!(
            phone("It's five five five, one two three, four five six seven."),
            Some("+15551234567".into())
        );
        assert_eq!(
            phone("five five five one two three four"),
            Some("5551234".into())
        );
        assert_eq!(
            phone("double five five, twelve thirty four"),
            Some("5551234".into())
        );
        assert_eq!(
            phone("plus four four seven seven double oh nine double oh one two three"),
            Some("+447700900123".into())
        );
        assert_eq!(phone("I live at 42 Oak Street, come at 3"), None);
        assert_eq!(phone("Oh, two three"), None);
    }
}
