//! The rule-based intent engine against a table of caller conversations: each
//! row states the category, urgency and every extracted field it expects, and
//! every field is checked (an absent expectation means "must not be found").
//! Conversations run at a fixed `now` in New York time.

use chrono::{DateTime, Utc};
use chrono_tz::America::New_York;
use switchboard::domain::{
    Conversation, Extraction, Speaker, Urgency, Utterance, DEFAULT_CATEGORIES,
};
use switchboard::providers::intent::rules::RulesExtractor;
use switchboard::providers::IntentExtractor;

/// Saturday 21 November 2026, 10:00 in New York.
const NOW: &str = "2026-11-21T15:00:00Z";

struct Case {
    /// Caller turns; a line starting with "A: " is the agent speaking.
    turns: &'static [&'static str],
    category: Option<&'static str>,
    urgency: Urgency,
    location: Option<&'static str>,
    /// (as said, the instant in RFC 3339).
    time: Option<(&'static str, &'static str)>,
    name: Option<&'static str>,
    phone: Option<&'static str>,
    human: bool,
    /// Words the issue must contain; `None` means no issue is expected.
    issue: Option<&'static str>,
}

const BASE: Case = Case {
    turns: &[],
    category: None,
    urgency: Urgency::Normal,
    location: None,
    time: None,
    name: None,
    phone: None,
    human: false,
    issue: None,
};

