//! The category classifier: weighted phrase matches summed per configured
//! category, and a confidence from how strong and how clear-cut the winner is.
//! Categories an operator configured that the built-in lexicon does not know
//! are matched by the words of their name.

use super::lexicon::{PhraseSet, LEXICON};
use super::text::Tok;

const GENERAL: &str = "general_inquiry";
/// How much a general question counts once a service need was heard: "how much
/// to fix my leaking tap" is a plumbing job.
const GENERAL_DAMPING: f32 = 0.3;

/// Words too common to identify a configured category by name alone.
const NAME_STOPWORDS: [&str; 8] = [
    "and", "the", "service", "services", "repair", "repairs", "general", "other",
];

#[derive(Debug, Clone)]
pub struct Classifier {
    names: Vec<String>,
    phrases: PhraseSet<(usize, f32)>,
    general: Option<usize>,
}

impl Classifier {
    pub fn new(categories: &[String]) -> Self {
        let mut phrases = PhraseSet::default();
        let mut names = Vec::with_capacity(categories.len());
        for (idx, name) in categories.iter().enumerate() {
            let key = name.trim().to_lowercase().replace([' ', '-'], "_");
            let spoken = key.replace('_', " ");
            match LEXICON.iter().find(|(cat, _)| *cat == key) {
                Some((_, groups)) => {
                    for (weight, list) in groups.iter() {
                        for phrase in list.iter() {
                            phrases.add(phrase, (idx, *weight));
                        }
                    }
                }
                None => {
                    for word in spoken.split_whitespace() {
                        if word.len() >= 4 && !NAME_STOPWORDS.contains(&word) {
                            phrases.add(word, (idx, 2.0));
                        }
                    }
                }
            }
            phrases.add(&spoken, (idx, 3.0));
            names.push(name.clone());
        }
        let general = names.iter().position(|n| n == GENERAL);
        Classifier {
            names,
            phrases,
            general,
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn name(&self, idx: usize) -> &str {
        &self.names[idx]
    }

    /// Adds the phrase weights found in `toks` to `scores` (one slot per category).
    pub fn score(&self, toks: &[Tok<'_>], scores: &mut [f32]) {
        self.phrases.scan(toks, |_, _, &(idx, weight)| {
            if let Some(s) = scores.get_mut(idx) {
                *s += weight;
            }
        });
    }

    /// The sum of phrase weights in `toks`, whatever the category.
    pub fn evidence(&self, toks: &[Tok<'_>]) -> f32 {
        let mut total = 0.0;
        self.phrases.scan(toks, |_, _, &(_, w)| total += w);
        total
    }

    /// The winning category and a confidence in 0–1, or `None` when nothing matched.
    pub fn decide(&self, scores: &[f32]) -> Option<(usize, f32)> {
        let mut adjusted = scores.to_vec();
        if let Some(g) = self.general {
            let service_heard = adjusted.iter().enumerate().any(|(i, s)| i != g && *s > 0.0);
            if service_heard {
                adjusted[g] *= GENERAL_DAMPING;
            }
        }
        let (best, top) = adjusted
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, 0.0f32),
                |acc, (i, s)| if s > acc.1 { (i, s) } else { acc },
            );
        if top <= 0.0 {
            return None;
        }
        let second = adjusted
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .map(|(_, s)| *s)
            .fold(0.0f32, f32::max);
        Some((best, confidence(top, second)))
    }
}

/// Grows with the winner's evidence and shrinks when a rival is close:
/// one decisive phrase alone ≈ 0.78, two ≈ 0.95, one weak hint ≈ 0.39.
fn confidence(top: f32, second: f32) -> f32 {
    let strength = 1.0 - (-top / 2.0).exp();
    let clarity = (top / (top + second)).sqrt();
    (strength * clarity).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::super::text::tokenize;
    use super::*;
    use crate::domain::DEFAULT_CATEGORIES;

    fn classify(c: &Classifier, text: &str) -> Option<(String, f32)> {
        let mut scores = vec![0.0; c.len()];
        c.score(&tokenize(text), &mut scores);
        c.decide(&scores)
            .map(|(i, conf)| (c.name(i).to_string(), conf))
    }

    fn defaults() -> Classifier {
        Classifier::new(&DEFAULT_CATEGORIES.map(String::from))
    }

    #[test]
    fn clear_cases_are_confident() {
        let c = defaults();
        let (cat, conf) = classify(&c, "My kitchen faucet is leaking").unwrap_or_default();
        assert_eq!(cat, "plumbing");
        assert!(conf > 0.8, "{conf}");
        assert_eq!(classify(&c, "Good morning"), None);
    }

    #[test]
    fn a_service_need_beats_a_price_question() {
        let c = defaults();
        let got = classify(&c, "How much would it cost to fix my dishwasher?");
        assert_eq!(got.map(|g| g.0).as_deref(), Some("appliance_repair"));
    }

    #[test]
    fn a_close_rival_lowers_confidence() {
        assert!(confidence(3.0, 0.0) > confidence(3.0, 2.5));
        assert!(confidence(6.0, 0.0) > confidence(3.0, 0.0));
    }

    #[test]
    fn unknown_configured_categories_match_their_name_words() {
        let c = Classifier::new(&["plumbing".to_string(), "pool_cleaning".to_string()]);
        let got = classify(&c, "Our swimming pool needs attention");
        assert_eq!(got.map(|g| g.0).as_deref(), Some("pool_cleaning"));
        // Unconfigured built-ins are not guessed.
        assert_eq!(classify(&c, "There are mice in the kitchen"), None);
    }
}
