//! Turning the pieces of a time expression into an instant: the business's
//! local calendar and clock, converted to UTC with the time zone's rules
//! (a time that falls in a spring-forward gap moves one hour on; an ambiguous
//! fall-back time takes the earlier instant). Pure: `now` is passed in.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::text::{span, tokenize};
use super::when::{find, Clock, Day, Part, Rel, When};

/// Hours used when the caller names a part of the day but no clock time.
fn default_hour(part: Part) -> u32 {
    match part {
        Part::Morning => 9,
        Part::Afternoon => 14,
        Part::Evening => 18,
    }
}

/// The instant `when` means, seen from `now` in zone `tz`. A day with no time
/// of day means 09:00; a time already past today moves to tomorrow (a bare
/// clock time) or to now (today, this afternoon).
pub fn resolve(when: &When, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    if when.asap {
        return Some(now);
    }
    if let Some(m) = when.offset_minutes {
        return now.checked_add_signed(TimeDelta::try_minutes(m)?);
    }
    let today = now.with_timezone(&tz).date_naive();
    let date = match when.day {
        Some(d) => day_date(d, today)?,
        None => today,
    };
    let (hour, minute) = match (when.clock, when.part) {
        (Some(c), part) => (hour24(c, part), c.minute),
        (None, Some(p)) => (default_hour(p), 0),
        (None, None) => (9, 0),
    };
    let at = local_to_utc(tz, date, hour, minute)?;
    if at >= now {
        return Some(at);
    }
    match when.day {
        // "at nine" said at ten means tomorrow.
        None if when.clock.is_some() => local_to_utc(tz, date.succ_opt()?, hour, minute),
        None => Some(now),
        Some(Day::Today) => {
            // "today at nine" said in the afternoon means nine in the evening.
            let unmarked = when.clock.filter(|c| c.pm.is_none() && when.part.is_none());
            match unmarked.filter(|_| hour < 12) {
                Some(c) => local_to_utc(tz, date, hour + 12, c.minute).map(|t| t.max(now)),
                None => Some(now),
            }
        }
        // "this weekend" said on Saturday afternoon: now.
        Some(_) => Some(at.max(now)),
    }
}

/// 24-hour clock hour: a.m./p.m. when said, else the part of day, else working
/// hours (one to six is afternoon, seven to eleven is morning).
fn hour24(c: Clock, part: Option<Part>) -> u32 {
    if c.hour > 12 {
        return c.hour % 24;
    }
    match (c.pm, part) {
        (Some(false), _) => c.hour % 12,
        (Some(true), _) => c.hour % 12 + 12,
        (None, Some(Part::Morning)) => c.hour % 12,
        (None, Some(_)) => c.hour % 12 + 12,
        (None, None) if (1..=6).contains(&c.hour) => c.hour + 12,
        (None, None) => c.hour,
    }
}

fn day_date(day: Day, today: NaiveDate) -> Option<NaiveDate> {
    let weekday_now = i64::from(today.weekday().num_days_from_monday());
    let plus = |days: i64| today.checked_add_signed(TimeDelta::try_days(days)?);
    match day {
        Day::Today => Some(today),
        Day::Tomorrow => plus(1),
        Day::AfterTomorrow => plus(2),
        Day::Weekday(wd, rel) => {
            let target = i64::from(wd.num_days_from_monday());
            let ahead = (target - weekday_now).rem_euclid(7);
            plus(match rel {
                Rel::This => ahead,
                Rel::Bare if ahead == 0 => 7,
                Rel::Bare => ahead,
                Rel::Next => 7 - weekday_now + target,
            })
        }
        Day::Week(Rel::Next) => plus(7 - weekday_now),
        Day::Week(_) => plus(1),
        Day::Weekend(Rel::Next) => plus(7 - weekday_now + 5),
        Day::Weekend(_) if weekday_now == 6 => Some(today),
        Day::Weekend(_) => plus((5 - weekday_now).rem_euclid(7)),
        Day::Date { month, day } => {
            let this_year = NaiveDate::from_ymd_opt(today.year(), month, day)?;
            if this_year >= today {
                Some(this_year)
            } else {
                NaiveDate::from_ymd_opt(today.year() + 1, month, day)
            }
        }
        Day::NthOfMonth(d) => {
            let this_month = NaiveDate::from_ymd_opt(today.year(), today.month(), d);
            match this_month.filter(|date| *date >= today) {
                Some(date) => Some(date),
                None => {
                    let (y, m) = if today.month() == 12 {
                        (today.year() + 1, 1)
                    } else {
                        (today.year(), today.month() + 1)
                    };
                    NaiveDate::from_ymd_opt(y, m, d)
                }
            }
        }
    }
}

/// Local wall-clock time in `tz` to UTC, DST-aware.
pub fn local_to_utc(tz: Tz, date: NaiveDate, hour: u32, minute: u32) -> Option<DateTime<Utc>> {
    let naive = date.and_hms_opt(hour, minute, 0)?;
    let local = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(earlier, _) => earlier,
        LocalResult::None => tz
            .from_local_datetime(&naive.checked_add_signed(TimeDelta::try_hours(1)?)?)
            .earliest()?,
    };
    Some(local.with_timezone(&Utc))
}

