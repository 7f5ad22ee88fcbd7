//! The words the agent says and the small text judgements the core makes on
//! what the caller said (backchannel, yes or no). Pure functions; no state.

use crate::domain::{Extraction, Urgency};

use super::EscalationReason;

pub const FILLERS: [&str; 5] = [
    "One moment.",
    "Thanks for waiting, I'm still working on that.",
    "Just a moment longer.",
    "Sorry for the wait, I'm still with you.",
    "Nearly there, thanks for your patience.",
];
pub const ESCALATE_TRANSFER: &str = "I'm connecting you with a member of our team now.";
pub const ESCALATE_CALLBACK: &str = "A member of our team will call you back shortly.";
pub const TRANSFER_FAILED: &str = "I'm sorry, I couldn't reach anyone right now. \
     A member of our team will call you back shortly. \
     Is there anything you'd like me to pass on?";
pub const MESSAGE_TAKEN: &str = "Thank you, I'll pass that on.";
pub const VOICE_MESSAGE: &str = "I'm sorry, I can't take your details automatically right now. \
     Please leave your name, your number and what you need after this message, \
     and a member of our team will call you back.";
pub const MESSAGE_THANKS: &str =
    "Thank you, we have your message and will call you back soon. Goodbye.";
pub const DIDNT_CATCH: &str = "I'm sorry, I didn't catch that.";
pub const STILL_THERE: &str = "Are you still there?";
pub const ASK_NEED: &str = "How can we help you today?";
pub const ASK_ISSUE: &str = "Can you tell me a little more about the problem?";
pub const ASK_LOCATION: &str = "What is the address where you need the service?";
pub const ASK_TIME: &str = "When would you like someone to come out?";
pub const ASK_NAME: &str = "May I have your name, please?";
pub const ASK_NUMBER: &str = "What is the best number to reach you?";
pub const ASK_CHANGE: &str = "Sorry about that. What should I change?";
pub const SAVING: &str = "Thank you, I'm saving your request now.";
pub const SAVED_NO_REFERENCE: &str = "Your request is saved and our team will be in touch.";
pub const ANYTHING_ELSE: &str = "Is there anything else I can help with?";
pub const NOTED: &str = "I've added that to your request for our team.";

/// Short sounds a listener makes while the other side talks; they must not
/// interrupt the agent.
const BACKCHANNELS: [&str; 16] = [
    "yeah", "yes", "yep", "ok", "okay", "uh-huh", "uh huh", "mhm", "mm", "mm-hmm", "hmm", "right",
    "sure", "alright", "got it", "i see",
];

/// The words of `text`, lower-cased, without punctuation.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '\'')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// True when `text` is nothing but backchannel sounds ("yeah", "uh-huh, ok").
pub fn is_backchannel(text: &str) -> bool {
    let ws = words(text);
    if ws.is_empty() {
        return true;
    }
    let joined = ws.join(" ");
    if BACKCHANNELS.contains(&joined.as_str()) {
        return true;
    }
    ws.len() <= 3 && ws.iter().all(|w| BACKCHANNELS.contains(&w.as_str()))
}

/// The caller's answer to a yes-or-no question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Unclear,
}

/// Reads a yes or a no from the start of an answer ("No, it's 555…" is a no).
pub fn yes_no(text: &str) -> Answer {
    const YES: [&str; 12] = [
        "yes",
        "yeah",
        "yep",
        "yup",
        "correct",
        "right",
        "sure",
        "ok",
        "okay",
        "absolutely",
        "perfect",
        "exactly",
    ];
    const NO: [&str; 7] = ["no", "nope", "nah", "wrong", "incorrect", "not", "nothing"];
    let ws = words(text);
    let lead = ws.iter().take(3).map(String::as_str);
    for w in lead {
        if NO.contains(&w) {
            return Answer::No;
        }
        if YES.contains(&w) {
            return Answer::Yes;
        }
    }
    let joined = ws.join(" ");
    if [
        "that's all",
        "that is all",
        "all good",
        "i'm good",
        "im good",
    ]
    .iter()
    .any(|p| joined.contains(p))
    {
        return Answer::No;
    }
    if ["that's it", "it is", "sounds good", "that works"]
        .iter()
        .any(|p| joined.contains(p))
    {
        return Answer::Yes;
    }
    Answer::Unclear
}

