//! Turn-taking, barge-in, fillers, re-prompts, time limits and stale results, in virtual time.

use super::*;

#[test]
fn greeting_is_the_first_utterance() {
    let d = Driver::new(config());
    let says = d.says();
    assert_eq!(says.len(), 1);
    assert_eq!(says[0].1, Purpose::Greeting);
    assert_eq!(
        says[0].2,
        "Thanks for calling Acme Plumbing. How can I help you today?"
    );
}

#[test]
fn turn_ends_after_the_configured_silence() {
    let mut d = after_greeting(config());
    d.frames(1000, true);
    let last_speech = d.ms();
    d.final_text("my kitchen sink is leaking", false);
    d.frames(580, false);
    assert!(
        d.extract_requests().is_empty(),
        "ended before 600 ms of silence"
    );
    d.frames(100, false);
    let requests = d.extract_requests();
    assert_eq!(requests.len(), 1);
    let (at, turn, conv) = &requests[0];
    assert_eq!(
        *at,
        last_speech + 600,
        "ends exactly 600 ms after the last speech frame"
    );
    assert_eq!(*turn, TurnId(1));
    assert_eq!(conv.last_caller_text(), Some("my kitchen sink is leaking"));
    assert_eq!(conv.caller_number.as_deref(), Some("+15551234567"));
    let (_, ev) = &d.events("turn_end")[0];
    assert_eq!(ev["reason"], "silence");
    assert_eq!(ev["silence_ms"], 600);
}

#[test]
fn end_of_turn_and_utterance_end_end_the_turn_at_once() {
    let mut d = after_greeting(config());
    d.frames(600, true);
    d.final_text("hello", true);
    let t = d.ms();
    assert_eq!(d.extract_requests().len(), 1);
    assert_eq!(d.extract_requests()[0].0, t);
    assert_eq!(d.events("turn_end")[0].1["reason"], "end_of_turn");

    let mut d = after_greeting(config());
    d.frames(600, true);
    d.final_text("my boiler", false);
    d.frames(100, false);
    assert!(d.extract_requests().is_empty());
    d.stt(SttEvent::UtteranceEnd);
    assert_eq!(d.extract_requests().len(), 1);
    assert_eq!(d.events("turn_end")[0].1["reason"], "utterance_end");
}

#[test]
fn long_speech_over_the_agent_barges_in_and_records_what_was_heard() {
    let mut d = Driver::new(config());
    // First sentence "Thanks for calling Acme Plumbing." (33 chars) is heard at 100 + 33*60 ms.
    d.wait(2200);
    let greeting = d.current_say().expect("greeting");
    d.frames(1000, true);
    let stops = d.find(|o| match o {
        Output::StopSpeaking { utterance } => Some(*utterance),
        _ => None,
    });
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].1, greeting);
    // Speech starts with the frame at 2220 ms and is confirmed at the backchannel limit.
    assert_eq!(stops[0].0, 2220 + 600);
    let (_, ev) = &d.events("barge_in")[0];
    assert_eq!(ev["reason"], "speech_duration");
    let lines = d.find(|o| match o {
        Output::Transcript {
            speaker: Speaker::Agent,
            text,
            heard_chars,
            ..
        } => Some((text.clone(), *heard_chars)),
        _ => None,
    });
    let lines: Vec<_> = lines.into_iter().map(|l| l.1).collect();
    assert_eq!(
        lines,
        vec![(
            "Thanks for calling Acme Plumbing. How can I help you today?".to_string(),
            Some("Thanks for calling Acme Plumbing.".len())
        )]
    );
    let heard = &d.call.conversation().turns[0];
    assert_eq!(heard.text, "Thanks for calling Acme Plumbing.");
}

