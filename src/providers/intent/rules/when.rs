//! Finding a requested time in a caller's words: the pieces ("next Friday",
//! "at three thirty", "in the morning", "as soon as possible") and the span
//! of the transcript that says them. Turning the pieces into an instant is in
//! `resolve`.

use chrono::Weekday;

use super::lexicon::negated;
use super::numbers::{cardinal, ordinal};
use super::text::{Break, Tok};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    /// "this Friday": the coming one, today included.
    This,
    /// "Friday": the coming one after today.
    Bare,
    /// "next Friday": the one in next calendar week (weeks start on Monday).
    Next,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    Today,
    Tomorrow,
    AfterTomorrow,
    Weekday(Weekday, Rel),
    Week(Rel),
    Weekend(Rel),
    Date { month: u32, day: u32 },
    NthOfMonth(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Morning,
    Afternoon,
    Evening,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub hour: u32,
    pub minute: u32,
    /// `Some(true)` for p.m., `Some(false)` for a.m., `None` when not said.
    pub pm: Option<bool>,
}

/// The pieces of one time expression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct When {
    pub day: Option<Day>,
    pub part: Option<Part>,
    pub clock: Option<Clock>,
    pub asap: bool,
    pub offset_minutes: Option<i64>,
    /// "yesterday", "since Monday", "last week": not a request.
    pub past: bool,
}

impl When {
    pub fn has_day(&self) -> bool {
        self.day.is_some()
    }
}

#[derive(Debug, Clone, Copy)]
enum Comp {
    Day(Day),
    Part(Part),
    DayPart(Day, Part),
    Clock(Clock),
    Asap,
    Offset(i64),
    Past,
}

/// Words that may sit between the pieces of one time expression.
const GLUE: [&str; 18] = [
    "at", "on", "in", "the", "around", "about", "by", "before", "after", "until", "till", "from",
    "sometime", "early", "late", "ish", "or", "between",
];

/// Words after which a bare number reads as a clock time ("at three").
const CLOCK_PREPS: [&str; 11] = [
    "at", "around", "about", "by", "after", "before", "until", "till", "from", "say", "between",
];

/// Nouns that make a number a quantity, not a time ("after 3 days").
const QUANTITY: [&str; 14] = [
    "day", "week", "hour", "minute", "month", "year", "time", "dollar", "buck", "percent", "kid",
    "people", "foot", "inch",
];

