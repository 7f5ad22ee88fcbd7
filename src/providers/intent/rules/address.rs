//! Street addresses in a caller's words: a house number (digits or spoken,
//! "one twenty three"), one to three street-name words, a street type, and an
//! optional apartment/unit. Output is normalised: "15 Maple Avenue, Apartment 4".

use super::numbers::house_number;
use super::text::{title_case, tokenize, Break, Tok};

/// Street types as said or abbreviated, and how they are written out.
const STREET_TYPES: [(&str, &str); 38] = [
    ("street", "Street"),
    ("st", "Street"),
    ("avenue", "Avenue"),
    ("ave", "Avenue"),
    ("road", "Road"),
    ("rd", "Road"),
    ("drive", "Drive"),
    ("dr", "Drive"),
    ("lane", "Lane"),
    ("ln", "Lane"),
    ("boulevard", "Boulevard"),
    ("blvd", "Boulevard"),
    ("court", "Court"),
    ("ct", "Court"),
    ("place", "Place"),
    ("pl", "Place"),
    ("way", "Way"),
    ("terrace", "Terrace"),
    ("circle", "Circle"),
    ("cir", "Circle"),
    ("parkway", "Parkway"),
    ("pkwy", "Parkway"),
    ("highway", "Highway"),
    ("hwy", "Highway"),
    ("crescent", "Crescent"),
    ("square", "Square"),
    ("trail", "Trail"),
    ("plaza", "Plaza"),
    ("pike", "Pike"),
    ("close", "Close"),
    ("row", "Row"),
    ("loop", "Loop"),
    ("alley", "Alley"),
    ("grove", "Grove"),
    ("gardens", "Gardens"),
    ("mews", "Mews"),
    ("walk", "Walk"),
    ("heights", "Heights"),
];

/// Words that introduce a unit, and how they are written out.
const UNIT_WORDS: [(&str, &str); 8] = [
    ("apartment", "Apartment"),
    ("apt", "Apartment"),
    ("unit", "Unit"),
    ("suite", "Suite"),
    ("flat", "Flat"),
    ("number", "Unit"),
    ("floor", "Floor"),
    ("room", "Room"),
];

/// Words that never belong to a street name.
const NOT_NAME: [&str; 34] = [
    "the", "a", "an", "my", "our", "your", "his", "her", "their", "on", "at", "in", "of", "and",
    "or", "is", "it", "to", "for", "with", "this", "that", "i", "we", "you", "they", "there", "am",
    "pm", "oh", "from", "by", "near", "about",
];

/// An address found in a turn, with the tokens it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub text: String,
    pub first: usize,
    pub last: usize,
}