#[test]
fn a_backchannel_does_not_interrupt_the_agent() {
    let mut d = Driver::new(config());
    d.wait(1000);
    d.frames(400, true);
    d.frames(200, false);
    d.final_text("uh-huh", false);
    d.until_quiet();
    assert!(d
        .find(|o| matches!(o, Output::StopSpeaking { .. }).then_some(()))
        .is_empty());
    let ignored = d.events("backchannel_ignored");
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert_eq!(ignored[0].1["reason"], "short_speech");
    assert_eq!(ignored[1].1["reason"], "backchannel_text");
    d.wait(1000);
    assert!(
        d.extract_requests().is_empty(),
        "a dropped backchannel is no turn"
    );
    // The greeting played to its end: a full transcript line.
    let full = d.find(|o| match o {
        Output::Transcript {
            speaker: Speaker::Agent,
            heard_chars,
            ..
        } => Some(*heard_chars),
        _ => None,
    });
    assert_eq!(full, vec![(full[0].0, None)]);
}

#[test]
fn words_that_are_not_a_backchannel_interrupt_before_the_limit() {
    let mut d = Driver::new(config());
    d.wait(1000);
    d.frames(300, true);
    assert!(d.events("barge_in").is_empty());
    d.stt(SttEvent::Interim {
        text: "wait my basement".into(),
    });
    let barge = d.events("barge_in");
    assert_eq!(barge.len(), 1);
    assert_eq!(barge[0].0, 1300);
    assert_eq!(barge[0].1["reason"], "interim_text");
}

#[test]
fn fillers_come_at_800_ms_and_later_and_the_answer_follows() {
    let mut d = after_greeting(config());
    d.extractor = fixed(3000, extraction("plumbing", "leaking sink", 0.9));
    d.caller_turn("my sink is leaking");
    let asked = d.extract_requests()[0].0;
    d.wait(6000);
    let says = d.says();
    let fillers: Vec<_> = says.iter().filter(|s| s.1 == Purpose::Filler).collect();
    assert_eq!(fillers.len(), 2, "{says:?}");
    assert_eq!(fillers[0].0, asked + 800);
    assert_eq!(fillers[0].2, "One moment.");
    assert_eq!(fillers[1].0, asked + 2000);
    assert_ne!(fillers[1].2, fillers[0].2);
    let reply = says
        .iter()
        .find(|s| s.1 == Purpose::Reply)
        .expect("a reply");
    // The answer came at 3000 ms, during the second filler, and waited for it.
    assert_eq!(reply.0, fillers[1].0 + play_ms(&fillers[1].2));
    assert!(reply.2.contains("What is the address"), "{}", reply.2);
}

#[test]
fn a_long_wait_never_leaves_more_dead_air_than_the_filler_threshold() {
    let mut d = after_greeting(config());
    // An engine that stalls until its timeout and the retry, then the fallback.
    d.extractor = fixed(7000, extraction("plumbing", "leaking sink", 0.9));
    d.caller_turn("my sink is leaking");
    let asked = d.extract_requests()[0].0;
    d.wait(10_000);
    let says = d.says();
    let reply = says
        .iter()
        .find(|s| s.1 == Purpose::Reply)
        .expect("a reply");
    // Between the question and the reply, every gap between agent speech is
    // at most filler_after (800 ms).
    let mut heard_until = asked;
    for s in says.iter().filter(|s| s.0 >= asked && s.0 <= reply.0) {
        assert!(
            s.0 - heard_until <= 800,
            "{} ms of dead air before {:?}",
            s.0 - heard_until,
            s.2
        );
        heard_until = s.0 + play_ms(&s.2);
    }
    let fillers = says.iter().filter(|s| s.1 == Purpose::Filler).count();
    assert!(fillers >= 3, "{says:?}");
}