/// Finds the first requested time in `text`: the words as said, and the
/// instant when `now` is known.
pub fn parse_time(
    text: &str,
    now: Option<DateTime<Utc>>,
    tz: Tz,
) -> Option<(String, Option<DateTime<Utc>>)> {
    let toks = tokenize(text);
    let (when, first, last) = find(&toks, &vec![false; toks.len()])?;
    let at = now.and_then(|n| resolve(&when, n, tz));
    Some((span(text, &toks, first, last).to_string(), at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::London;

    fn utc(s: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("bad test time {s}: {e}"),
        }
    }

    /// Saturday 21 November 2026, 10:00 in New York (EST, UTC−5).
    const NOW: &str = "2026-11-21T15:00:00Z";

    fn at(text: &str) -> Option<(String, Option<DateTime<Utc>>)> {
        parse_time(text, Some(utc(NOW)), New_York)
    }

    fn check(text: &str, said: &str, when: &str) {
        assert_eq!(
            at(text),
            Some((said.to_string(), Some(utc(when)))),
            "{text}"
        );
    }

    #[test]
    fn relative_days_and_parts_of_day() {
        check(
            "Could you come tomorrow morning?",
            "tomorrow morning",
            "2026-11-22T14:00:00Z",
        );
        check(
            "Can someone come this afternoon",
            "this afternoon",
            "2026-11-21T19:00:00Z",
        );
        check("Tonight would be best", "Tonight", "2026-11-21T23:00:00Z");
        check(
            "next Friday at three thirty",
            "next Friday at three thirty",
            "2026-11-27T20:30:00Z",
        );
        check(
            "Monday at 10am works",
            "Monday at 10am",
            "2026-11-23T15:00:00Z",
        );
        check(
            "on Monday at 10 a.m.",
            "Monday at 10 a.m",
            "2026-11-23T15:00:00Z",
        );
        check(
            "the day after tomorrow",
            "day after tomorrow",
            "2026-11-23T14:00:00Z",
        );
        check("Tuesday evening", "Tuesday evening", "2026-11-24T23:00:00Z");
        check(
            "this Saturday at noon",
            "this Saturday at noon",
            "2026-11-21T17:00:00Z",
        );
    }

    #[test]
    fn clock_times() {
        check("around 3", "around 3", "2026-11-21T20:00:00Z");
        check("at 9", "at 9", "2026-11-22T14:00:00Z");
        check(
            "half past two tomorrow",
            "half past two tomorrow",
            "2026-11-22T19:30:00Z",
        );
        check(
            "tomorrow at quarter to nine in the morning",
            "tomorrow at quarter to nine in the morning",
            "2026-11-22T13:45:00Z",
        );
        check(
            "at 15:30 on Monday",
            "at 15:30 on Monday",
            "2026-11-23T20:30:00Z",
        );
        check(
            "tomorrow at ten oh five",
            "tomorrow at ten oh five",
            "2026-11-22T15:05:00Z",
        );
    }

    #[test]
    fn dates_offsets_and_asap() {
        check("December 3rd", "December 3rd", "2026-12-03T14:00:00Z");
        check(
            "on the fifteenth of January",
            "the fifteenth of January",
            "2027-01-15T14:00:00Z",
        );
        check("as soon as possible please", "as soon as possible", NOW);
        check("in two hours", "in two hours", "2026-11-21T17:00:00Z");
        check("next week", "next week", "2026-11-23T14:00:00Z");
        check("this weekend", "this weekend", NOW);
        check(
            "tomorrow between 1 and 3",
            "tomorrow between 1 and 3",
            "2026-11-22T18:00:00Z",
        );
        check(
            "Good morning, tomorrow at 4 works",
            "tomorrow at 4",
            "2026-11-22T21:00:00Z",
        );
    }

    #[test]
    fn past_negated_and_quantities_are_not_requests() {
        assert_eq!(at("It started yesterday"), None);
        assert_eq!(at("It's been leaking since Monday"), None);
        assert_eq!(at("I waited after 3 days"), None);
        assert_eq!(
            at("Not today, tomorrow works"),
            Some(("tomorrow".into(), Some(utc("2026-11-22T14:00:00Z"))))
        );
        assert_eq!(at("I have three kids"), None);
        assert_eq!(at("Are you open on Sundays?"), None);
        assert_eq!(at("They come out at night"), None);
    }

    #[test]
    fn no_now_means_no_instant() {
        assert_eq!(
            parse_time("tomorrow", None, New_York),
            Some(("tomorrow".into(), None))
        );
    }

    #[test]
    fn daylight_saving_changes() {
        // Saturday 7 March 2026: New York springs forward at 02:00 on Sunday the 8th.
        let sat = Some(utc("2026-03-07T15:00:00Z"));
        let morning = parse_time("tomorrow morning", sat, New_York).and_then(|x| x.1);
        assert_eq!(morning, Some(utc("2026-03-08T13:00:00Z")), "09:00 EDT");
        let gap = parse_time("tomorrow at 2:30 am", sat, New_York).and_then(|x| x.1);
        assert_eq!(
            gap,
            Some(utc("2026-03-08T07:30:00Z")),
            "02:30 does not exist; 03:30 EDT"
        );
        // Saturday 31 October 2026: New York falls back at 02:00 on Sunday 1 November.
        let oct = Some(utc("2026-10-31T15:00:00Z"));
        let twice = parse_time("tomorrow at 1:30 am", oct, New_York).and_then(|x| x.1);
        assert_eq!(
            twice,
            Some(utc("2026-11-01T05:30:00Z")),
            "the earlier 01:30 (EDT)"
        );
        // London is on GMT in November and BST in July.
        let nov = parse_time("Monday at 10am", Some(utc(NOW)), London).and_then(|x| x.1);
        assert_eq!(nov, Some(utc("2026-11-23T10:00:00Z")));
        let jul = parse_time("Monday at 10am", Some(utc("2026-07-01T12:00:00Z")), London);
        assert_eq!(jul.and_then(|x| x.1), Some(utc("2026-07-06T09:00:00Z")));
    }
}
