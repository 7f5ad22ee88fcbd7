//! Urgency and "let me talk to a person" detection. Both read the whole call:
//! an emergency mentioned once stays an emergency, and a request for a human
//! latches. Negation is honoured ("not urgent" is low, "no sparks" is nothing).

use std::sync::LazyLock;

use super::lexicon::{negated, PhraseSet};
use super::text::Tok;
use crate::domain::Urgency;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Emergency,
    High,
    Low,
    /// "urgent", "emergency", "asap": when negated they mean low, not nothing.
    Pressing(Urgency),
    /// Heating has failed: high, an emergency with a vulnerable person present.
    NoHeat,
    Vulnerable,
    /// A phrase that looks alarming but is not ("smoke detector").
    Neutral,
}

static URGENCY: LazyLock<PhraseSet<Signal>> = LazyLock::new(|| {
    let mut set = PhraseSet::default();
    let groups: [(Signal, &[&str]); 6] = [
        (
            Signal::Emergency,
            &[
                "gas smell",
                "smell gas",
                "smell of gas",
                "smells like gas",
                "smelling gas",
                "gas leak",
                "leaking gas",
                "rotten egg",
                "rotten eggs",
                "sparks",
                "sparking",
                "smoke",
                "smoking",
                "fire",
                "on fire",
                "flames",
                "burning smell",
                "smell burning",
                "smells like burning",
                "flooding",
                "flooded",
                "flood",
                "burst pipe",
                "pipe burst",
                "pipe has burst",
                "pipe burst",
                "burst",
                "carbon monoxide",
                "co alarm",
                "co detector",
                "electrocuted",
                "water everywhere",
            ],
        ),
        (
            Signal::High,
            &[
                "leaking badly",
                "leaking a lot",
                "leaking really badly",
                "pouring",
                "no hot water",
                "overflowed",
                "right away",
                "immediately",
                "quickly",
                "locked out",
                "locked myself out",
                "won't stop",
                "overflowing",
                "exposed wires",
                "as fast as possible",
                "today if possible",
            ],
        ),
        (
            Signal::Pressing(Urgency::High),
            &[
                "urgent",
                "urgently",
                "asap",
                "as soon as possible",
                "soon as possible",
                "as soon as you can",
                "hurry",
            ],
        ),
        (Signal::Pressing(Urgency::Emergency), &["emergency"]),
        (
            Signal::Low,
            &[
                "no rush",
                "no hurry",
                "whenever",
                "any time",
                "anytime",
                "not in a hurry",
                "low priority",
                "when you get a chance",
                "not a big deal",
                "no big deal",
                "not pressing",
                "in no hurry",
            ],
        ),
        (
            Signal::Neutral,
            &[
                "smoke detector",
                "smoke alarm",
                "smoke detectors",
                "fire alarm",
                "fire place",
                "fireplace",
                "gas stove",
                "gas oven",
                "gas bill",
                "emergency service",
                "emergency services",
            ],
        ),
    ];
    for (signal, phrases) in groups {
        for p in phrases {
            set.add(p, signal);
        }
    }
    for p in [
        "no heat",
        "no heating",
        "without heat",
        "heat is out",
        "heating is out",
        "heat's out",
        "furnace is out",
        "heat isn't working",
        "heating isn't working",
        "heat is not working",
        "heating is not working",
        "heat's not working",
        "heating's not working",
        "furnace isn't working",
        "furnace is not working",
        "furnace stopped working",
        "heating stopped working",
        "heat stopped working",
        "furnace broke",
        "furnace is broken",
        "furnace died",
        "heating is broken",
        "boiler is broken",
        "boiler broke",
        "furnace won't turn on",
        "furnace won't start",
        "heat won't turn on",
        "heating won't come on",
        "heat won't come on",
        "furnace isn't turning on",
        "furnace not working",
        "heating not working",
        "freezing",
        "heat's been out",
        "heat has been out",
        "heating has been out",
        "heat went out",
        "heating went out",
        "furnace went out",
        "heat is off",
        "heating is off",
    ] {
        set.add(p, Signal::NoHeat);
    }
    for p in [
        "baby",
        "babies",
        "infant",
        "newborn",
        "toddler",
        "elderly",
        "grandmother",
        "grandma",
        "grandfather",
        "grandpa",
        "senior",
        "pregnant",
        "small children",
        "young children",
        "little kids",
        "small kids",
        "disabled",
    ] {
        set.add(p, Signal::Vulnerable);
    }
    set
});

/// Accumulates urgency evidence over the caller's turns.
#[derive(Debug, Default, Clone, Copy)]
pub struct UrgencyScan {
    emergency: bool,
    high: bool,
    low: bool,
    no_heat: bool,
    vulnerable: bool,
}