#[test]
fn an_answer_that_arrives_mid_filler_plays_after_it() {
    let mut d = after_greeting(config());
    d.extractor = fixed(900, extraction("plumbing", "leaking sink", 0.9));
    d.caller_turn("my sink is leaking");
    let asked = d.extract_requests()[0].0;
    d.wait(3000);
    let says = d.says();
    let filler = says
        .iter()
        .find(|s| s.1 == Purpose::Filler)
        .expect("filler");
    assert_eq!(filler.0, asked + 800);
    let reply = says.iter().find(|s| s.1 == Purpose::Reply).expect("reply");
    assert_eq!(
        reply.0,
        filler.0 + play_ms("One moment."),
        "the reply waits for the filler"
    );
    assert_eq!(says.iter().filter(|s| s.1 == Purpose::Filler).count(), 1);
}

#[test]
fn no_filler_when_the_answer_is_quick() {
    let mut d = after_greeting(config());
    d.extractor = fixed(300, extraction("plumbing", "leaking sink", 0.9));
    d.caller_turn("my sink is leaking");
    d.wait(3000);
    assert!(d.events("filler").is_empty());
    assert!(d.says().iter().all(|s| s.1 != Purpose::Filler));
    assert_eq!(d.says().last().map(|s| s.1), Some(Purpose::Reply));
}

#[test]
fn silence_is_reprompted_then_the_call_ends_politely() {
    let mut d = after_greeting(config());
    let quiet_from = last_agent_end(&d);
    d.wait(40_000);
    let says = d.says();
    let reprompts: Vec<_> = says.iter().filter(|s| s.1 == Purpose::Reprompt).collect();
    assert_eq!(reprompts.len(), 2, "{says:?}");
    assert_eq!(reprompts[0].0, quiet_from + 6000);
    assert_eq!(
        reprompts[0].2,
        "Are you still there? How can we help you today?"
    );
    let goodbye = says
        .iter()
        .find(|s| s.1 == Purpose::Goodbye)
        .expect("goodbye");
    let hangups = d.hangups();
    assert_eq!(hangups.len(), 1);
    assert_eq!(hangups[0].1, EndReason::Silence);
    assert_eq!(
        hangups[0].0,
        goodbye.0 + play_ms(&goodbye.2),
        "after the goodbye played"
    );
    assert!(d.call.is_ended());
}

#[test]
fn caller_speech_resets_the_silence_count() {
    let mut d = after_greeting(config());
    d.extractor = fixed(100, Extraction::default());
    d.wait(6500);
    assert_eq!(d.events("reprompt").len(), 1);
    d.caller_turn("hello");
    d.until_quiet();
    d.wait(6500);
    d.until_quiet();
    d.wait(6500);
    assert_eq!(
        d.events("reprompt").len(),
        3,
        "the count restarted after the caller spoke"
    );
    assert!(d.hangups().is_empty());
}

#[test]
fn max_duration_cuts_in_with_a_goodbye_then_hangs_up() {
    let mut c = config();
    c.tuning.max_duration = Duration::from_secs(10);
    let mut d = after_greeting(c);
    d.until_ms(9_990);
    assert!(d.events("closing").is_empty());
    d.until_ms(10_000);
    let stopped = d.find(|o| matches!(o, Output::StopSpeaking { .. }).then_some(()));
    let goodbye: Vec<_> = d
        .says()
        .into_iter()
        .filter(|s| s.1 == Purpose::Goodbye)
        .collect();
    assert_eq!(goodbye.len(), 1);
    assert_eq!(goodbye[0].0, 10_000);
    assert!(goodbye[0].2.contains("time limit"));
    // The first re-prompt (6 s after the greeting ended) was playing: it was cut first.
    assert_eq!(stopped.len(), 1, "{:?}", d.says());
    assert!(d.hangups().is_empty(), "not before the goodbye played");
    d.wait(10_000);
    assert_eq!(d.hangups().len(), 1);
    assert_eq!(d.hangups()[0].1, EndReason::MaxDuration);
}