use Urgency::{Emergency, High, Low};

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Plumbing
    Case { turns: &["My kitchen faucet is leaking."], category: Some("plumbing"), issue: Some("My kitchen faucet is leaking"), ..BASE },
    Case { turns: &["Hi, my name is John Smith. My toilet is clogged and overflowing."], category: Some("plumbing"), urgency: High, name: Some("John Smith"), issue: Some("My toilet is clogged and overflowing"), ..BASE },
    Case { turns: &["A pipe burst in my basement and there's water everywhere!"], category: Some("plumbing"), urgency: Emergency, issue: Some("pipe burst"), ..BASE },
    Case { turns: &["We have no hot water since this morning."], category: Some("plumbing"), urgency: High, issue: Some("no hot water"), ..BASE },
    Case { turns: &["The water heater is making a loud noise. Could someone come tomorrow morning?"], category: Some("plumbing"), time: Some(("tomorrow morning", "2026-11-22T14:00:00Z")), issue: Some("water heater"), ..BASE },
    Case { turns: &["My bathroom sink drains really slowly, no rush."], category: Some("plumbing"), urgency: Low, issue: Some("bathroom sink"), ..BASE },
    Case { turns: &["I live at 42 Oak Street and my shower keeps dripping."], category: Some("plumbing"), location: Some("42 Oak Street"), issue: Some("shower keeps dripping"), ..BASE },
    Case { turns: &["The basement is flooding!", "A: What's the address?", "Fifteen Maple Avenue, apartment 4."], category: Some("plumbing"), urgency: Emergency, location: Some("15 Maple Avenue, Apartment 4"), issue: Some("basement is flooding"), ..BASE },
    Case { turns: &["My garbage disposal is jammed.", "A: When works for you?", "Tomorrow", "A: What time suits you?", "Around three."], category: Some("plumbing"), time: Some(("Tomorrow Around three", "2026-11-22T20:00:00Z")), issue: Some("garbage disposal"), ..BASE },
    Case { turns: &["Can someone come as soon as possible? My sink is backed up."], category: Some("plumbing"), urgency: High, time: Some(("as soon as possible", NOW)), issue: Some("sink is backed up"), ..BASE },
    Case { turns: &["Could you come tonight? The toilet is running nonstop."], category: Some("plumbing"), time: Some(("tonight", "2026-11-21T23:00:00Z")), issue: Some("toilet is running"), ..BASE },
    Case { turns: &["I smell gas in the kitchen."], category: Some("plumbing"), urgency: Emergency, issue: Some("smell gas"), ..BASE },
    Case { turns: &["This is urgent, my ceiling is leaking."], category: Some("plumbing"), urgency: High, issue: Some("ceiling is leaking"), ..BASE },
    Case { turns: &["I'm at 42 Oak Street.", "Sorry, I mean 44 Oak Street. The toilet won't flush."], category: Some("plumbing"), location: Some("44 Oak Street"), issue: Some("toilet won't flush"), ..BASE },
    Case { turns: &["I need someone to fix my sink."], category: Some("plumbing"), issue: Some("fix my sink"), ..BASE },
    // Electrical
    Case { turns: &["There are sparks coming out of my outlet."], category: Some("electrical"), urgency: Emergency, issue: Some("sparks"), ..BASE },
    Case { turns: &["Half the house has no power and the breaker keeps tripping."], category: Some("electrical"), issue: Some("breaker keeps tripping"), ..BASE },
    Case { turns: &["The lights in my kitchen keep flickering. Can someone come Monday at 10am?"], category: Some("electrical"), time: Some(("Monday at 10am", "2026-11-23T15:00:00Z")), issue: Some("flickering"), ..BASE },
    Case { turns: &["I'd like to get a new ceiling fan installed, whenever is convenient."], category: Some("electrical"), urgency: Low, issue: Some("ceiling fan"), ..BASE },
    Case { turns: &["There's a burning smell coming from the electrical panel."], category: Some("electrical"), urgency: Emergency, issue: Some("electrical panel"), ..BASE },
    Case { turns: &["My outlet isn't working. Call me back at 555-123-4567."], category: Some("electrical"), phone: Some("+15551234567"), issue: Some("outlet isn't working"), ..BASE },
    Case { turns: &["The breaker keeps tripping. You can reach me at 617 555 0142."], category: Some("electrical"), phone: Some("+16175550142"), issue: Some("breaker"), ..BASE },
    // HVAC
    Case { turns: &["Our furnace stopped working and we have a newborn baby."], category: Some("hvac"), urgency: Emergency, issue: Some("furnace stopped working"), ..BASE },
    Case { turns: &["The AC is blowing warm air."], category: Some("hvac"), issue: Some("AC is blowing warm air"), ..BASE },
    Case { turns: &["The heating isn't working, it's freezing in here."], category: Some("hvac"), urgency: High, issue: Some("heating isn't working"), ..BASE },
    Case { turns: &["I'd like a tune-up for my heat pump next Friday at three thirty."], category: Some("hvac"), time: Some(("next Friday at three thirty", "2026-11-27T20:30:00Z")), issue: Some("heat pump"), ..BASE },
    Case { turns: &["My thermostat is blank. This is Sarah."], category: Some("hvac"), name: Some("Sarah"), issue: Some("thermostat is blank"), ..BASE },
    Case { turns: &["The air conditioner is leaking water onto the floor."], category: Some("hvac"), issue: Some("air conditioner"), ..BASE },
    Case { turns: &["Our carbon monoxide detector is going off."], category: Some("hvac"), urgency: Emergency, issue: Some("carbon monoxide"), ..BASE },
    Case { turns: &["There's smoke coming from the furnace!"], category: Some("hvac"), urgency: Emergency, issue: Some("smoke coming from the furnace"), ..BASE },
    Case { turns: &["No heat in the house and my elderly mother lives with me."], category: Some("hvac"), urgency: Emergency, issue: Some("No heat"), ..BASE },
    Case { turns: &["Hi there.", "I have a problem with my furnace.", "It's at 7 Birch Lane."], category: Some("hvac"), location: Some("7 Birch Lane"), issue: Some("problem with my furnace"), ..BASE },
    Case { turns: &["The heat pump is broken.", "A: What's the best number to reach you?", "It's six one seven, five five five, oh one four two."], category: Some("hvac"), phone: Some("+16175550142"), issue: Some("heat pump is broken"), ..BASE },
    // Appliance repair
    Case { turns: &["My fridge stopped cooling."], category: Some("appliance_repair"), issue: Some("fridge stopped cooling"), ..BASE },
    Case { turns: &["The washing machine won't drain. It's urgent."], category: Some("appliance_repair"), urgency: High, issue: Some("washing machine"), ..BASE },
    Case { turns: &["My dishwasher is leaking all over the kitchen floor."], category: Some("appliance_repair"), issue: Some("dishwasher is leaking"), ..BASE },
    Case { turns: &["The oven won't heat up. Can you come this afternoon?"], category: Some("appliance_repair"), time: Some(("this afternoon", "2026-11-21T19:00:00Z")), issue: Some("oven won't heat up"), ..BASE },
    Case { turns: &["My dryer makes a loud banging noise. My number is five five five, two three four, five six seven eight."], category: Some("appliance_repair"), phone: Some("+15552345678"), issue: Some("dryer makes a loud banging noise"), ..BASE },
    Case { turns: &["The fridge is making noise. Maybe in two hours?"], category: Some("appliance_repair"), time: Some(("in two hours", "2026-11-21T17:00:00Z")), issue: Some("fridge is making noise"), ..BASE },
    Case { turns: &["It's Dave calling, my microwave stopped working."], category: Some("appliance_repair"), name: Some("Dave"), issue: Some("microwave stopped working"), ..BASE },
    Case { turns: &["My stove won't light.", "A: Can I get your name, please?", "Sure, it's Ana Silva."], category: Some("appliance_repair"), name: Some("Ana Silva"), issue: Some("stove won't light"), ..BASE },
    Case { turns: &["my name is james brown and my dryer is broken"], category: Some("appliance_repair"), name: Some("James Brown"), issue: Some("dryer is broken"), ..BASE },
    // Locksmith
    Case { turns: &["I'm locked out of my house!"], category: Some("locksmith"), urgency: High, issue: Some("locked out"), ..BASE },
    Case { turns: &["I lost my keys and need the locks changed."], category: Some("locksmith"), issue: Some("lost my keys"), ..BASE },
    Case { turns: &["Can you rekey the deadbolt on my front door? No hurry."], category: Some("locksmith"), urgency: Low, issue: Some("rekey the deadbolt"), ..BASE },
    Case { turns: &["My key broke off in the lock."], category: Some("locksmith"), issue: Some("key broke off"), ..BASE },
    // Pest control
    Case { turns: &["We have mice in the kitchen."], category: Some("pest_control"), issue: Some("mice"), ..BASE },
    Case { turns: &["There's a wasp nest by the back porch."], category: Some("pest_control"), issue: Some("wasp nest"), ..BASE },
    Case { turns: &["I keep seeing cockroaches at night."], category: Some("pest_control"), issue: Some("cockroaches"), ..BASE },
    Case { turns: &["Termites are eating the wooden beams in my garage."], category: Some("pest_control"), issue: Some("Termites"), ..BASE },
    Case { turns: &["There are rats in the attic, it's disgusting."], category: Some("pest_control"), issue: Some("rats in the attic"), ..BASE },
    Case { turns: &["Do you handle bed bugs? My name's Priya Patel."], category: Some("pest_control"), name: Some("Priya Patel"), issue: Some("bed bugs"), ..BASE },
    // Cleaning
    Case { turns: &["I need a deep clean before I move out."], category: Some("cleaning"), issue: Some("deep clean"), ..BASE },
    Case { turns: &["Could you do a carpet cleaning next Tuesday?"], category: Some("cleaning"), time: Some(("next Tuesday", "2026-11-24T14:00:00Z")), issue: Some("carpet cleaning"), ..BASE },
    Case { turns: &["I'd like a weekly house cleaning service."], category: Some("cleaning"), issue: Some("house cleaning"), ..BASE },
    Case { turns: &["There's a big red wine stain on my sofa."], category: Some("cleaning"), issue: Some("stain"), ..BASE },
    Case { turns: &["How about December 3rd for the carpet cleaning?"], category: Some("cleaning"), time: Some(("December 3rd", "2026-12-03T14:00:00Z")), issue: Some("carpet cleaning"), ..BASE },
    // Roofing
    Case { turns: &["Some shingles blew off my roof in the storm."], category: Some("roofing"), issue: Some("shingles blew off"), ..BASE },
    Case { turns: &["My gutters are clogged with leaves."], category: Some("roofing"), issue: Some("gutters are clogged"), ..BASE },
    Case { turns: &["Water is coming through the ceiling from the roof. It's raining hard."], category: Some("roofing"), issue: Some("from the roof"), ..BASE },
    Case { turns: &["I need a quote for a new roof."], category: Some("roofing"), issue: Some("quote for a new roof"), ..BASE },
    Case { turns: &["Hi, this is Maria Lopez calling about a leaking roof."], category: Some("roofing"), name: Some("Maria Lopez"), issue: Some("leaking roof"), ..BASE },
    Case { turns: &["I want to talk to someone about my roof."], category: Some("roofing"), human: true, issue: Some("roof"), ..BASE },
    Case { turns: &["one twenty three Elm Road, the gutter is hanging off."], category: Some("roofing"), location: Some("123 Elm Road"), issue: Some("gutter is hanging off"), ..BASE },
    // Carpentry
    Case { turns: &["The door frame on my back door is rotten."], category: Some("carpentry"), issue: Some("door frame"), ..BASE },
    Case { turns: &["Can you build some shelves in my living room?"], category: Some("carpentry"), issue: Some("shelves"), ..BASE },
    Case { turns: &["A few boards on my deck are loose."], category: Some("carpentry"), issue: Some("deck"), ..BASE },
    Case { turns: &["The kitchen cabinet doors are hanging off their hinges."], category: Some("carpentry"), issue: Some("cabinet doors"), ..BASE },
    Case { turns: &["My fence needs repair, the day after tomorrow works."], category: Some("carpentry"), time: Some(("day after tomorrow", "2026-11-23T14:00:00Z")), issue: Some("fence needs repair"), ..BASE },
    Case { turns: &["It's not an emergency, but my closet door sticks."], category: Some("carpentry"), urgency: Low, issue: Some("closet door sticks"), ..BASE },
    // General inquiries
    Case { turns: &["What are your hours?"], category: Some("general_inquiry"), issue: Some("hours"), ..BASE },
    Case { turns: &["How much do you charge for a service call?"], category: Some("general_inquiry"), issue: Some("How much do you charge"), ..BASE },
    Case { turns: &["Are you licensed and insured?"], category: Some("general_inquiry"), issue: Some("licensed and insured"), ..BASE },
    Case { turns: &["I have a question about my invoice."], category: Some("general_inquiry"), issue: Some("invoice"), ..BASE },
    // Requests for a person, and nothing useful
    Case { turns: &["Can I speak to a real person?"], human: true, ..BASE },
    Case { turns: &["Operator!"], human: true, ..BASE },
    Case { turns: &["Hello?"], ..BASE },
];

