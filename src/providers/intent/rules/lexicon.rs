//! The built-in phrase lexicon for the ten default categories and the phrase
//! matcher every rule extractor uses. Phrases are matched on whole words,
//! longest first, and a matched word is not counted again ("water heater" is
//! plumbing, so its "heater" does not also count for hvac).

use std::collections::HashMap;

use super::text::{stem, Break, Tok};

/// Weighted phrases per built-in category: (weight, phrases). 3 = decisive on its
/// own, 2 = strong hint, 1 = weak hint that needs company.
pub type Entry = (&'static str, &'static [(f32, &'static [&'static str])]);

pub const LEXICON: &[Entry] = &[
    (
        "plumbing",
        &[
            (
                3.0,
                &[
                    "plumber",
                    "plumbing",
                    "faucet",
                    "tap",
                    "toilet",
                    "water heater",
                    "clogged drain",
                    "hot water heater",
                    "pipe",
                    "burst pipe",
                    "sewer",
                    "sink",
                    "drain pipe",
                    "no hot water",
                    "garbage disposal",
                    "sump pump",
                    "gas line",
                    "water line",
                    "shower",
                    "bathtub",
                    "tub",
                    "septic",
                    "water pressure",
                    "backed up",
                    "overflowing",
                    "leaking tap",
                    "hot water",
                ],
            ),
            (
                2.0,
                &[
                    "drain", "clogged", "clog", "blocked", "drip", "dripping", "flooding",
                    "flooded", "valve",
                ],
            ),
            (
                1.0,
                &["leak", "leaking", "water", "gas", "running", "burst"],
            ),
        ],
    ),
    (
        "electrical",
        &[
            (
                3.0,
                &[
                    "electrician",
                    "electrical",
                    "outlet",
                    "socket",
                    "breaker",
                    "circuit breaker",
                    "fuse",
                    "fuse box",
                    "no power",
                    "power is out",
                    "power went out",
                    "sparks",
                    "sparking",
                    "spark",
                    "wiring",
                    "wire",
                    "light switch",
                    "flickering",
                    "electrical panel",
                    "power outage",
                    "ceiling fan",
                    "gfci",
                ],
            ),
            (
                2.0,
                &[
                    "panel",
                    "light",
                    "lights",
                    "switch",
                    "shock",
                    "shocked",
                    "electricity",
                    "tripped",
                    "tripping",
                    "smoke detector",
                    "smoke alarm",
                ],
            ),
            (1.0, &["power", "electric", "lamp", "buzzing"]),
        ],
    ),
    (
        "hvac",
        &[
            (
                3.0,
                &[
                    "hvac",
                    "ac",
                    "a c",
                    "air conditioning",
                    "air conditioner",
                    "furnace",
                    "heating",
                    "no heat",
                    "heat pump",
                    "thermostat",
                    "central air",
                    "boiler",
                    "heating system",
                    "ductwork",
                    "air handler",
                ],
            ),
            (
                2.0,
                &[
                    "cooling",
                    "carbon monoxide",
                    "pilot light",
                    "heat",
                    "heater",
                    "radiator",
                    "duct",
                    "ducts",
                    "vent",
                    "warm air",
                    "cold air",
                    "freezing",
                ],
            ),
            (1.0, &["air", "cold", "hot", "temperature", "filter"]),
        ],
    ),
    (
        "appliance_repair",
        &[
            (
                3.0,
                &[
                    "appliance",
                    "fridge",
                    "refrigerator",
                    "freezer",
                    "washer",
                    "washing machine",
                    "dryer",
                    "dishwasher",
                    "oven",
                    "stove",
                    "microwave",
                    "ice maker",
                    "cooktop",
                    "range hood",
                ],
            ),
            (
                2.0,
                &["range", "not cooling", "not spinning", "not draining"],
            ),
            (1.0, &["spin", "door seal"]),
        ],
    ),
    (
        "locksmith",
        &[
            (
                3.0,
                &[
                    "locksmith",
                    "locked out",
                    "lock myself out",
                    "locked myself out",
                    "locked me out",
                    "lock",
                    "deadbolt",
                    "rekey",
                    "re key",
                    "lost my key",
                    "lost my keys",
                    "key",
                    "keys",
                    "change the locks",
                ],
            ),
            (
                2.0,
                &[
                    "locked",
                    "can't get in",
                    "cannot get in",
                    "key broke",
                    "jammed",
                ],
            ),
            (1.0, &["stuck"]),
        ],
    ),
    (
        "pest_control",
        &[
            (
                3.0,
                &[
                    "mice",
                    "mouse",
                    "rat",
                    "rats",
                    "cockroach",
                    "roach",
                    "termite",
                    "wasp",
                    "hornet",
                    "bed bug",
                    "bedbug",
                    "pest",
                    "exterminator",
                    "infestation",
                    "rodent",
                    "ant",
                    "flea",
                    "mosquito",
                    "mosquitoes",
                    "raccoon",
                    "squirrel",
                    "spider",
                    "bee",
                    "wasp nest",
                    "bug",
                ],
            ),
            (2.0, &["nest", "droppings", "insect", "infested", "critter"]),
            (1.0, &["scratching", "chewed"]),
        ],
    ),
    (
        "cleaning",
        &[
            (
                3.0,
                &[
                    "cleaning",
                    "deep clean",
                    "carpet cleaning",
                    "house cleaning",
                    "move out clean",
                    "maid",
                    "housekeeping",
                    "cleaner",
                    "cleaners",
                    "window cleaning",
                    "steam clean",
                    "cleaning service",
                ],
            ),
            (
                2.0,
                &[
                    "clean",
                    "cleaned",
                    "carpet",
                    "carpets",
                    "stain",
                    "stains",
                    "upholstery",
                ],
            ),
            (1.0, &["dust", "dusty", "dirty", "vacuum", "mold", "mess"]),
        ],
    ),
    (
        "roofing",
        &[
            (
                3.0,
                &[
                    "roof",
                    "roofer",
                    "roofing",
                    "shingle",
                    "shingles",
                    "gutter",
                    "gutters",
                    "downspout",
                    "skylight",
                    "flashing",
                    "gutter cleaning",
                    "roof leak",
                    "leaking roof",
                    "soffit",
                    "fascia",
                ],
            ),
            (2.0, &["chimney"]),
            (1.0, &["storm", "hail", "attic", "tiles"]),
        ],
    ),
    (
        "carpentry",
        &[
            (
                3.0,
                &[
                    "carpenter",
                    "carpentry",
                    "door frame",
                    "cabinet",
                    "cabinets",
                    "cupboard",
                    "deck",
                    "shelf",
                    "shelves",
                    "shelving",
                    "baseboard",
                    "trim",
                    "banister",
                    "railing",
                    "woodwork",
                    "window frame",
                    "floorboard",
                    "floorboards",
                    "built in",
                    "pergola",
                    "hardwood floor",
                    "rotten wood",
                    "drawer",
                ],
            ),
            (
                2.0,
                &[
                    "door",
                    "doors",
                    "hinge",
                    "fence",
                    "stairs",
                    "wood",
                    "wooden",
                    "squeaky floor",
                ],
            ),
            (1.0, &["step", "frame", "window"]),
        ],
    ),
    (
        "general_inquiry",
        &[
            (
                3.0,
                &[
                    "your hours",
                    "business hours",
                    "opening hours",
                    "office hours",
                    "are you open",
                    "do you open",
                    "quote",
                    "how much",
                    "pricing",
                    "price",
                    "prices",
                    "estimate",
                    "do you charge",
                ],
            ),
            (
                2.0,
                &[
                    "cost",
                    "question",
                    "service area",
                    "information",
                    "rates",
                    "discount",
                    "invoice",
                    "bill",
                    "billing",
                    "payment",
                    "warranty",
                    "insured",
                    "licensed",
                ],
            ),
            (1.0, &["open", "charge", "rate", "pay", "how long"]),
        ],
    ),
];

