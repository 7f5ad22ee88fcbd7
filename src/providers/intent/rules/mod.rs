//! The offline rule-based intent engine: keyword and phrase rules that turn the
//! caller's turns into an [`Extraction`] with no model, no network and no clock
//! (relative times resolve against `Conversation::now`). It reads only the
//! conversation; it never replies (`reply` stays `None`) — the dialogue policy
//! decides what to say.
//!
//! Fields that a caller may correct (location, time, name, number) come from
//! the newest turn that has them; the category, urgency and wants-human read
//! the whole call.

mod address;
mod classify;
mod lexicon;
mod numbers;
mod person;
mod resolve;
mod signals;
mod text;
mod when;

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::{Conversation, Extraction, Speaker};
use crate::providers::{BoxFuture, IntentExtractor, ProviderError};

pub use address::find_address;
pub use numbers::{parse_house_number, parse_number};
/// The normal form of a phone number's digits, shared with the chat engine.
pub(crate) use person::normalise as normalise_phone;
pub use resolve::parse_time;

use classify::Classifier;
use text::{span, Break, Tok};

/// The longest issue kept, in bytes; longer sentences are cut at a word.
const MAX_ISSUE: usize = 160;

/// Words that say something is wrong, so the sentence carrying them is the issue.
static PROBLEM_WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    [
        "broken",
        "broke",
        "leak",
        "leaking",
        "working",
        "work",
        "won't",
        "stopped",
        "problem",
        "issue",
        "need",
        "fix",
        "repair",
        "replace",
        "install",
        "clogged",
        "damaged",
        "cracked",
        "stuck",
        "noise",
        "smell",
        "burst",
        "flooding",
        "help",
        "infestation",
        "quote",
    ]
    .into_iter()
    .collect()
});

/// Leading words dropped from an issue.
const FILLERS: [&str; 16] = [
    "um",
    "uh",
    "so",
    "well",
    "yeah",
    "yes",
    "hi",
    "hello",
    "hey",
    "and",
    "but",
    "oh",
    "okay",
    "ok",
    "also",
    "basically",
];

/// The rule-based extractor. Cheap to share; build once per configuration.
#[derive(Debug, Clone)]
pub struct RulesExtractor {
    classifier: Classifier,
    tz: Tz,
}

/// One caller turn, tokenized once per extraction.
struct Turn<'a> {
    text: &'a str,
    toks: Vec<Tok<'a>>,
    /// What the agent's previous turn asked, so a bare "yes" or "John" means something.
    asked: Asked,
    location: Option<address::Found>,
    /// Tokens that belong to the address, so they are not read as a time or a number.
    skip: Vec<bool>,
}

impl<'a> Turn<'a> {
    fn new(text: &'a str, asked: Asked) -> Self {
        let toks = text::tokenize(text);
        let location = address::find(&toks);
        let mut skip = vec![false; toks.len()];
        if let Some(found) = &location {
            skip[found.first..=found.last].fill(true);
        }
        Turn {
            text,
            toks,
            asked,
            location,
            skip,
        }
    }

    /// Whether the transcript uses capitals beyond sentence starts, so that a
    /// capital letter is evidence of a name.
    fn cased(&self) -> bool {
        self.toks
            .iter()
            .enumerate()
            .any(|(i, t)| t.capitalized() && i > 0 && self.toks[i - 1].brk == Break::None)
    }
}

impl RulesExtractor {
    /// `categories` are the configured ones (see `DEFAULT_CATEGORIES`); `tz` is
    /// the business's time zone, in which "tomorrow morning" is understood.
    pub fn new(categories: Vec<String>, tz: Tz) -> Self {
        RulesExtractor {
            classifier: Classifier::new(&categories),
            tz,
        }
    }

