//! CSV encoding for the queue export (RFC 4180: CRLF line ends, fields
//! quoted when they hold a comma, quote, line break or edge whitespace).
//!
//! Task text comes from callers' speech, so a cell that a spreadsheet would
//! run as a formula gets a leading apostrophe. Phone numbers (`+1555…`) and
//! negative numbers stay as they are.

/// One CSV record, CRLF-terminated.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn csv_field(raw: &str) -> String {
    let value = defuse_formula(raw);
    let needs_quotes = value.contains([',', '"', '\r', '\n'])
        || value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace);
    if needs_quotes {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// Prefixes `'` to cells a spreadsheet would evaluate: leading `=`, `@`, tab or
/// CR always; leading `+`/`-` unless a digit follows (numbers, phone numbers).
fn defuse_formula(value: &str) -> String {
    let mut chars = value.chars();
    let risky = match chars.next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !chars.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    if risky {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields_are_left_alone() {
        assert_eq!(csv_line(&["T-1001", "new", ""]), "T-1001,new,\r\n");
    }

    #[test]
    fn special_characters_are_quoted() {
        assert_eq!(
            csv_line(&["a,b", "say \"hi\"", "two\nlines", " pad"]),
            "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\" pad\"\r\n"
        );
    }

    #[test]
    fn formulas_are_defused_but_numbers_kept() {
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("+15551234567"), "+15551234567");
        assert_eq!(csv_field("-3"), "-3");
        assert_eq!(csv_field("-cmd"), "'-cmd");
        assert_eq!(csv_field("+"), "'+");
    }
}
