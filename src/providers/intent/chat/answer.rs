//! Checks a complete answer from the chat model and maps it into an
//! [`Extraction`]. A field of the wrong JSON type makes the whole answer
//! invalid (the caller retries); a value that is merely unusable — a
//! category not offered, an unknown urgency, an implausible phone number, an
//! unreadable time — is dropped and the rest kept. Pure.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::domain::{Extraction, Urgency};
use crate::providers::intent::rules::normalise_phone;

/// Longest reply kept, in characters; a longer one is not a spoken turn.
pub const MAX_REPLY_CHARS: usize = 600;
/// Longest free-text field kept, in characters; longer ones are cut.
const MAX_FIELD_CHARS: usize = 300;
/// Confidence assumed when a form without a strict schema leaves it out.
const DEFAULT_CONFIDENCE: f32 = 0.5;

/// What the answer is checked against.
pub struct AnswerRules<'a> {
    pub categories: &'a [String],
    pub tz: Tz,
}

/// Reads and checks `text`, the complete answer (message content or
/// function arguments). `Err` says why it is unusable.
pub fn parse_answer(text: &str, rules: &AnswerRules<'_>) -> Result<Extraction, String> {
    let json =
        json_object_text(text).ok_or_else(|| "the answer holds no JSON object".to_string())?;
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("the answer is not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("the answer is not a JSON object".into());
    };
    let mut out = Extraction {
        reply: text_field(&obj, "reply")?.filter(|r| r.chars().count() <= MAX_REPLY_CHARS),
        issue: text_field(&obj, "issue")?.map(cut),
        location: text_field(&obj, "location")?.map(cut),
        requested_time: text_field(&obj, "requested_time")?.map(cut),
        caller_name: text_field(&obj, "caller_name")?.map(cut),
        callback_number: text_field(&obj, "callback_number")?.and_then(|n| plausible_phone(&n)),
        requested_at: text_field(&obj, "requested_at")?.and_then(|t| parse_when(&t, rules.tz)),
        urgency: text_field(&obj, "urgency")?.and_then(|u| parse_urgency(&u)),
        confidence: match obj.get("confidence") {
            None | Some(Value::Null) => DEFAULT_CONFIDENCE,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0).clamp(0.0, 1.0) as f32,
            Some(other) => return Err(type_error("confidence", "a number", other)),
        },
        wants_human: match obj.get("wants_human") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(type_error("wants_human", "true or false", other)),
        },
        category: None,
    };
    if let Some(said) = text_field(&obj, "category")? {
        match known_category(&said, rules.categories) {
            Some(c) => out.category = Some(c),
            None => {
                // Not a category we offer: keep the rest, trust it less.
                tracing::debug!(category = %said, "chat answer named a category outside the list");
                out.confidence *= 0.5;
            }
        }
    }
    Ok(out)
}

/// The JSON object inside `text`, tolerating code fences or a sentence
/// around it (plain-JSON servers sometimes add them).
fn json_object_text(text: &str) -> Option<&str> {
    let t = text.trim();
    if t.starts_with('{') && t.ends_with('}') {
        return Some(t);
    }
    let start = t.find('{')?;
    // Without a closing brace, the JSON reader says what is wrong.
    match t.rfind('}') {
        Some(end) if end > start => Some(&t[start..=end]),
        _ => Some(&t[start..]),
    }
}

fn type_error(field: &str, wanted: &str, got: &Value) -> String {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    format!("`{field}` is {kind}, not {wanted}")
}

/// A text field: trimmed, with empty and placeholder values read as absent.
fn text_field(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            let placeholder = ["", "null", "none", "unknown", "n/a", "not provided"]
                .iter()
                .any(|p| s.eq_ignore_ascii_case(p));
            Ok((!placeholder).then(|| s.to_string()))
        }
        Some(other) => Err(type_error(field, "text or null", other)),
    }
}

fn cut(s: String) -> String {
    match s.char_indices().nth(MAX_FIELD_CHARS) {
        Some((end, _)) => s[..end].trim_end().to_string(),
        None => s,
    }
}

/// The configured category `said` names, ignoring case, spaces and dashes.
fn known_category(said: &str, categories: &[String]) -> Option<String> {
    let key = |s: &str| s.trim().to_lowercase().replace([' ', '-'], "_");
    let said = key(said);
    categories.iter().find(|c| key(c) == said).cloned()
}

fn parse_urgency(said: &str) -> Option<Urgency> {
    Urgency::ALL
        .into_iter()
        .find(|u| u.as_str().eq_ignore_ascii_case(said.trim()))
}