/// The first time expression in `toks` that asks for a time (not a past or
/// negated one), with its first and last token. Tokens marked in `skip`
/// (an address, say) are not read.
pub fn find(toks: &[Tok<'_>], skip: &[bool]) -> Option<(When, usize, usize)> {
    let mut current: Option<(When, usize, usize)> = None;
    let mut gap_dirty = false;
    let skipped = |k: usize| skip.get(k).copied().unwrap_or(false);
    let mut next_skip = vec![toks.len(); toks.len() + 1];
    for k in (0..toks.len()).rev() {
        next_skip[k] = if skipped(k) { k } else { next_skip[k + 1] };
    }
    let mut i = 0;
    while i < toks.len() {
        if skipped(i) {
            gap_dirty = true;
            i += 1;
            continue;
        }
        // A piece never reads into skipped tokens.
        let end = next_skip[i];
        if let Some((comp, used)) = comp_at(&toks[..end], i) {
            let clash = current.as_ref().is_some_and(|c| conflicts(&c.0, comp));
            if gap_dirty || clash {
                if let Some(found) = current.take().filter(|c| usable(toks, c)) {
                    return Some(found);
                }
            }
            // "at three" is said with its preposition.
            let lead = match comp {
                Comp::Clock(_) if i > 0 && CLOCK_PREPS.contains(&toks[i - 1].low.as_str()) => i - 1,
                _ => i,
            };
            let entry = current.get_or_insert((When::default(), lead, i));
            apply(&mut entry.0, comp);
            // "between 1 and 3" asks for the start of the range.
            let used = match comp {
                Comp::Clock(_) => used + range_end(&toks[..end], i + used),
                _ => used,
            };
            entry.2 = i + used - 1;
            gap_dirty = false;
            i += used;
            continue;
        }
        if !GLUE.contains(&toks[i].low.as_str()) {
            gap_dirty = true;
        }
        i += 1;
    }
    current.filter(|c| usable(toks, c))
}

fn usable(toks: &[Tok<'_>], (when, first, last): &(When, usize, usize)) -> bool {
    let since = first.checked_sub(1).is_some_and(|p| toks[p].is("since"));
    let ago = toks.get(last + 1).is_some_and(|t| t.is("ago"));
    !when.past && !since && !ago && !negated(toks, *first, 3)
}

/// How many tokens of "and 3" / "to 4:30" / "or 5pm" follow a clock time.
fn range_end(t: &[Tok<'_>], at: usize) -> usize {
    let joined = at > 0 && t[at - 1].brk == Break::None;
    let connector = t
        .get(at)
        .is_some_and(|x| matches!(x.low.as_str(), "and" | "to" | "or") && x.brk == Break::None);
    if !joined || !connector || at + 1 >= t.len() {
        return 0;
    }
    let end = written_clock(&t[at + 1].low)
        .map(|_| 1)
        .or_else(|| spoken_clock(t, at + 1).map(|(_, n)| n));
    match end {
        Some(n) => {
            let after = at + 1 + n;
            let meridiem = t.get(after).is_some_and(|x| x.is("am") || x.is("pm"))
                && t[after - 1].brk == Break::None;
            1 + n + usize::from(meridiem)
        }
        None => 0,
    }
}

/// A second day (or clock, or part of day) starts another expression: "not today, tomorrow".
fn conflicts(w: &When, comp: Comp) -> bool {
    match comp {
        Comp::Day(_) | Comp::DayPart(..) => w.day.is_some(),
        Comp::Clock(_) => w.clock.is_some(),
        Comp::Part(_) => w.part.is_some(),
        _ => false,
    }
}

fn apply(w: &mut When, comp: Comp) {
    match comp {
        Comp::Day(d) => {
            w.day.get_or_insert(d);
        }
        Comp::Part(p) => {
            w.part.get_or_insert(p);
        }
        Comp::DayPart(d, p) => {
            w.day.get_or_insert(d);
            w.part.get_or_insert(p);
        }
        Comp::Clock(c) => {
            w.clock.get_or_insert(c);
        }
        Comp::Asap => w.asap = true,
        Comp::Offset(m) => {
            w.offset_minutes.get_or_insert(m);
        }
        Comp::Past => w.past = true,
    }
}

/// True when the words from `i` are exactly `words` and run on without a sentence end.
fn seq(t: &[Tok<'_>], i: usize, words: &[&str]) -> bool {
    words.iter().enumerate().all(|(k, w)| {
        t.get(i + k)
            .is_some_and(|x| x.is(w) && (k + 1 == words.len() || x.brk != Break::Stop))
    })
}

const ASAP: [&[&str]; 7] = [
    &["as", "soon", "as", "possible"],
    &["as", "soon", "as", "you", "can"],
    &["soon", "as", "possible"],
    &["asap"],
    &["right", "away"],
    &["straight", "away"],
    &["immediately"],
];

/// One piece of a time expression starting at token `i`, and how many tokens it used.
fn comp_at(t: &[Tok<'_>], i: usize) -> Option<(Comp, usize)> {
    if let Some(words) = ASAP.iter().find(|w| seq(t, i, w)) {
        return Some((Comp::Asap, words.len()));
    }
    if seq(t, i, &["first", "thing"]) {
        return Some((
            Comp::Clock(Clock {
                hour: 8,
                minute: 0,
                pm: Some(false),
            }),
            2,
        ));
    }
    day_at(t, i)
        .or_else(|| part_at(t, i))
        .or_else(|| date_at(t, i))
        .or_else(|| offset_at(t, i))
        .or_else(|| clock_at(t, i))
}

fn weekday(stem: &str) -> Option<Weekday> {
    let d = match stem {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    };
    Some(d)
}

fn rel(low: &str) -> Option<Rel> {
    match low {
        "this" | "coming" => Some(Rel::This),
        "next" => Some(Rel::Next),
        _ => None,
    }
}

fn day_at(t: &[Tok<'_>], i: usize) -> Option<(Comp, usize)> {
    let w = t[i].low.as_str();
    let simple = match w {
        "today" => Some(Comp::Day(Day::Today)),
        "tonight" => Some(Comp::DayPart(Day::Today, Part::Evening)),
        "tomorrow" | "tomorrow's" | "tmrw" => Some(Comp::Day(Day::Tomorrow)),
        "yesterday" => Some(Comp::Past),
        "weekend" => Some(Comp::Day(Day::Weekend(Rel::This))),
        _ => None,
    };
    if seq(t, i, &["day", "after", "tomorrow"]) {
        return Some((Comp::Day(Day::AfterTomorrow), 3));
    }
    if let Some(c) = simple {
        return Some((c, 1));
    }
    // Plural weekdays ("open on Sundays") describe a habit, not a day.
    if let Some(d) = weekday(&t[i].low) {
        return Some((Comp::Day(Day::Weekday(d, Rel::Bare)), 1));
    }
    let next = t.get(i + 1).filter(|_| t[i].brk == Break::None)?;
    if w == "last"
        && (weekday(&next.stem).is_some()
            || matches!(next.low.as_str(), "week" | "night" | "weekend"))
    {
        return Some((Comp::Past, 2));
    }
    let r = rel(w)?;
    if let Some(d) = weekday(&next.stem) {
        return Some((Comp::Day(Day::Weekday(d, r)), 2));
    }
    match next.low.as_str() {
        "week" => Some((Comp::Day(Day::Week(r)), 2)),
        "weekend" => Some((Comp::Day(Day::Weekend(r)), 2)),
        _ => None,
    }
}

fn part_of(low: &str) -> Option<Part> {
    match low {
        "morning" => Some(Part::Morning),
        "afternoon" => Some(Part::Afternoon),
        "evening" | "night" => Some(Part::Evening),
        _ => None,
    }
}

fn part_at(t: &[Tok<'_>], i: usize) -> Option<(Comp, usize)> {
    let w = t[i].low.as_str();
    if matches!(w, "noon" | "midday" | "lunchtime") {
        return Some((
            Comp::Clock(Clock {
                hour: 12,
                minute: 0,
                pm: Some(true),
            }),
            1,
        ));
    }
    // "at night" on its own describes when a problem happens, not a visit.
    let prev_is_day = i
        .checked_sub(1)
        .is_some_and(|p| weekday(&t[p].stem).is_some() || t[p].is("tomorrow"));
    // "Good morning" is a greeting.
    let greeting = i.checked_sub(1).is_some_and(|p| t[p].is("good"));
    if let Some(p) = part_of(w).filter(|_| (w != "night" || prev_is_day) && !greeting) {
        return Some((Comp::Part(p), 1));
    }
    let next = t.get(i + 1).filter(|_| t[i].brk == Break::None)?;
    match (w, part_of(&next.low)) {
        ("this", Some(p)) => Some((Comp::DayPart(Day::Today, p), 2)),
        _ => None,
    }
}

fn month(low: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if let Some(m) = MONTHS.iter().position(|m| *m == low) {
        return Some(m as u32 + 1);
    }
    let short = [
        "jan", "feb", "apr", "jun", "jul", "aug", "sept", "oct", "nov", "dec",
    ];
    let months = [1, 2, 4, 6, 7, 8, 9, 10, 11, 12];
    short.iter().position(|m| *m == low).map(|k| months[k])
}

/// "November 3rd", "March 15", "the 15th", "the third of December".
fn date_at(t: &[Tok<'_>], i: usize) -> Option<(Comp, usize)> {
    let open = |k: usize| t.get(k).is_some_and(|x| x.brk == Break::None) && k + 1 < t.len();
    if let Some(m) = month(&t[i].low) {
        if !open(i) {
            return None;
        }
        let rest = &t[i + 1..];
        let (day, used) =
            ordinal(rest).or_else(|| cardinal(rest).map(|(v, n)| (v.min(99) as u32, n)))?;
        return (1..=31)
            .contains(&day)
            .then_some((Comp::Day(Day::Date { month: m, day }), 1 + used));
    }
    let (start, lead) = if t[i].is("the") && open(i) {
        (i + 1, 1)
    } else {
        (i, 0)
    };
    let (day, used) = ordinal(&t[start..])?;
    let after = start + used;
    if open(after - 1) && t[after].is("of") && open(after) {
        if let Some(m) = month(&t[after + 1].low) {
            return Some((Comp::Day(Day::Date { month: m, day }), lead + used + 2));
        }
    }
    // A bare ordinal ("the third") is a date only after "the" or "on the".
    (lead == 1 && (1..=31).contains(&day)).then_some((Comp::Day(Day::NthOfMonth(day)), lead + used))
}

/// "in two hours", "in 20 minutes", "in an hour", "in half an hour".
fn offset_at(t: &[Tok<'_>], i: usize) -> Option<(Comp, usize)> {
    if !t[i].is("in") || t[i].brk != Break::None {
        return None;
    }
    if seq(t, i + 1, &["half", "an", "hour"]) {
        return Some((Comp::Offset(30), 4));
    }
    let rest = t.get(i + 1..)?;
    let (amount, used) = match rest.first()?.low.as_str() {
        "a" | "an" => (1, 1),
        _ => cardinal(rest)?,
    };
    let unit = rest.get(used)?.stem.as_str();
    let minutes = match unit {
        "minute" | "min" => amount as i64,
        "hour" | "hr" => (amount as i64).saturating_mul(60),
        _ => return None,
    };
    Some((Comp::Offset(minutes), 1 + used + 1))
}

/// A clock time: "3:30", "10am", "ten a.m.", "three o'clock", "half past two",
/// or a bare number after "at"/"around"/"by" ("at three thirty").
fn clock_at(t: &[Tok<'_>], i: usize) -> Option<(Comp, usize)> {
    if let Some(found) = past_to_at(t, i) {
        return Some(found);
    }
    let (mut clock, mut used, explicit) = written_clock(&t[i].low)
        .map(|c| (c, 1, true))
        .or_else(|| spoken_clock(t, i).map(|(c, n)| (c, n, false)))?;
    let open_after = t[i + used - 1].brk == Break::None;
    let next = t
        .get(i + used)
        .filter(|_| open_after)
        .map(|x| x.low.as_str());
    let mut marked = explicit;
    match next {
        Some("am") if clock.pm.is_none() => {
            (clock.pm, used, marked) = (Some(false), used + 1, true)
        }
        Some("pm") if clock.pm.is_none() => (clock.pm, used, marked) = (Some(true), used + 1, true),
        Some("o'clock") | Some("oclock") => (used, marked) = (used + 1, true),
        _ => {}
    }
    if next.is_some_and(|n| QUANTITY.contains(&super::text::stem(n).as_str())) {
        return None;
    }
    let prev = i.checked_sub(1).map(|p| t[p].low.as_str()).unwrap_or("");
    let after_day = weekday(&super::text::stem(prev)).is_some()
        || matches!(prev, "today" | "tomorrow" | "tonight");
    let valid = clock.hour <= 23 && clock.minute <= 59 && (clock.pm.is_none() || clock.hour <= 12);
    (valid && (marked || CLOCK_PREPS.contains(&prev) || after_day))
        .then_some((Comp::Clock(clock), used))
}

/// "3:30", "10am", "3:30pm", "15:00", "3.30".
fn written_clock(low: &str) -> Option<Clock> {
    let (body, pm) = if let Some(b) = low.strip_suffix("am") {
        (b, Some(false))
    } else if let Some(b) = low.strip_suffix("pm") {
        (b, Some(true))
    } else {
        (low, None)
    };
    let (h, m) = match body.split_once([':', '.']) {
        Some((h, m)) if m.len() == 2 => (h, m),
        Some(_) => return None,
        None if pm.is_some() => (body, "0"),
        None => return None,
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.chars().all(|c| c.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    Some(Clock {
        hour: h.parse().ok()?,
        minute: m.parse().ok()?,
        pm,
    })
}

/// An hour in digits or words with optional minutes: "three", "three thirty", "ten oh five".
fn spoken_clock(t: &[Tok<'_>], i: usize) -> Option<(Clock, usize)> {
    let (hour, used) = cardinal(&t[i..])?;
    if hour > 23 || t[i].low.contains(',') {
        return None;
    }
    let mut clock = Clock {
        hour: hour as u32,
        minute: 0,
        pm: None,
    };
    let j = i + used;
    if t[j - 1].brk != Break::None || j >= t.len() {
        return Some((clock, used));
    }
    if matches!(t[j].low.as_str(), "oh" | "o") && t[j].brk == Break::None {
        if let Some((m, 1)) = t.get(j + 1..).and_then(cardinal).filter(|(m, _)| *m < 10) {
            clock.minute = m as u32;
            return Some((clock, used + 2));
        }
    }
    match cardinal(&t[j..]) {
        Some((m, n)) if (10..60).contains(&m) => {
            clock.minute = m as u32;
            Some((clock, used + n))
        }
        _ => Some((clock, used)),
    }
}

/// "half past two", "quarter to five", "ten past three".
fn past_to_at(t: &[Tok<'_>], i: usize) -> Option<(Comp, usize)> {
    let (minutes, used) = match t[i].low.as_str() {
        "half" => (30, 1),
        "quarter" => (15, 1),
        _ => cardinal(&t[i..]).filter(|(m, _)| (1..=30).contains(m))?,
    };
    let dir = t.get(i + used)?;
    if t[i + used - 1].brk != Break::None || !matches!(dir.low.as_str(), "past" | "after" | "to") {
        return None;
    }
    let (hour, n) = t.get(i + used + 1..).and_then(cardinal)?;
    if !(1..=12).contains(&hour) {
        return None;
    }
    let (hour, minute) = if dir.is("to") {
        ((hour as u32 + 11) % 12, 60 - minutes as u32)
    } else {
        (hour as u32, minutes as u32)
    };
    let hour = if hour == 0 { 12 } else { hour };
    Some((
        Comp::Clock(Clock {
            hour,
            minute,
            pm: None,
        }),
        used + 1 + n,
    ))
}