/// Splits text into sentences for playback marks; keeps the punctuation.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        current.push(c);
        let ends = matches!(c, '.' | '?' | '!');
        let next_is_space = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if ends && next_is_space {
            push_trimmed(&mut out, &current);
            current.clear();
        }
    }
    push_trimmed(&mut out, &current);
    out
}

fn push_trimmed(out: &mut Vec<String>, s: &str) {
    let t = s.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
}

/// Spells a reference digit by digit: "T-1042" → "T 1 0 4 2".
pub fn spell(reference: &str) -> String {
    let parts: Vec<String> = reference
        .chars()
        .filter(|c| c.is_alphanumeric())
        .map(|c| c.to_ascii_uppercase().to_string())
        .collect();
    parts.join(" ")
}

/// A phone number for the ear: digit by digit in groups ("+1 555 123 4567"
/// → "5 5 5, 1 2 3, 4 5 6 7"), so a synthesizer never reads "five hundred".
pub fn speak_number(number: &str) -> String {
    let mut digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 11 && digits[0] == '1' {
        digits.remove(0);
    }
    if digits.is_empty() {
        return number.to_string();
    }
    let groups: Vec<&[char]> = if digits.len() == 10 {
        vec![&digits[..3], &digits[3..6], &digits[6..]]
    } else {
        digits.chunks(4).collect()
    };
    let spoken: Vec<String> = groups
        .iter()
        .map(|g| g.iter().map(char::to_string).collect::<Vec<_>>().join(" "))
        .collect();
    spoken.join(", ")
}

pub fn confirm_number(number: &str) -> String {
    format!("Is {} the best number to reach you?", speak_number(number))
}

/// The greeting: the outbound opening when there is one, else the configured one.
pub fn greeting(business: &str, greeting: &str, opening: Option<&str>) -> String {
    match opening {
        Some(about) => {
            format!("Hello, this is {business} calling you back about {about}. How can I help?")
        }
        None => greeting.replace("{business}", business),
    }
}

pub fn readback(reference: &str) -> String {
    format!("Your reference is {}.", spell(reference))
}

pub fn goodbye_completed(business: &str) -> String {
    format!("Thank you for calling {business}. Goodbye.")
}

pub const GOODBYE_SILENCE: &str =
    "I'm sorry, I can't hear you. Please call us back any time. Goodbye.";
pub const GOODBYE_MAX_DURATION: &str = "I'm sorry, we've reached the time limit for this call. \
     A member of our team will follow up with you. Goodbye.";

/// One sentence that confirms every detail gathered.
pub fn confirm_details(e: &Extraction) -> String {
    let mut parts = Vec::new();
    let what = match (&e.category, &e.issue) {
        (Some(c), Some(i)) => format!("{} request about {}", c.replace('_', " "), i),
        (Some(c), None) => format!("{} request", c.replace('_', " ")),
        (None, Some(i)) => format!("request about {i}"),
        (None, None) => "request".to_string(),
    };
    parts.push(format!("Let me confirm your {what}"));
    if let Some(l) = &e.location {
        parts.push(format!("at {l}"));
    }
    if let Some(t) = &e.requested_time {
        parts.push(t.clone());
    }
    if let Some(n) = &e.caller_name {
        parts.push(format!("for {n}"));
    }
    if let Some(p) = &e.callback_number {
        parts.push(format!("reachable at {}", speak_number(p)));
    }
    format!("{}. Is that right?", parts.join(", "))
}

