//! The words of the texts we send: the caller's confirmation with their task
//! reference (one segment) and the on-call person's escalation summary (at
//! most two). Pure functions: fields are made GSM-friendly, and when a text
//! would run over its segments the fields give way in a fixed order, each
//! down to a floor and cut on a word with "..."; the issue's tail goes first,
//! the caller's name last. Phone numbers and references are never cut.

use super::gsm7::{self, Encoding};
use crate::store::Task;

/// Segments for the caller's confirmation.
pub const CALLER_SEGMENTS: usize = 1;
/// Segments for the on-call summary.
pub const ESCALATION_SEGMENTS: usize = 2;

/// The caller's confirmation: `"{business}: thanks for calling. Your
/// reference is T-1001. Please quote it if you contact us again."`
pub fn caller_reference(business: &str, reference: &str) -> String {
    let mut draft = Draft::default();
    draft.field(business, 0, 20);
    draft.fixed(": thanks for calling. Your reference is ");
    draft.fixed(reference);
    draft.fixed(". Please quote it if you contact us again.");
    draft.fit(CALLER_SEGMENTS)
}

/// The on-call person's summary of an escalated task: reference, urgency,
/// category, caller, location and the issue on one line each.
pub fn escalation_summary(business: &str, task: &Task) -> String {
    let mut draft = Draft::default();
    draft.field(business, 1, 20);
    draft.fixed(": escalated call ");
    draft.fixed(&task.reference);
    draft.fixed("\n");
    draft.fixed(&capitalised(task.urgency.as_str()));
    draft.fixed(" - ");
    draft.field(task.category.as_deref().unwrap_or("uncategorised"), 2, 8);
    draft.fixed("\nCaller: ");
    match (&task.caller_name, &task.caller_number) {
        (Some(name), Some(number)) => {
            draft.field(name, 4, 12);
            draft.fixed(" ");
            draft.fixed(number);
        }
        (Some(name), None) => {
            draft.field(name, 4, 12);
            draft.fixed(" (no number)");
        }
        (None, Some(number)) => draft.fixed(number),
        (None, None) => draft.fixed("unknown"),
    }
    if let Some(location) = &task.location {
        draft.fixed("\nWhere: ");
        draft.field(location, 3, 20);
    }
    draft.fixed("\nIssue: ");
    // A long issue gives way first, but keeps its opening words longest.
    draft.field(task.issue.as_deref().unwrap_or("not stated"), 0, 60);
    draft.fit(ESCALATION_SEGMENTS)
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

enum Piece {
    Fixed(String),
    /// Free text that may be shortened: fields with a lower `give_way` are
    /// shortened first, never below `min` units.
    Field {
        text: String,
        give_way: u8,
        min: usize,
    },
}

#[derive(Default)]
struct Draft {
    pieces: Vec<Piece>,
}

impl Draft {
    fn fixed(&mut self, text: &str) {
        self.pieces.push(Piece::Fixed(text.to_string()));
    }

    fn field(&mut self, text: &str, give_way: u8, min: usize) {
        self.pieces.push(Piece::Field {
            text: gsm7::plain(text),
            give_way,
            min,
        });
    }

    fn text(&self) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Fixed(t) | Piece::Field { text: t, .. } => t.as_str(),
            })
            .collect()
    }

    /// The text, shortened field by field until it fits `segments`.
    fn fit(mut self, segments: usize) -> String {
        loop {
            let full = self.text();
            let encoding = Encoding::of(&full);
            let capacity = encoding.capacity(segments);
            let used = gsm7::units(&full, encoding);
            if used <= capacity {
                return full;
            }
            let over = used - capacity;
            if !self.shorten_one(over, encoding) {
                // Every field is at its minimum: cut the whole text.
                return gsm7::shorten(&full, capacity, encoding);
            }
        }
    }

    /// Shortens the first field to give way that still has room to lose;
    /// `false` when none has.
    fn shorten_one(&mut self, over: usize, encoding: Encoding) -> bool {
        let candidate = self
            .pieces
            .iter_mut()
            .filter_map(|p| match p {
                Piece::Field {
                    text,
                    give_way,
                    min,
                } if gsm7::units(text, encoding) > *min => Some((give_way, text, min)),
                _ => None,
            })
            .min_by_key(|(give_way, _, _)| **give_way);
        let Some((_, text, min)) = candidate else {
            return false;
        };
        let now = gsm7::units(text, encoding);
        let target = now.saturating_sub(over).max(*min);
        let shorter = gsm7::shorten(text, target, encoding);
        if gsm7::units(&shorter, encoding) >= now {
            // Could not lose anything: stop considering this field.
            *min = now;
        } else {
            *text = shorter;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TaskStatus, Urgency};
    use chrono::Utc;

    fn task() -> Task {
        Task {
            id: 7,
            reference: "T-1001".into(),
            call_id: Some(3),
            status: TaskStatus::Escalated,
            category: Some("plumbing".into()),
            issue: Some("kitchen sink leaking under the cabinet".into()),
            location: Some("42 Oak Street, Springfield".into()),
            requested_time: None,
            requested_at: None,
            urgency: Urgency::Emergency,
            caller_name: Some("Jane Doe".into()),
            caller_number: Some("+15551234567".into()),
            confidence: 0.9,
            summary: None,
            assignee: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            closed_at: None,
        }
    }

    #[test]
    fn caller_confirmation_names_business_and_reference() {
        let text = caller_reference("Acme Plumbing", "T-1001");
        assert_eq!(
            text,
            "Acme Plumbing: thanks for calling. Your reference is T-1001. Please quote it if you contact us again."
        );
        assert_eq!(gsm7::segments(&text), 1);
    }

    #[test]
    fn a_long_business_name_gives_way_not_the_reference() {
        let business = "The Very Long Named Emergency Plumbing Heating Electrical and General Home Repair Services Company of Greater Springfield";
        let text = caller_reference(business, "T-123456");
        assert_eq!(gsm7::segments(&text), 1, "{text}");
        assert!(text.starts_with("The Very Long"), "{text}");
        assert!(text.contains("...: thanks for calling. Your reference is T-123456."));
    }

    #[test]
    fn escalation_summary_has_every_field_on_its_line() {
        let text = escalation_summary("Acme Plumbing", &task());
        assert_eq!(
            text,
            "Acme Plumbing: escalated call T-1001\n\
             Emergency - plumbing\n\
             Caller: Jane Doe +15551234567\n\
             Where: 42 Oak Street, Springfield\n\
             Issue: kitchen sink leaking under the cabinet"
        );
        assert_eq!(gsm7::segments(&text), 2);
    }

    #[test]
    fn a_long_issue_is_cut_to_two_segments_keeping_the_rest() {
        let mut t = task();
        t.issue = Some(format!(
            "water is “pouring” through the ceiling {}",
            "and the neighbours are worried about the wiring ".repeat(10)
        ));
        let text = escalation_summary("Acme Plumbing", &t);
        assert_eq!(gsm7::segments(&text), 2, "{text}");
        assert_eq!(
            Encoding::of(&text),
            Encoding::Gsm7,
            "curly quotes are mapped"
        );
        assert!(text.starts_with("Acme Plumbing: escalated call T-1001\nEmergency - plumbing\n"));
        assert!(text.contains("Caller: Jane Doe +15551234567\n"));
        assert!(text.contains("Where: 42 Oak Street, Springfield\n"));
        assert!(text.contains("Issue: water is \"pouring\" through the ceiling"));
        assert!(text.ends_with("..."));
        assert!(
            gsm7::units(&text, Encoding::Gsm7) > 280,
            "cut only as much as needed"
        );
    }

    #[test]
    fn a_name_in_another_script_stays_and_the_budget_follows_ucs2() {
        let mut t = task();
        t.caller_name = Some("王小明".into());
        t.issue = Some("the boiler makes a banging noise every morning ".repeat(4));
        let text = escalation_summary("Acme Plumbing", &t);
        assert!(text.contains("Caller: 王小明 +15551234567"));
        assert_eq!(Encoding::of(&text), Encoding::Ucs2);
        assert!(gsm7::segments(&text) <= 2, "{text}");
        assert!(text.contains("T-1001") && text.contains("Issue: the boiler"));
    }

    #[test]
    fn missing_details_are_said_plainly() {
        let mut t = task();
        t.category = None;
        t.caller_name = None;
        t.caller_number = None;
        t.location = None;
        t.issue = None;
        t.urgency = Urgency::Normal;
        assert_eq!(
            escalation_summary("Acme", &t),
            "Acme: escalated call T-1001\nNormal - uncategorised\nCaller: unknown\nIssue: not stated"
        );
    }

    #[test]
    fn everything_long_still_fits() {
        let long = "word ".repeat(100);
        let mut t = task();
        t.category = Some(long.clone());
        t.caller_name = Some(long.clone());
        t.location = Some(long.clone());
        t.issue = Some(long.clone());
        let text = escalation_summary(&long, &t);
        assert!(gsm7::segments(&text) <= 2, "{text}");
        assert!(text.contains("T-1001") && text.contains("+15551234567"));
        assert!(text.contains("\nIssue: word"));
    }
}