/// The first address in `toks`.
pub fn find(toks: &[Tok<'_>]) -> Option<Found> {
    (0..toks.len()).find_map(|i| address_at(toks, i))
}

/// Finds and normalises the first address in `text`.
pub fn find_address(text: &str) -> Option<String> {
    find(&tokenize(text)).map(|f| f.text)
}

fn address_at(toks: &[Tok<'_>], i: usize) -> Option<Found> {
    let (number, used) = house_number(&toks[i..])?;
    if toks[i + used - 1].brk != Break::None {
        return None;
    }
    let name_start = i + used;
    let (kind, type_at) = (name_start + 1..toks.len().min(name_start + 4))
        .find_map(|j| street_type(&toks[j].low).map(|k| (k, j)))?;
    let name = &toks[name_start..type_at];
    let name_ok = name.iter().all(|t| {
        t.brk == Break::None
            && t.low.chars().all(|c| c.is_alphabetic() || c == '\'')
            && !NOT_NAME.contains(&t.low.as_str())
    });
    if !name_ok {
        return None;
    }
    let mut text = format!("{number} {} {kind}", words(name));
    let mut last = type_at;
    if let Some((unit, end)) = unit_after(toks, type_at) {
        text.push_str(", ");
        text.push_str(&unit);
        last = end;
    } else if let Some(unit) = unit_before(toks, i) {
        text.push_str(", ");
        text.push_str(&unit);
    }
    Some(Found {
        text,
        first: i,
        last,
    })
}

pub fn street_type(low: &str) -> Option<&'static str> {
    STREET_TYPES
        .iter()
        .find(|(w, _)| *w == low)
        .map(|(_, n)| *n)
}

fn words(toks: &[Tok<'_>]) -> String {
    toks.iter()
        .map(|t| {
            if t.capitalized() {
                t.raw.to_string()
            } else {
                title_case(&t.low)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// "…, apartment 4" right after the street type; returns the unit and its last token.
fn unit_after(toks: &[Tok<'_>], type_at: usize) -> Option<(String, usize)> {
    if toks[type_at].brk == Break::Stop {
        return None;
    }
    let at = type_at + 1;
    let word = UNIT_WORDS
        .iter()
        .find(|(w, _)| toks.get(at).is_some_and(|t| t.is(w)))?;
    if toks[at].brk != Break::None {
        return None;
    }
    let (id, used) = unit_id(&toks[at + 1..])?;
    Some((format!("{} {id}", word.1), at + used))
}

/// "apartment 4, 15 Maple Avenue": a unit said just before the house number.
fn unit_before(toks: &[Tok<'_>], number_at: usize) -> Option<String> {
    for back in [2, 3] {
        let Some(start) = number_at.checked_sub(back) else {
            continue;
        };
        let Some(word) = UNIT_WORDS.iter().find(|(w, _)| toks[start].is(w)) else {
            continue;
        };
        let Some((id, used)) = unit_id(&toks[start + 1..number_at]) else {
            continue;
        };
        let gap_ok = match number_at - (start + 1 + used) {
            0 => true,
            1 => matches!(toks[number_at - 1].low.as_str(), "at" | "of" | "in"),
            _ => false,
        };
        if gap_ok {
            return Some(format!("{} {id}", word.1));
        }
    }
    None
}

/// A unit identifier: a number, a number and a letter ("4b", "four b"), or a letter.
fn unit_id(toks: &[Tok<'_>]) -> Option<(String, usize)> {
    let first = toks.first()?;
    if first.low.len() == 1 && first.low.chars().all(|c| c.is_ascii_lowercase()) {
        return Some((first.low.to_uppercase(), 1));
    }
    let (mut id, mut used) = house_number(toks)?;
    let letter = toks.get(used).filter(|t| {
        toks[used - 1].brk == Break::None
            && t.low.len() == 1
            && t.low.chars().all(|c| c.is_ascii_lowercase())
            && t.low != "a"
    });
    if let Some(t) = letter {
        id.push_str(&t.low.to_uppercase());
        used += 1;
    }
    Some((id, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_digits_and_words() {
        let cases = [
            ("I live at 42 Oak Street.", Some("42 Oak Street")),
            (
                "It's Fifteen Maple Avenue, apartment 4.",
                Some("15 Maple Avenue, Apartment 4"),
            ),
            ("one twenty three Elm Road", Some("123 Elm Road")),
            (
                "The address is 7 north main st",
                Some("7 North Main Street"),
            ),
            (
                "Unit 3, 88 Harbor View Drive",
                Some("88 Harbor View Drive, Unit 3"),
            ),
            (
                "We're at 1500 Pine Ln, apt 4b",
                Some("1500 Pine Lane, Apartment 4B"),
            ),
            (
                "twelve oh five Cedar Court, suite two hundred",
                Some("1205 Cedar Court, Suite 200"),
            ),
            ("I've been waiting two weeks on the street", None),
            ("Can someone come at three", None),
            ("one way or another", None),
            ("42 Court Street", Some("42 Court Street")),
        ];
        for (text, want) in cases {
            assert_eq!(find_address(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn reports_the_tokens_it_covers() {
        let toks = tokenize("Yes, 42 Oak Street, apartment 4. Thanks");
        let found = find(&toks);
        assert_eq!(found.map(|f| (f.first, f.last)), Some((1, 5)));
    }
}