fn utc(s: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => panic!("bad time in table {s}: {e}"),
    }
}

fn conversation(turns: &[&str]) -> Conversation {
    let turns = turns
        .iter()
        .map(|t| match t.strip_prefix("A: ") {
            Some(agent) => Utterance {
                speaker: Speaker::Agent,
                text: agent.to_string(),
            },
            None => Utterance {
                speaker: Speaker::Caller,
                text: t.to_string(),
            },
        })
        .collect();
    Conversation {
        turns,
        caller_number: Some("+16175550100".into()),
        now: Some(utc(NOW)),
        known: Extraction::default(),
    }
}

fn extractor() -> RulesExtractor {
    RulesExtractor::new(
        DEFAULT_CATEGORIES.iter().map(|s| s.to_string()).collect(),
        New_York,
    )
}

/// Every mismatch of one row, as readable lines.
fn mismatches(case: &Case, got: &Extraction) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |field: &str, ok: bool, want: String, got: String| {
        if !ok {
            out.push(format!("  {field}: want {want}, got {got}"));
        }
    };
    check(
        "category",
        got.category.as_deref() == case.category,
        format!("{:?}", case.category),
        format!("{:?}", got.category),
    );
    check(
        "urgency",
        got.urgency == Some(case.urgency),
        format!("{:?}", case.urgency),
        format!("{:?}", got.urgency),
    );
    check(
        "location",
        got.location.as_deref() == case.location,
        format!("{:?}", case.location),
        format!("{:?}", got.location),
    );
    let want_time = case
        .time
        .map(|(said, at)| (said.to_string(), Some(utc(at))));
    let got_time = got
        .requested_time
        .clone()
        .map(|said| (said, got.requested_at));
    check(
        "time",
        got_time == want_time,
        format!("{want_time:?}"),
        format!("{got_time:?}"),
    );
    check(
        "name",
        got.caller_name.as_deref() == case.name,
        format!("{:?}", case.name),
        format!("{:?}", got.caller_name),
    );
    check(
        "phone",
        got.callback_number.as_deref() == case.phone,
        format!("{:?}", case.phone),
        format!("{:?}", got.callback_number),
    );
    check(
        "wants_human",
        got.wants_human == case.human,
        case.human.to_string(),
        got.wants_human.to_string(),
    );
    let issue_ok = match (case.issue, &got.issue) {
        (Some(words), Some(issue)) => issue.to_lowercase().contains(&words.to_lowercase()),
        (None, None) => true,
        _ => false,
    };
    check(
        "issue",
        issue_ok,
        format!("{:?}", case.issue),
        format!("{:?}", got.issue),
    );
    let confidence_ok = if got.category.is_some() {
        got.confidence > 0.0 && got.confidence <= 1.0
    } else {
        got.confidence == 0.0
    };
    check(
        "confidence",
        confidence_ok,
        "in (0, 1] with a category, else 0".into(),
        got.confidence.to_string(),
    );
    check(
        "reply",
        got.reply.is_none(),
        "None".into(),
        format!("{:?}", got.reply),
    );
    out
}