    /// Extracts what the caller's turns say. Pure: the same conversation gives
    /// the same result.
    pub fn extract(&self, conv: &Conversation) -> Extraction {
        let turns = caller_turns(conv);
        let mut out = Extraction::default();
        if turns.is_empty() {
            return out;
        }
        let mut scores = vec![0.0; self.classifier.len()];
        let mut urgency = signals::UrgencyScan::default();
        for turn in &turns {
            self.classifier.score(&turn.toks, &mut scores);
            urgency.feed(&turn.toks);
            out.wants_human |= signals::wants_human(&turn.toks);
            if signals::affirmative(&turn.toks) {
                if turn.asked.emergency {
                    urgency.confirm_emergency();
                }
                out.wants_human |= turn.asked.transfer;
            }
        }
        if let Some((idx, confidence)) = self.classifier.decide(&scores) {
            out.category = Some(self.classifier.name(idx).to_string());
            out.confidence = confidence;
        }
        out.urgency = Some(urgency.level());
        out.issue = self.issue(&turns);
        out.location = turns
            .iter()
            .rev()
            .find_map(|t| t.location.as_ref().map(|f| f.text.clone()));
        (out.requested_time, out.requested_at) = self.requested_time(&turns, conv.now);
        out.caller_name = turns.iter().rev().find_map(caller_name);
        out.callback_number = turns
            .iter()
            .rev()
            .find_map(|t| person::find_phone(&t.toks, &t.skip));
        out
    }