/// A phone number with 7–15 digits written with the usual separators, in
/// the same normal form as the rule engine's.
fn plausible_phone(said: &str) -> Option<String> {
    let said = said.trim();
    let (plus, rest) = match said.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, said),
    };
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    (7..=15)
        .contains(&digits.len())
        .then(|| normalise_phone(&digits, plus))
}

/// An ISO 8601 time: with an offset it is exact; without one it is local
/// time in `tz` (a time in a spring-forward gap moves an hour on; an
/// ambiguous one takes the earlier instant).
pub fn parse_when(said: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let said = said.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(said) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(said, f).ok())?;
    let local = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(earlier, _) => earlier,
        LocalResult::None => tz
            .from_local_datetime(&naive.checked_add_signed(TimeDelta::try_hours(1)?)?)
            .earliest()?,
    };
    Some(local.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AnswerRules<'static> {
        static CATS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["plumbing".into(), "appliance_repair".into()]);
        AnswerRules {
            categories: &CATS,
            tz: chrono_tz::America::New_York,
        }
    }

    #[test]
    fn a_full_answer_maps_every_field() {
        let e = parse_answer(
            r#"{"reply":"Got it. When suits you?","category":"Appliance Repair","issue":"Fridge is warm",
                "location":"12 Elm St","requested_time":"tomorrow at 9","requested_at":"2025-03-11T09:00",
                "urgency":"High","caller_name":"Ann Lee","callback_number":"(555) 123-4567",
                "confidence":1.7,"wants_human":false}"#,
            &rules(),
        )
        .unwrap();
        assert_eq!(e.reply.as_deref(), Some("Got it. When suits you?"));
        assert_eq!(e.category.as_deref(), Some("appliance_repair"));
        assert_eq!(e.issue.as_deref(), Some("Fridge is warm"));
        assert_eq!(e.location.as_deref(), Some("12 Elm St"));
        assert_eq!(e.requested_time.as_deref(), Some("tomorrow at 9"));
        // 09:00 EDT is 13:00 UTC.
        assert_eq!(
            e.requested_at.unwrap().to_rfc3339(),
            "2025-03-11T13:00:00+00:00"
        );
        assert_eq!(e.urgency, Some(Urgency::High));
        assert_eq!(e.caller_name.as_deref(), Some("Ann Lee"));
        assert_eq!(e.callback_number.as_deref(), Some("+15551234567"));
        assert_eq!(e.confidence, 1.0);
        assert!(!e.wants_human);
    }

    #[test]
    fn unusable_values_are_dropped_and_wrong_types_refused() {
        let e = parse_answer(
            "```json\n{\"reply\":\"\",\"category\":\"roofing\",\"urgency\":\"whenever\",\"callback_number\":\"call me\",\"requested_at\":\"next week\",\"confidence\":0.8,\"issue\":\"N/A\"}\n```",
            &rules(),
        )
        .unwrap();
        assert_eq!(e.reply, None);
        assert_eq!(e.category, None);
        assert_eq!(e.confidence, 0.4);
        assert_eq!(e.urgency, None);
        assert_eq!(e.callback_number, None);
        assert_eq!(e.requested_at, None);
        assert_eq!(e.issue, None);
        let long = format!("{{\"reply\":\"{}\"}}", "word ".repeat(200));
        assert_eq!(parse_answer(&long, &rules()).unwrap().reply, None);
        for bad in [
            r#"{"reply":"Hi","confidence":"high"}"#,
            r#"{"reply":"Hi","wants_human":"yes"}"#,
            r#"{"reply":42}"#,
            r#"["reply"]"#,
            r#"{"reply":"Hi""#,
            "no json here",
        ] {
            assert!(parse_answer(bad, &rules()).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_with_offsets_and_in_dst_gaps() {
        let tz = chrono_tz::America::New_York;
        assert_eq!(
            parse_when("2025-03-11T09:00:00-04:00", tz)
                .unwrap()
                .to_rfc3339(),
            "2025-03-11T13:00:00+00:00"
        );
        assert_eq!(
            parse_when("2025-03-11T09:00:00Z", tz).unwrap().to_rfc3339(),
            "2025-03-11T09:00:00+00:00"
        );
        // 02:30 on 9 March 2025 does not exist in New York: it moves to 03:30 EDT.
        assert_eq!(
            parse_when("2025-03-09 02:30", tz).unwrap().to_rfc3339(),
            "2025-03-09T07:30:00+00:00"
        );
        assert_eq!(parse_when("2025-03-09", tz), None);
    }
}