#[test]
fn the_table_of_caller_conversations() {
    assert!(
        CASES.len() >= 60,
        "the table must hold at least 60 conversations"
    );
    let rules = extractor();
    let mut failures = Vec::new();
    for case in CASES {
        let got = rules.extract(&conversation(case.turns));
        let wrong = mismatches(case, &got);
        if !wrong.is_empty() {
            failures.push(format!("{:?}\n{}", case.turns, wrong.join("\n")));
        }
    }
    let passed = CASES.len() - failures.len();
    println!("rules table: {passed}/{} conversations pass", CASES.len());
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn clear_single_need_is_confident_and_vague_talk_is_not() {
    let rules = extractor();
    let clear = rules.extract(&conversation(&[
        "My kitchen sink is leaking and the faucet drips.",
    ]));
    let vague = rules.extract(&conversation(&["There's a strange noise somewhere."]));
    assert!(clear.confidence >= 0.8, "clear: {}", clear.confidence);
    assert!(vague.confidence < 0.5, "vague: {}", vague.confidence);
}

#[test]
fn configured_categories_replace_the_defaults() {
    let rules = RulesExtractor::new(vec!["pool_cleaning".into(), "landscaping".into()], New_York);
    let pool = rules.extract(&conversation(&["The pool is green again."]));
    assert_eq!(pool.category.as_deref(), Some("pool_cleaning"));
    let lawn = rules.extract(&conversation(&["I need landscaping for my front yard."]));
    assert_eq!(lawn.category.as_deref(), Some("landscaping"));
    let toilet = rules.extract(&conversation(&["My toilet is clogged."]));
    assert_eq!(toilet.category, None, "plumbing is not configured");
}

#[test]
fn without_now_the_time_is_kept_as_said_only() {
    let mut conv = conversation(&["Tomorrow morning please, my faucet leaks."]);
    conv.now = None;
    let got = extractor().extract(&conv);
    assert_eq!(got.requested_time.as_deref(), Some("Tomorrow morning"));
    assert_eq!(got.requested_at, None);
}

#[test]
fn agent_turns_are_not_read_as_the_caller() {
    let got = extractor().extract(&conversation(&[
        "A: Hello, this is Acme Plumbing. Is this an emergency?",
        "Hi, my faucet drips.",
    ]));
    assert_eq!(got.caller_name, None);
    assert_eq!(got.urgency, Some(Urgency::Normal));
    assert_eq!(got.category.as_deref(), Some("plumbing"));
}

#[test]
fn the_trait_returns_the_same_extraction() {
    let rules = extractor();
    let conv = conversation(&["I smell gas, please send someone to 42 Oak Street."]);
    let direct = rules.extract(&conv);
    let via_trait = futures::executor::block_on(IntentExtractor::extract(&rules, &conv));
    assert_eq!(via_trait, Ok(direct));
    assert_eq!(rules.name(), "rules");
}

#[test]
fn extraction_takes_microseconds() {
    let rules = extractor();
    let conv = conversation(&[
        "Hi, my name is John Smith and I live at one twenty three Elm Road.",
        "A: How can I help?",
        "My water heater is leaking badly, could someone come tomorrow morning at nine thirty?",
        "A: What number can we reach you on?",
        "It's five five five, one two three, four five six seven.",
    ]);
    let runs = 2000;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(rules.extract(std::hint::black_box(&conv)));
    }
    let per_call = start.elapsed() / runs;
    println!("extract over 3 caller turns: {per_call:?} per call");
    // Bounds with headroom for a shared, loaded machine: they catch a regex
    // compiled per call or a quadratic scan, not scheduler noise.
    let bound = if cfg!(debug_assertions) { 50 } else { 2 };
    assert!(
        per_call < std::time::Duration::from_millis(bound),
        "{per_call:?}"
    );
}