impl UrgencyScan {
    pub fn feed(&mut self, toks: &[Tok<'_>]) {
        URGENCY.scan(toks, |i, _, signal| {
            let neg = negated(toks, i, 3);
            match (*signal, neg) {
                (Signal::Pressing(_), true) => self.low = true,
                (_, true) | (Signal::Neutral, _) => {}
                (Signal::Emergency, false) | (Signal::Pressing(Urgency::Emergency), false) => {
                    self.emergency = true
                }
                (Signal::High, false) | (Signal::Pressing(_), false) => self.high = true,
                (Signal::Low, false) => self.low = true,
                (Signal::NoHeat, false) => self.no_heat = true,
                (Signal::Vulnerable, false) => self.vulnerable = true,
            }
        });
    }

    /// The caller said yes when asked whether it is an emergency.
    pub fn confirm_emergency(&mut self) {
        self.emergency = true;
    }

    /// Emergency beats high beats low; nothing said is normal.
    pub fn level(&self) -> Urgency {
        if self.emergency || (self.no_heat && self.vulnerable) {
            Urgency::Emergency
        } else if self.high || self.no_heat {
            Urgency::High
        } else if self.low {
            Urgency::Low
        } else {
            Urgency::Normal
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Names a person on its own: "human", "operator".
    Person,
    /// Only a request with a verb before it: "speak to someone".
    Someone,
    /// A request on its own: "transfer me".
    Request,
}

static HUMAN: LazyLock<PhraseSet<Ask>> = LazyLock::new(|| {
    let mut set = PhraseSet::default();
    for p in [
        "human",
        "humans",
        "human being",
        "operator",
        "representative",
        "receptionist",
        "agent",
        "real person",
        "live person",
        "actual person",
        "real human",
        "live agent",
    ] {
        set.add(p, Ask::Person);
    }
    for p in [
        "person",
        "someone",
        "somebody",
        "anyone",
        "anybody",
        "manager",
        "supervisor",
        "a person",
        "a human",
    ] {
        set.add(p, Ask::Someone);
    }
    for p in ["transfer me", "put me through", "connect me"] {
        set.add(p, Ask::Request);
    }
    set
});

/// Verbs that turn "someone" into a request for a person.
const ASK_VERBS: [&str; 6] = ["speak", "talk", "transfer", "connect", "put", "reach"];

/// True when the caller asks to be put through to a person.
pub fn wants_human(toks: &[Tok<'_>]) -> bool {
    let mut found = false;
    HUMAN.scan(toks, |i, _, ask| {
        if found || negated(toks, i, 5) || is_question_about_us(toks, i) {
            return;
        }
        found = match ask {
            Ask::Person => !toks[..i]
                .last()
                .is_some_and(|t| matches!(t.low.as_str(), "estate" | "insurance" | "travel")),
            Ask::Request => true,
            Ask::Someone => toks[i.saturating_sub(4)..i]
                .iter()
                .any(|t| ASK_VERBS.contains(&t.low.as_str())),
        };
    });
    found
}

/// True when the turn opens with a yes ("Yes.", "Yeah, it is", "Correct").
pub fn affirmative(toks: &[Tok<'_>]) -> bool {
    let words: Vec<&str> = toks
        .iter()
        .map(|t| t.low.as_str())
        .filter(|w| !matches!(*w, "um" | "uh" | "oh" | "well"))
        .take(2)
        .collect();
    match words.as_slice() {
        [first, ..]
            if matches!(
                *first,
                "yes" | "yeah" | "yep" | "yup" | "correct" | "absolutely" | "definitely"
            ) =>
        {
            true
        }
        ["please", ..] | ["sure", ..] => true,
        _ => false,
    }
}

/// "Are you a real person?" asks about the agent rather than for a transfer.
fn is_question_about_us(toks: &[Tok<'_>], i: usize) -> bool {
    let from = i.saturating_sub(3);
    toks[from..i].windows(2).any(|w| {
        matches!(
            (w[0].low.as_str(), w[1].low.as_str()),
            ("are", "you") | ("is", "this")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::text::tokenize;
    use super::*;

    fn level(text: &str) -> Urgency {
        let mut scan = UrgencyScan::default();
        scan.feed(&tokenize(text));
        scan.level()
    }

    #[test]
    fn urgency_levels_and_negation() {
        assert_eq!(level("I smell gas in the kitchen"), Urgency::Emergency);
        assert_eq!(level("This is urgent"), Urgency::High);
        assert_eq!(level("It's not urgent at all"), Urgency::Low);
        assert_eq!(level("It's not an emergency"), Urgency::Low);
        assert_eq!(level("There are no sparks"), Urgency::Normal);
        assert_eq!(level("My smoke detector keeps beeping"), Urgency::Normal);
        assert_eq!(level("The heating isn't working"), Urgency::High);
        assert_eq!(level("No heat and I have a newborn"), Urgency::Emergency);
        assert_eq!(level("No rush, whenever works"), Urgency::Low);
        assert_eq!(
            level("The heat's been out since yesterday and my grandmother lives with us."),
            Urgency::Emergency
        );
        assert_eq!(
            level("It's freezing, the furnace won't turn on and I have a two month old baby"),
            Urgency::Emergency
        );
        assert_eq!(level("The sink is dripping"), Urgency::Normal);
    }

    #[test]
    fn requests_for_a_person() {
        assert!(wants_human(&tokenize("Can I speak to someone please?")));
        assert!(wants_human(&tokenize("Operator.")));
        assert!(wants_human(&tokenize("I want a real person")));
        assert!(wants_human(&tokenize("Just transfer me")));
        assert!(!wants_human(&tokenize("I need someone to fix my sink")));
        assert!(!wants_human(&tokenize("I don't need to talk to a person")));
        assert!(!wants_human(&tokenize("Are you a real person?")));
        assert!(!wants_human(&tokenize(
            "My real estate agent gave me your number"
        )));
    }
}
