//! SMS length arithmetic. A message in the GSM 03.38 7-bit alphabet fits 160
//! septets in one segment and 153 per segment once split (the rest of each
//! segment carries the concatenation header); the extension characters
//! (`^{}\[~]|€`) take two septets. A single character outside the alphabet
//! turns the whole message into UCS-2: 70 UTF-16 units, 67 per segment once
//! split. [`plain`] maps typographic characters to GSM ones so that a curly
//! quote from a transcript does not halve the room.

/// The GSM 03.38 basic alphabet (one septet each).
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// Reached through the escape code: two septets each.
const EXTENSION: &str = "^{}\\[~]|€\u{c}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn of(text: &str) -> Encoding {
        if text.chars().all(|c| septets(c).is_some()) {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        }
    }

    /// Room in a message sent whole, in this encoding's units.
    fn single(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// Room in each part of a split message.
    fn per_part(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }

    /// Room for a message of at most `segments` segments.
    pub fn capacity(self, segments: usize) -> usize {
        if segments <= 1 {
            self.single()
        } else {
            self.per_part() * segments
        }
    }
}

fn septets(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// What `c` costs in `encoding`.
pub fn char_units(c: char, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => septets(c).unwrap_or(2),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// What `text` costs in `encoding`.
pub fn units(text: &str, encoding: Encoding) -> usize {
    text.chars().map(|c| char_units(c, encoding)).sum()
}

/// How many segments `text` is sent as.
pub fn segments(text: &str) -> usize {
    let encoding = Encoding::of(text);
    let used = units(text, encoding);
    if used <= encoding.single() {
        1
    } else {
        used.div_ceil(encoding.per_part())
    }
}

/// Maps typographic punctuation and common accented letters to GSM
/// characters and folds runs of whitespace (newlines included) into one
/// space. Letters with no GSM stand-in (other scripts) are kept: a name is
/// worth a UCS-2 message.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
            continue;
        }
        match stand_in(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
    out.trim_end().to_string()
}

fn stand_in(c: char) -> Option<&'static str> {
    Some(match c {
        '‘' | '’' | '‚' | '′' | '`' | '´' => "'",
        '“' | '”' | '„' | '″' | '«' | '»' => "\"",
        '–' | '—' | '‒' | '−' | '‐' | '‑' => "-",
        '…' => "...",
        '•' | '·' => "-",
        'á' | 'â' | 'ã' | 'ā' | 'ą' => "a",
        'Á' | 'Â' | 'Ã' | 'À' | 'Ā' | 'Ą' => "A",
        'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'Ê' | 'Ë' | 'È' | 'Ē' | 'Ę' | 'Ě' => "E",
        'í' | 'î' | 'ï' | 'ī' => "i",
        'Í' | 'Î' | 'Ï' | 'Ì' | 'Ī' => "I",
        'ó' | 'ô' | 'õ' | 'ō' | 'ő' => "o",
        'Ó' | 'Ô' | 'Õ' | 'Ò' | 'Ō' | 'Ő' => "O",
        'ú' | 'û' | 'ū' | 'ů' | 'ű' => "u",
        'Ú' | 'Û' | 'Ù' | 'Ū' | 'Ů' | 'Ű' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' | 'Ÿ' => "Y",
        'ç' | 'č' | 'ć' => "c",
        'Č' | 'Ć' => "C",
        'ł' => "l",
        'Ł' => "L",
        'ś' | 'š' | 'ş' => "s",
        'Ś' | 'Š' | 'Ş' => "S",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ń' | 'ň' => "n",
        'ř' => "r",
        'ď' => "d",
        'ť' => "t",
        _ => return None,
    })
}

/// Shortens `text` to at most `max` units of `encoding`, ending on a word
/// boundary where one is near and marking the cut with "...".
pub fn shorten(text: &str, max: usize, encoding: Encoding) -> String {
    if units(text, encoding) <= max {
        return text.to_string();
    }
    const MARK: &str = "...";
    let room = max.saturating_sub(units(MARK, encoding));
    let mut used = 0;
    let mut cut = 0;
    for (i, c) in text.char_indices() {
        let cost = char_units(c, encoding);
        if used + cost > room {
            break;
        }
        used += cost;
        cut = i + c.len_utf8();
    }
    let head = &text[..cut];
    // Back up to the last space if that loses little.
    let head = match head.rfind(' ') {
        Some(space) if cut - space <= 12 && space > 0 => &head[..space],
        _ => head,
    };
    let head = head.trim_end_matches([' ', ',', '.', ';', ':', '-']);
    if head.is_empty() {
        return if max >= units(MARK, encoding) {
            MARK.to_string()
        } else {
            String::new()
        };
    }
    format!("{head}{MARK}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_segment_limits() {
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        // Extension characters cost two septets.
        assert_eq!(units("€[]", Encoding::Gsm7), 6);
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&"€".repeat(81)), 2);
    }

    #[test]
    fn one_foreign_character_switches_to_ucs2() {
        assert_eq!(Encoding::of("Hello é"), Encoding::Gsm7);
        assert_eq!(Encoding::of("Hello 王"), Encoding::Ucs2);
        assert_eq!(segments(&format!("王{}", "a".repeat(69))), 1);
        assert_eq!(segments(&format!("王{}", "a".repeat(70))), 2);
        assert_eq!(segments(&format!("王{}", "a".repeat(133))), 2);
        assert_eq!(segments(&format!("王{}", "a".repeat(134))), 3);
        // An emoji is two UTF-16 units.
        assert_eq!(units("🙂", Encoding::Ucs2), 2);
    }

    #[test]
    fn plain_maps_typography_and_folds_space() {
        assert_eq!(
            plain("  It’s “urgent” –\n\tthe tap… à côté "),
            "It's \"urgent\" - the tap... à coté"
        );
        assert_eq!(Encoding::of(&plain("Zoë Łukasz Štěpán")), Encoding::Gsm7);
        assert_eq!(plain("王小明"), "王小明");
    }

    #[test]
    fn shorten_cuts_on_words_within_budget() {
        let text = "water is pouring through the kitchen ceiling light fitting";
        let short = shorten(text, 30, Encoding::Gsm7);
        assert!(units(&short, Encoding::Gsm7) <= 30, "{short}");
        assert_eq!(short, "water is pouring through...");
        assert_eq!(shorten(text, 200, Encoding::Gsm7), text);
        assert_eq!(
            shorten("abcdefghijklmnopqrstuvwxyz", 10, Encoding::Gsm7),
            "abcdefg..."
        );
        assert_eq!(shorten("abc def", 2, Encoding::Gsm7), "");
        // Counting UTF-16 units, never splitting a character.
        let cut = shorten("王王王王王王", 5, Encoding::Ucs2);
        assert_eq!(cut, "王王...");
    }
}