/// One paragraph for the person who takes over the call.
pub fn summary(e: &Extraction, reason: EscalationReason) -> String {
    let who = e.caller_name.as_deref().unwrap_or("The caller");
    let mut s = match (&e.category, &e.issue) {
        (Some(c), Some(i)) => format!("{who} needs {}: {i}.", c.replace('_', " ")),
        (Some(c), None) => format!("{who} needs {} help.", c.replace('_', " ")),
        (None, Some(i)) => format!("{who} called about: {i}."),
        (None, None) => format!("{who} has not said what they need yet."),
    };
    if let Some(l) = &e.location {
        s.push_str(&format!(" Location: {l}."));
    }
    if let Some(t) = &e.requested_time {
        s.push_str(&format!(" Requested time: {t}."));
    }
    if let Some(u) = e.urgency {
        if u >= Urgency::High {
            s.push_str(&format!(" Urgency: {u}."));
        }
    }
    if let Some(n) = &e.callback_number {
        s.push_str(&format!(" Callback number: {n}."));
    }
    let why = match reason {
        EscalationReason::CallerAsked => "the caller asked for a person",
        EscalationReason::Emergency => "it sounds like an emergency",
        EscalationReason::LowConfidence => "the assistant could not understand the request",
        EscalationReason::DtmfZero => "the caller pressed 0",
    };
    s.push_str(&format!(" Escalated because {why}."));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backchannels_are_recognised_and_requests_are_not() {
        for b in [
            "yeah",
            "Uh-huh.",
            "OK",
            "okay",
            "mm",
            "right",
            "sure",
            "Yeah, okay.",
            "",
        ] {
            assert!(is_backchannel(b), "{b:?}");
        }
        for t in [
            "my sink is leaking",
            "no wait",
            "yeah my sink is leaking",
            "stop",
        ] {
            assert!(!is_backchannel(t), "{t:?}");
        }
    }

    #[test]
    fn yes_no_reads_the_lead_word() {
        assert_eq!(yes_no("Yes, that's right."), Answer::Yes);
        assert_eq!(yes_no("yeah"), Answer::Yes);
        assert_eq!(yes_no("No, it's 555 987 6543."), Answer::No);
        assert_eq!(yes_no("Nope, that's all, thanks."), Answer::No);
        assert_eq!(yes_no("That's all."), Answer::No);
        assert_eq!(yes_no("my name is Ann"), Answer::Unclear);
    }

    #[test]
    fn sentences_split_at_terminal_punctuation_only() {
        assert_eq!(
            sentences("Thanks for calling. Mr. Fix it, 3.5 stars! How can I help?"),
            vec![
                "Thanks for calling.",
                "Mr.",
                "Fix it, 3.5 stars!",
                "How can I help?"
            ]
        );
        assert_eq!(sentences("no punctuation"), vec!["no punctuation"]);
        assert!(sentences("   ").is_empty());
    }

    #[test]
    fn references_and_numbers_are_spoken_digit_by_digit() {
        assert_eq!(spell("T-1042"), "T 1 0 4 2");
        assert_eq!(readback("t-7"), "Your reference is T 7.");
        assert_eq!(speak_number("+15551234567"), "5 5 5, 1 2 3, 4 5 6 7");
        assert_eq!(speak_number("555-123-4567"), "5 5 5, 1 2 3, 4 5 6 7");
        assert_eq!(speak_number("+44123456"), "4 4 1 2, 3 4 5 6");
        assert_eq!(speak_number("alice"), "alice");
    }

    #[test]
    fn confirmation_and_summary_name_every_detail() {
        let e = Extraction {
            category: Some("appliance_repair".into()),
            issue: Some("the dryer won't start".into()),
            location: Some("42 Oak Street".into()),
            requested_time: Some("tomorrow morning".into()),
            caller_name: Some("Ann Lee".into()),
            callback_number: Some("+15551234567".into()),
            urgency: Some(Urgency::Emergency),
            ..Default::default()
        };
        let c = confirm_details(&e);
        assert_eq!(
            c,
            "Let me confirm your appliance repair request about the dryer won't start, at 42 Oak Street, \
             tomorrow morning, for Ann Lee, reachable at 5 5 5, 1 2 3, 4 5 6 7. Is that right?"
        );
        let s = summary(&e, EscalationReason::Emergency);
        assert!(s.starts_with("Ann Lee needs appliance repair: the dryer won't start."));
        assert!(s.contains("Urgency: emergency."));
        assert!(s.ends_with("Escalated because it sounds like an emergency."));
    }
}