/// A set of phrases mapped to values, matched on word stems, longest first.
#[derive(Debug, Clone)]
pub struct PhraseSet<T> {
    by_first: HashMap<String, Vec<(Vec<String>, T)>>,
}

impl<T> Default for PhraseSet<T> {
    fn default() -> Self {
        PhraseSet {
            by_first: HashMap::new(),
        }
    }
}

impl<T> PhraseSet<T> {
    /// Adds `phrase` (space-separated words). An empty phrase is ignored.
    pub fn add(&mut self, phrase: &str, value: T) {
        let words: Vec<String> = phrase
            .split_whitespace()
            .map(|w| stem(&w.to_lowercase()))
            .collect();
        let Some(first) = words.first().cloned() else {
            return;
        };
        let list = self.by_first.entry(first).or_default();
        list.push((words, value));
        list.sort_by_key(|(w, _)| std::cmp::Reverse(w.len()));
    }

    /// The longest phrase starting at token `i`, with its length.
    pub fn longest_at(&self, toks: &[Tok<'_>], i: usize) -> Option<(usize, &T)> {
        let candidates = self.by_first.get(&toks.get(i)?.stem)?;
        candidates
            .iter()
            .find(|(words, _)| matches_at(toks, i, words))
            .map(|(words, v)| (words.len(), v))
    }

    /// Calls `f(start, len, value)` for each match, left to right; matched words
    /// are consumed.
    pub fn scan<'s>(&'s self, toks: &[Tok<'_>], mut f: impl FnMut(usize, usize, &'s T)) {
        let mut i = 0;
        while i < toks.len() {
            match self.longest_at(toks, i) {
                Some((len, v)) => {
                    f(i, len, v);
                    i += len;
                }
                None => i += 1,
            }
        }
    }
}

