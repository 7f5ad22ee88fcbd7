//! Numbers as callers say them and as Whisper writes them: digits ("42"),
//! words ("forty-two", "one hundred and five", "fifteen hundred"), house
//! numbers read in groups ("one twenty three" = 123, "twelve oh five" = 1205),
//! ordinals ("third", "21st") and digit strings for phone numbers.

use super::text::{tokenize, Break, Tok};

fn unit(w: &str) -> Option<u64> {
    let v = match w {
        "zero" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        _ => return None,
    };
    Some(v)
}

fn teen(w: &str) -> Option<u64> {
    let v = match w {
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    };
    Some(v)
}

fn tens(w: &str) -> Option<u64> {
    let v = match w {
        "twenty" => 20,
        "thirty" => 30,
        "forty" | "fourty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    };
    Some(v)
}

/// A spoken digit for phone numbers: "oh" and "o" are zero.
pub fn digit_word(w: &str) -> Option<u8> {
    match w {
        "oh" | "o" => Some(0),
        _ => unit(w).map(|v| v as u8),
    }
}

/// The value of a token made only of digits (commas allowed between groups: "1,200").
pub fn digits_value(w: &str) -> Option<u64> {
    if w.is_empty() || !w.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if !w.chars().all(|c| c.is_ascii_digit() || c == ',') || w.len() > 18 {
        return None;
    }
    w.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// True when the number may continue past token `i` (no punctuation after it).
fn open(t: &[Tok<'_>], i: usize) -> bool {
    t.get(i).is_some_and(|x| x.brk == Break::None) && i + 1 < t.len()
}

/// 0–99 in words at the start of `t`: "seven", "fifteen", "forty two".
fn small(t: &[Tok<'_>]) -> Option<(u64, usize)> {
    let w = t.first()?.low.as_str();
    if let Some(v) = unit(w).or_else(|| teen(w)) {
        return Some((v, 1));
    }
    let v = tens(w)?;
    match open(t, 0).then(|| unit(&t[1].low)).flatten() {
        Some(u) if u > 0 => Some((v + u, 2)),
        _ => Some((v, 1)),
    }
}

/// 1–9999 in words: "one hundred and five", "fifteen hundred", "a hundred".
fn below_thousand(t: &[Tok<'_>]) -> Option<(u64, usize)> {
    let (mut value, mut n) = if t.first()?.is("a") && t.get(1).is_some_and(|x| x.is("hundred")) {
        (1, 1)
    } else {
        small(t)?
    };
    if open(t, n - 1) && t[n].is("hundred") && value < 100 {
        value *= 100;
        n += 1;
        let mut m = n;
        if open(t, n - 1) && t[n].is("and") {
            m += 1;
        }
        if open(t, m - 1) {
            if let Some((rest, k)) = small(&t[m..]) {
                value += rest;
                n = m + k;
            }
        }
    }
    Some((value, n))
}

/// A cardinal number at the start of `t`, in digits or words; returns the value
/// and how many tokens it used. Stops at punctuation.
pub fn cardinal(t: &[Tok<'_>]) -> Option<(u64, usize)> {
    if let Some(v) = digits_value(&t.first()?.low) {
        return Some((v, 1));
    }
    let (mut value, mut n) = if t[0].is("a") && t.get(1).is_some_and(|x| x.is("thousand")) {
        (1, 1)
    } else {
        below_thousand(t)?
    };
    if open(t, n - 1) && t[n].is("thousand") {
        value *= 1000;
        n += 1;
        let mut m = n;
        if open(t, n - 1) && t[n].is("and") {
            m += 1;
        }
        if open(t, m - 1) {
            if let Some((rest, k)) = below_thousand(&t[m..]) {
                value += rest;
                n = m + k;
            }
        }
    }
    Some((value, n))
}

/// A house number: digits with an optional letter ("42", "42b" → "42B"), or
/// words read as a cardinal or in groups ("one twenty three" → "123",
/// "twelve oh five" → "1205", "four five six" → "456").
pub fn house_number(t: &[Tok<'_>]) -> Option<(String, usize)> {
    let first = t.first()?;
    if let Some(v) = digits_value(&first.low) {
        return Some((v.to_string(), 1));
    }
    let digits_then_letter = first.low.len() >= 2
        && first.low.ends_with(|c: char| c.is_ascii_lowercase())
        && first.low[..first.low.len() - 1]
            .chars()
            .all(|c| c.is_ascii_digit());
    if digits_then_letter {
        return Some((first.low.to_uppercase(), 1));
    }
    let (value, mut n) = cardinal(t)?;
    let mut text = value.to_string();
    // Groups only follow a plain 0–99 reading ("one", "fifteen"), never "one hundred".
    let plain = value < 100 && !t[..n].iter().any(|x| x.is("hundred") || x.is("thousand"));
    while plain && open(t, n - 1) && text.len() < 6 {
        let rest = &t[n..];
        let oh_digit = (rest[0].is("oh") || rest[0].is("o")) && open(rest, 0);
        if let Some(u) = oh_digit.then(|| unit(&rest[1].low)).flatten() {
            text.push('0');
            text.push_str(&u.to_string());
            n += 2;
            continue;
        }
        match small(rest) {
            Some((v, k)) if v >= 10 || value < 10 => {
                text.push_str(&v.to_string());
                n += k;
            }
            _ => break,
        }
    }
    Some((text, n))
}

/// An ordinal at the start of `t`: "third", "twenty first", "21st", "15th".
pub fn ordinal(t: &[Tok<'_>]) -> Option<(u32, usize)> {
    let w = t.first()?.low.as_str();
    for suffix in ["st", "nd", "rd", "th"] {
        if let Some(d) = w.strip_suffix(suffix) {
            if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) {
                return d.parse().ok().map(|v| (v, 1));
            }
        }
    }
    if let Some(v) = ordinal_word(w) {
        return Some((v, 1));
    }
    let ten = tens(w)? as u32;
    if open(t, 0) {
        if let Some(u) = ordinal_word(&t[1].low).filter(|u| *u < 10) {
            return Some((ten + u, 2));
        }
    }
    None
}

fn ordinal_word(w: &str) -> Option<u32> {
    const WORDS: [&str; 19] = [
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
    ];
    if let Some(i) = WORDS.iter().position(|x| *x == w) {
        return Some(i as u32 + 1);
    }
    match w {
        "twentieth" => Some(20),
        "thirtieth" => Some(30),
        _ => None,
    }
}

/// Parses a whole phrase as one cardinal number ("one hundred and five" → 105);
/// `None` when anything is left over.
pub fn parse_number(text: &str) -> Option<u64> {
    let toks = tokenize(text);
    match cardinal(&toks) {
        Some((v, n)) if n == toks.len() => Some(v),
        _ => None,
    }
}

/// Parses a whole phrase as a house number ("one twenty three" → "123").
pub fn parse_house_number(text: &str) -> Option<String> {
    let toks = tokenize(text);
    match house_number(&toks) {
        Some((v, n)) if n == toks.len() => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinals_in_words_and_digits() {
        let cases: [(&str, Option<u64>); 16] = [
            ("zero", Some(0)),
            ("seven", Some(7)),
            ("fifteen", Some(15)),
            ("forty two", Some(42)),
            ("forty-two", Some(42)),
            ("Ninety", Some(90)),
            ("one hundred", Some(100)),
            ("a hundred and five", Some(105)),
            ("three hundred twelve", Some(312)),
            ("fifteen hundred", Some(1500)),
            ("two thousand and twenty six", Some(2026)),
            ("a thousand", Some(1000)),
            ("1,200", Some(1200)),
            ("42", Some(42)),
            ("forty two apples", None),
            ("apples", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_number(text), want, "{text}");
        }
    }

    #[test]
    fn punctuation_ends_a_number() {
        let toks = tokenize("forty, two");
        assert_eq!(cardinal(&toks), Some((40, 1)));
    }

    #[test]
    fn house_numbers_read_in_groups() {
        let cases = [
            ("one twenty three", Some("123")),
            ("twelve oh five", Some("1205")),
            ("fifteen twenty", Some("1520")),
            ("four five six", Some("456")),
            ("Fifteen", Some("15")),
            ("one hundred twenty three", Some("123")),
            ("forty two", Some("42")),
            ("42b", Some("42B")),
            ("4521", Some("4521")),
            ("Maple", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_house_number(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn ordinals() {
        for (text, want) in [
            ("third", Some((3, 1))),
            ("21st", Some((21, 1))),
            ("twenty first", Some((21, 2))),
            ("fifteenth", Some((15, 1))),
            ("thirtieth", Some((30, 1))),
            ("fifteen", None),
        ] {
            assert_eq!(ordinal(&tokenize(text)), want, "{text}");
        }
    }

    #[test]
    fn digit_words() {
        assert_eq!(digit_word("oh"), Some(0));
        assert_eq!(digit_word("nine"), Some(9));
        assert_eq!(digit_word("ten"), None);
    }
}
