//! The messages sent to the chat model: a system prompt built from the
//! business configuration and the call so far, then the conversation turns
//! (caller → `user`, agent → `assistant`). Pure: the time comes from the
//! conversation (or is passed in), nothing is read from the outside.

use chrono::{DateTime, Utc};

use crate::config::{Business, ChatFormat};
use crate::domain::{Conversation, Extraction, Speaker};

use super::schema::Message;

/// Everything the system prompt needs besides the conversation.
pub struct PromptContext<'a> {
    pub business: &'a Business,
    pub form: ChatFormat,
    /// The answer schema as JSON text, spelled out for the plain-JSON form.
    pub schema_text: &'a str,
    pub now: DateTime<Utc>,
}

/// The full message list: the system prompt, then the turns in order.
/// Consecutive turns of one role are joined, since some servers' chat
/// templates insist that roles alternate.
pub fn messages(ctx: &PromptContext<'_>, conv: &Conversation) -> Vec<Message> {
    let mut out = vec![Message {
        role: "system",
        content: system_prompt(ctx, conv),
    }];
    for turn in &conv.turns {
        let role = match turn.speaker {
            Speaker::Caller => "user",
            Speaker::Agent | Speaker::Human => "assistant",
            // Notes for the record, not words anyone said.
            Speaker::System => continue,
        };
        let text = turn.text.trim();
        if text.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => {
                last.content.push('\n');
                last.content.push_str(text);
            }
            _ => out.push(Message {
                role,
                content: text.to_string(),
            }),
        }
    }
    out
}

/// The instructions: who we are, what the caller may need, the local time,
/// what is already known, and how to answer.
pub fn system_prompt(ctx: &PromptContext<'_>, conv: &Conversation) -> String {
    let b = ctx.business;
    let local = ctx.now.with_timezone(&b.timezone);
    let mut p = format!(
        "You are the phone receptionist of {name}. You take service requests from callers.\n",
        name = b.name
    );
    if let Some(area) = b.service_area.as_deref().filter(|a| !a.trim().is_empty()) {
        p.push_str(&format!("{} serves {}.\n", b.name, area.trim()));
    }
    p.push_str(&format!(
        "It is now {} (local time {}, time zone {}); resolve relative times such as \"tomorrow morning\" against it.\n",
        local.format("%A %-d %B %Y, %H:%M"),
        local.format("%Y-%m-%dT%H:%M"),
        b.timezone.name(),
    ));
    match conv.caller_number.as_deref() {
        Some(id) => p.push_str(&format!("The caller ID is {id}.\n")),
        None => p.push_str("The caller ID is unknown.\n"),
    }
    p.push_str(&format!(
        "Service categories (the category must be one of these, or null): {}.\n",
        b.categories.join(", ")
    ));
    p.push_str(&known_lines(&conv.known));
    p.push_str(GUIDE);
    match ctx.form {
        ChatFormat::JsonSchema => {}
        ChatFormat::Tools => p.push_str(&format!(
            "Always answer by calling the function {}.\n",
            super::schema::TOOL_NAME
        )),
        ChatFormat::Json => p.push_str(&format!(
            "Answer with one JSON object only, no other text, matching this JSON Schema: {}\n",
            ctx.schema_text
        )),
    }
    p
}

/// How to fill each field of the answer.
const GUIDE: &str = "\
Read the whole conversation and give one JSON answer with every field:
- reply: what you say next to the caller. Short and natural for speech (no lists, no symbols), at most two sentences, one question at a time. Ask for what is still missing, in this order: the problem, the service address, when they want the visit, their name, a callback number. Do not invent details.
- category: the kind of service needed, from the list above; null when unclear.
- issue: the problem in one short sentence; location: the service address as said; requested_time: when they want the visit, in their words.
- requested_at: requested_time as a local date and time YYYY-MM-DDTHH:MM, or null when no day or time can be worked out.
- urgency: low, normal, high or emergency (emergency only for danger now: flooding, gas, fire, sparks, no heat in freezing weather, someone locked out in danger).
- caller_name: the caller's name; callback_number: only a phone number the caller said.
- confidence: 0 to 1, how sure you are of the category and issue.
- wants_human: true only when the caller asks for a person.
Use null for anything not said.
";

/// What earlier turns established, so the model refines rather than forgets.
fn known_lines(k: &Extraction) -> String {
    let mut facts = Vec::new();
    let mut add = |label: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            facts.push(format!("{label}: {v}"));
        }
    };
    add("category", k.category.as_deref());
    add("issue", k.issue.as_deref());
    add("location", k.location.as_deref());
    add("requested time", k.requested_time.as_deref());
    add("urgency", k.urgency.map(|u| u.as_str()));
    add("caller name", k.caller_name.as_deref());
    add("callback number", k.callback_number.as_deref());
    if k.wants_human {
        facts.push("the caller asked for a person".to_string());
    }
    if facts.is_empty() {
        return "Nothing is known about this call yet.\n".to_string();
    }
    format!(
        "Already known from earlier in the call: {}.\n",
        facts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Urgency, Utterance};
    use chrono::TimeZone;

    fn business() -> Business {
        Business {
            name: "Acme Home Services".into(),
            timezone: chrono_tz::America::New_York,
            categories: vec!["plumbing".into(), "locksmith".into()],
            greeting: "Hello".into(),
            service_area: Some("Springfield".into()),
        }
    }

    fn turn(speaker: Speaker, text: &str) -> Utterance {
        Utterance {
            speaker,
            text: text.into(),
        }
    }

    #[test]
    fn prompt_carries_business_time_caller_and_known_facts() {
        let b = business();
        let conv = Conversation {
            turns: vec![
                turn(Speaker::Agent, "Hello, how can I help?"),
                turn(Speaker::Caller, "My sink leaks."),
                turn(Speaker::System, "caller pressed 1"),
                turn(Speaker::Caller, "It's bad."),
            ],
            caller_number: Some("+15551234567".into()),
            now: None,
            known: Extraction {
                category: Some("plumbing".into()),
                urgency: Some(Urgency::High),
                ..Default::default()
            },
        };
        let ctx = PromptContext {
            business: &b,
            form: ChatFormat::Json,
            schema_text: "{\"type\":\"object\"}",
            // 14:05 UTC on a Monday is 10:05 in New York (EDT).
            now: Utc.with_ymd_and_hms(2025, 6, 2, 14, 5, 0).unwrap(),
        };
        let m = messages(&ctx, &conv);
        let roles: Vec<&str> = m.iter().map(|x| x.role).collect();
        assert_eq!(roles, ["system", "assistant", "user"]);
        assert_eq!(m[2].content, "My sink leaks.\nIt's bad.");
        let p = &m[0].content;
        for needle in [
            "Acme Home Services",
            "Springfield",
            "plumbing, locksmith",
            "Monday 2 June 2025, 10:05",
            "2025-06-02T10:05",
            "America/New_York",
            "+15551234567",
            "category: plumbing",
            "urgency: high",
            "JSON Schema: {\"type\":\"object\"}",
        ] {
            assert!(p.contains(needle), "missing {needle:?} in {p}");
        }
    }

    #[test]
    fn empty_known_says_so() {
        let b = business();
        let ctx = PromptContext {
            business: &b,
            form: ChatFormat::JsonSchema,
            schema_text: "",
            now: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        };
        let p = system_prompt(&ctx, &Conversation::default());
        assert!(p.contains("Nothing is known"));
        assert!(p.contains("caller ID is unknown"));
        assert!(!p.contains("JSON Schema:"));
    }
}