/// A phrase matches when every word matches and it does not run across a sentence end.
fn matches_at(toks: &[Tok<'_>], i: usize, words: &[String]) -> bool {
    let Some(window) = toks.get(i..i + words.len()) else {
        return false;
    };
    let crosses_stop = window[..window.len() - 1]
        .iter()
        .any(|t| t.brk == Break::Stop);
    !crosses_stop && window.iter().zip(words).all(|(t, w)| t.stem == *w)
}

/// Words that negate what follows within a few words ("not urgent", "no sparks").
pub fn is_negator(low: &str) -> bool {
    matches!(
        low,
        "not"
            | "no"
            | "never"
            | "nothing"
            | "without"
            | "isn't"
            | "aren't"
            | "wasn't"
            | "don't"
            | "doesn't"
            | "didn't"
            | "won't"
            | "haven't"
            | "hasn't"
            | "can't"
            | "cannot"
    )
}

/// True when one of the `window` words before token `i`, in the same clause, negates it.
pub fn negated(toks: &[Tok<'_>], i: usize, window: usize) -> bool {
    let from = i.saturating_sub(window);
    toks[from..i]
        .iter()
        .rev()
        .take_while(|t| t.brk == Break::None)
        .any(|t| is_negator(&t.low))
}

#[cfg(test)]
mod tests {
    use super::super::text::tokenize;
    use super::*;

    #[test]
    fn longest_phrase_wins_and_consumes_its_words() {
        let mut set = PhraseSet::default();
        set.add("heater", "hvac");
        set.add("water heater", "plumbing");
        let toks = tokenize("The water heater and the heaters.");
        let mut hits = Vec::new();
        set.scan(&toks, |i, n, v| hits.push((i, n, *v)));
        assert_eq!(hits, [(1, 2, "plumbing"), (5, 1, "hvac")]);
    }

    #[test]
    fn phrases_do_not_cross_sentences() {
        let mut set = PhraseSet::default();
        set.add("no heat", ());
        assert!(set.longest_at(&tokenize("No. Heat works"), 0).is_none());
        assert!(set.longest_at(&tokenize("no heat"), 0).is_some());
    }

    #[test]
    fn negation_looks_back_within_the_sentence() {
        let toks = tokenize("It is not urgent. Urgent! No, urgent");
        assert!(negated(&toks, 3, 3));
        assert!(!negated(&toks, 4, 3));
        assert!(!negated(&toks, 6, 3), "a comma ends the negated clause");
    }
}