#[test]
fn an_unreported_goodbye_still_hangs_up_after_its_safety_timeout() {
    let mut c = config();
    c.tuning.max_duration = Duration::from_secs(10);
    let mut d = after_greeting(c);
    d.auto_play = false;
    d.until_ms(10_000);
    let goodbye = d
        .says()
        .into_iter()
        .find(|s| s.1 == Purpose::Goodbye)
        .expect("goodbye");
    // Speech over the goodbye does not stop it.
    d.frames(1000, true);
    assert!(d.events("barge_in").is_empty());
    d.wait(5_000);
    assert!(d.hangups().is_empty(), "a goodbye is never cut short");
    d.wait(30_000);
    let hangups = d.hangups();
    assert_eq!(hangups.len(), 1);
    let chars: usize = prompts::sentences(&goodbye.2)
        .iter()
        .map(|s| s.chars().count())
        .sum();
    assert_eq!(hangups[0].0, goodbye.0 + 3000 + 120 * chars as u64);
    assert_eq!(d.events("playback_timeout").len(), 1);
}

#[test]
fn a_result_for_an_older_turn_is_dropped() {
    let mut d = after_greeting(config());
    d.frames(600, true);
    d.final_text("I have a leak", true);
    let first = d.extract_requests()[0].1;
    // The caller goes on before the answer: the answer is for half a thought.
    d.frames(400, true);
    d.input(|at| Input::Extracted {
        at,
        turn: first,
        result: Ok(extraction("plumbing", "leak", 0.9)),
    });
    assert_eq!(
        d.events("result_held").len(),
        1,
        "held while the caller makes sound"
    );
    d.final_text("under the kitchen sink", true);
    assert_eq!(
        d.events("stale_result")[0].1["reason"],
        "caller_spoke_again"
    );
    let requests = d.extract_requests();
    assert_eq!(requests.len(), 2);
    let (_, second, conv) = &requests[1];
    assert_ne!(*second, first);
    let caller: Vec<_> = conv.caller_text().collect();
    assert_eq!(caller, vec!["I have a leak", "under the kitchen sink"]);
    d.input(|at| Input::Extracted {
        at,
        turn: first,
        result: Ok(extraction("hvac", "wrong", 0.9)),
    });
    assert_eq!(d.events("stale_result")[1].1["reason"], "newer_turn");
    assert!(d
        .find(|o| matches!(o, Output::SaveTask { .. }).then_some(()))
        .is_empty());
    let second = *second;
    d.frames(200, false);
    d.input(|at| Input::Extracted {
        at,
        turn: second,
        result: Ok(extraction("plumbing", "leak under the kitchen sink", 0.9)),
    });
    assert_eq!(d.call.extraction().category.as_deref(), Some("plumbing"));
}

#[test]
fn an_answer_held_during_a_cough_plays_when_the_sound_stops() {
    let mut d = after_greeting(config());
    d.frames(600, true);
    d.final_text("my sink is leaking", true);
    let turn = d.extract_requests()[0].1;
    d.frames(200, false);
    d.frames(300, true);
    d.input(|at| Input::Extracted {
        at,
        turn,
        result: Ok(extraction("plumbing", "leaking sink", 0.9)),
    });
    assert_eq!(d.events("result_held").len(), 1);
    assert_eq!(d.says().len(), 1, "nothing said over the caller");
    d.frames(200, false);
    let reply = d.says().pop().expect("reply");
    assert_eq!(reply.1, Purpose::Reply);
    assert!(reply.2.contains("address"));
    assert!(d.events("stale_result").is_empty());
}

#[test]
fn no_reprompt_while_a_slow_recogniser_still_owes_words() {
    let mut d = after_greeting(config());
    d.extractor = fixed(100, extraction("plumbing", "sink leaking", 0.9));
    // The caller speaks for a second; the recogniser takes 8 s to answer.
    d.frames(1000, true);
    d.frames(200, false);
    d.wait(8000);
    assert!(d.events("reprompt").is_empty(), "{:?}", d.says());
    d.final_text("my sink is leaking", true);
    d.until_quiet();
    assert!(d.events("reprompt").is_empty());
    assert_eq!(d.extract_requests().len(), 1, "the late words end the turn");
}