    /// The sentence that best describes the problem, from its first telling clause.
    fn issue(&self, turns: &[Turn<'_>]) -> Option<String> {
        let mut best: Option<(f32, &Turn<'_>, usize, usize)> = None;
        for turn in turns {
            for range in text::sentences(&turn.toks) {
                let (score, first) = self.sentence_score(&turn.toks[range.clone()]);
                if score > best.map_or(0.0, |b| b.0) {
                    best = Some((score, turn, range.start + first, range.end - 1));
                }
            }
        }
        let (_, turn, first, last) = best?;
        let first = skip_preamble(&turn.toks, first, last);
        Some(tidy_issue(span(turn.text, &turn.toks, first, last)))
    }

    /// The evidence in a sentence and the index of its first clause that carries any.
    fn sentence_score(&self, toks: &[Tok<'_>]) -> (f32, usize) {
        let mut total = 0.0;
        let mut first = None;
        let mut start = 0;
        for (i, t) in toks.iter().enumerate() {
            if t.brk != Break::None || i + 1 == toks.len() {
                let clause = &toks[start..=i];
                let problems = clause
                    .iter()
                    .filter(|t| PROBLEM_WORDS.contains(t.low.as_str()))
                    .count() as f32;
                let score = self.classifier.evidence(clause) + problems;
                if score > 0.0 && first.is_none() {
                    first = Some(start);
                }
                total += score;
                start = i + 1;
            }
        }
        (total, first.unwrap_or(0))
    }

    /// The newest time the caller asked for; a bare "at three" answering
    /// "which day?" keeps the day said in an earlier turn.
    fn requested_time(
        &self,
        turns: &[Turn<'_>],
        now: Option<DateTime<Utc>>,
    ) -> (Option<String>, Option<DateTime<Utc>>) {
        for (k, turn) in turns.iter().enumerate().rev() {
            let Some((mut when, first, last)) = when::find(&turn.toks, &turn.skip) else {
                continue;
            };
            let mut said = span(turn.text, &turn.toks, first, last).to_string();
            let timeless_day = !when.has_day() && !when.asap && when.offset_minutes.is_none();
            if timeless_day {
                let earlier = turns[..k].iter().rev().find_map(|t| {
                    when::find(&t.toks, &t.skip).map(|(w, f, l)| (w, span(t.text, &t.toks, f, l)))
                });
                if let Some((older, older_said)) =
                    earlier.filter(|(w, _)| w.has_day() && w.clock.is_none())
                {
                    when.day = older.day;
                    when.part = when.part.or(older.part);
                    said = format!("{older_said} {said}");
                }
            }
            let at = now.and_then(|n| resolve::resolve(&when, n, self.tz));
            return (Some(said), at);
        }
        (None, None)
    }
}

/// The questions an agent turn asked that a short answer can settle.
#[derive(Debug, Clone, Copy, Default)]
struct Asked {
    name: bool,
    emergency: bool,
    transfer: bool,
}

impl Asked {
    fn from_agent(text: &str) -> Self {
        let low = text.to_lowercase();
        Asked {
            name: person::asks_for_name(text),
            emergency: low.contains("emergency"),
            transfer: [
                "transfer you",
                "connect you",
                "put you through",
                "speak to a person",
            ]
            .iter()
            .any(|p| low.contains(p)),
        }
    }
}

/// The caller's turns in order, each knowing whether the agent had just asked for a name.
fn caller_turns(conv: &Conversation) -> Vec<Turn<'_>> {
    let mut asked = Asked::default();
    let mut turns = Vec::new();
    for u in &conv.turns {
        match u.speaker {
            Speaker::Caller => {
                turns.push(Turn::new(&u.text, asked));
                asked = Asked::default();
            }
            Speaker::Agent | Speaker::Human => asked = Asked::from_agent(&u.text),
            Speaker::System => {}
        }
    }
    turns
}

fn caller_name(turn: &Turn<'_>) -> Option<String> {
    let cased = turn.cased();
    person::find_name(&turn.toks, cased, &turn.skip).or_else(|| {
        turn.asked
            .name
            .then(|| person::name_answer(&turn.toks, cased, &turn.skip))
            .flatten()
    })
}

/// Skips fillers and "I'm calling because" at the start of the issue sentence.
fn skip_preamble(toks: &[Tok<'_>], mut first: usize, last: usize) -> usize {
    while first < last && FILLERS.contains(&toks[first].low.as_str()) {
        first += 1;
    }
    let calling = match toks[first].low.as_str() {
        "i'm" => 1,
        "i" if toks.get(first + 1).is_some_and(|t| t.is("am")) => 2,
        _ => 0,
    };
    let why = toks.get(first + calling + 1).map(|t| t.low.as_str());
    let preamble = calling > 0
        && toks.get(first + calling).is_some_and(|t| t.is("calling"))
        && matches!(why, Some("because" | "about" | "regarding" | "since"));
    if preamble && first + calling + 2 <= last {
        first += calling + 2;
    }
    first
}

/// Capitalises the first letter and cuts an over-long issue at a word boundary.
fn tidy_issue(s: &str) -> String {
    let mut cut = s;
    if s.len() > MAX_ISSUE {
        let mut end = MAX_ISSUE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        cut = s[..end]
            .rsplit_once(' ')
            .map_or(&s[..end], |(head, _)| head);
    }
    let mut chars = cut.chars();
    match chars.next() {
        Some(f) => f.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl IntentExtractor for RulesExtractor {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn extract<'a>(
        &'a self,
        conversation: &'a Conversation,
    ) -> BoxFuture<'a, Result<Extraction, ProviderError>> {
        let result = RulesExtractor::extract(self, conversation);
        Box::pin(std::future::ready(Ok(result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Utterance, DEFAULT_CATEGORIES};

    fn caller(texts: &[&str]) -> Conversation {
        Conversation {
            turns: texts
                .iter()
                .map(|t| Utterance {
                    speaker: Speaker::Caller,
                    text: t.to_string(),
                })
                .collect(),
            now: DateTime::from_timestamp(1_795_000_000, 0),
            ..Default::default()
        }
    }

    fn extractor() -> RulesExtractor {
        RulesExtractor::new(
            DEFAULT_CATEGORIES.iter().map(|s| s.to_string()).collect(),
            chrono_tz::America::Chicago,
        )
    }

    /// Odd input never panics and always yields a well-formed extraction.
    fn check_well_formed(rules: &RulesExtractor, text: &str) {
        let got = rules.extract(&caller(&[text]));
        assert!(
            (0.0..=1.0).contains(&got.confidence),
            "{text:?}: {}",
            got.confidence
        );
        if let Some(c) = &got.category {
            assert!(DEFAULT_CATEGORIES.contains(&c.as_str()), "{text:?}: {c}");
        }
        if let Some(issue) = &got.issue {
            assert!(
                !issue.is_empty() && issue.len() <= MAX_ISSUE,
                "{text:?}: {issue:?}"
            );
        }
        assert!(got.requested_time.is_some() || got.requested_at.is_none());
    }

    #[test]
    fn odd_input_is_handled() {
        let rules = extractor();
        for text in [
            "",
            " ",
            "...",
            "#",
            "-",
            "'s",
            "—",
            "?!",
            "🙂 leaking 🙂",
            "水管漏水",
            "at 99:99",
            "in 99999999999999999 hours",
            "the 45th",
            "February 30th",
            "on the 31st",
            "call 1234567890123456789012",
            "at 25 o'clock",
            "half past thirteen",
            "quarter to",
            "apartment",
            "42",
            "42 Street",
            "one hundred thousand million",
            "tomorrow tomorrow",
            "double",
            "triple nine",
            "my name is",
            "this is",
            "it's",
            "no no no heat",
            "in a hour",
            "next",
            "last",
            "since",
            "Fifteen Maple Avenue, apartment",
        ] {
            check_well_formed(&rules, text);
        }
    }

    #[test]
    fn random_word_salad_is_handled() {
        const WORDS: [&str; 40] = [
            "at",
            "three",
            "thirty",
            "tomorrow",
            "morning",
            "next",
            "Friday",
            "my",
            "name",
            "is",
            "John",
            "42",
            "Oak",
            "Street,",
            "apartment",
            "4.",
            "five",
            "oh",
            "double",
            "leak",
            "no",
            "heat",
            "baby",
            "not",
            "urgent",
            "human",
            "person",
            "speak",
            "to",
            "the",
            "half",
            "past",
            "in",
            "hours",
            "a.m.",
            "pm",
            "quarter",
            "#3",
            "555-1234",
            "—",
        ];
        let rules = extractor();
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            // A fixed linear congruential generator: the same salad every run.
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..500 {
            let len = next() % 14;
            let text: Vec<&str> = (0..len).map(|_| WORDS[next() % WORDS.len()]).collect();
            check_well_formed(&rules, &text.join(" "));
        }
    }

    #[test]
    fn issue_is_trimmed_and_capped() {
        let rules = extractor();
        let got = rules.extract(&caller(&["Um, so, hi, my toilet is clogged."]));
        assert_eq!(got.issue.as_deref(), Some("My toilet is clogged"));
        let got = rules.extract(&caller(&["Hello, I'm calling because my tap drips."]));
        assert_eq!(got.issue.as_deref(), Some("My tap drips"));
        let long = format!("My sink is leaking {}", "and it drips ".repeat(30));
        let issue = rules.extract(&caller(&[&long])).issue.unwrap_or_default();
        assert!(issue.len() <= MAX_ISSUE && issue.starts_with("My sink is leaking"));
    }

    #[test]
    fn a_yes_answers_the_agents_question() {
        let rules = extractor();
        let mut conv = caller(&["My basement has some water in it.", "Yes, it is."]);
        conv.turns.insert(
            1,
            Utterance {
                speaker: Speaker::Agent,
                text: "Is this an emergency?".into(),
            },
        );
        assert_eq!(
            rules.extract(&conv).urgency,
            Some(crate::domain::Urgency::Emergency)
        );
        conv.turns[2].text = "No, not really.".into();
        assert_eq!(
            rules.extract(&conv).urgency,
            Some(crate::domain::Urgency::Normal)
        );
        conv.turns[1].text = "Would you like me to transfer you to a colleague?".into();
        conv.turns[2].text = "Yes please.".into();
        assert!(rules.extract(&conv).wants_human);
    }

    #[test]
    fn empty_conversation_extracts_nothing() {
        let got = extractor().extract(&Conversation::default());
        assert_eq!(got, Extraction::default());
    }
}
