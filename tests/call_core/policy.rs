//! Escalation, transfer, robustness and the dialogue end to end, driven in virtual time.

use super::*;

fn escalations(d: &Driver) -> Vec<(u64, (EscalationReason, String))> {
    d.find(|o| match o {
        Output::Escalate { reason, summary } => Some((*reason, summary.clone())),
        _ => None,
    })
}

#[test]
fn dtmf_zero_transfers_after_the_announcement() {
    let mut c = config();
    c.can_transfer = true;
    let mut d = Driver::new(c);
    d.transfer_ok = Some(true);
    d.wait(500);
    d.input(|at| Input::Dtmf { at, digit: '0' });
    let esc = escalations(&d);
    assert_eq!(esc.len(), 1);
    assert_eq!(esc[0].1 .0, EscalationReason::DtmfZero);
    assert!(esc[0].1 .1.contains("pressed 0"));
    let kinds: Vec<&str> = d
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::SaveTask { .. } => Some("save"),
            Output::Escalate { .. } => Some("escalate"),
            Output::StopSpeaking { .. } => Some("stop"),
            Output::Say {
                purpose: Purpose::Escalation,
                ..
            } => Some("announce"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec!["save", "escalate", "stop", "announce"]);
    assert!(d
        .find(|o| matches!(o, Output::Transfer).then_some(()))
        .is_empty());
    d.wait(10_000);
    assert_eq!(
        d.find(|o| matches!(o, Output::Transfer).then_some(()))
            .len(),
        1
    );
    assert_eq!(
        d.hangups().iter().map(|h| h.1).collect::<Vec<_>>(),
        vec![EndReason::Transferred]
    );
}

#[test]
fn without_a_transfer_the_caller_is_promised_a_callback() {
    let mut d = after_greeting(config());
    d.input(|at| Input::Dtmf { at, digit: '5' });
    assert!(escalations(&d).is_empty());
    d.input(|at| Input::Dtmf { at, digit: '0' });
    assert_eq!(escalations(&d).len(), 1);
    let goodbye = d
        .says()
        .into_iter()
        .find(|s| s.1 == Purpose::Goodbye)
        .expect("goodbye");
    assert!(goodbye
        .2
        .starts_with("A member of our team will call you back shortly."));
    d.wait(10_000);
    assert_eq!(d.hangups()[0].1, EndReason::EscalatedCallback);
    assert!(d
        .find(|o| matches!(o, Output::Transfer).then_some(()))
        .is_empty());
}

#[test]
fn an_emergency_escalates_with_a_summary() {
    let mut c = config();
    c.can_transfer = true;
    let mut d = after_greeting(c);
    let mut e = extraction("plumbing", "water pouring through the ceiling", 0.9);
    e.urgency = Some(Urgency::Emergency);
    e.location = Some("42 Oak Street".into());
    d.extractor = fixed(200, e);
    d.caller_turn("water is pouring through my ceiling at 42 Oak Street");
    d.wait(500);
    let esc = escalations(&d);
    assert_eq!(esc.len(), 1);
    assert_eq!(esc[0].1 .0, EscalationReason::Emergency);
    assert!(esc[0].1 .1.contains("Location: 42 Oak Street."));
    assert!(esc[0].1 .1.contains("Urgency: emergency."));
    let saves = d.find(|o| matches!(o, Output::SaveTask { .. }).then_some(()));
    assert_eq!(saves.len(), 1);
    assert!(saves[0].0 <= esc[0].0);
    let announce = d.says().into_iter().find(|s| s.1 == Purpose::Escalation);
    assert_eq!(
        announce.map(|s| s.2).as_deref(),
        Some("I'm connecting you with a member of our team now.")
    );
}

#[test]
fn asking_for_a_person_or_two_unsure_turns_escalate() {
    let mut d = after_greeting(config());
    d.extractor = fixed(
        100,
        Extraction {
            wants_human: true,
            ..Default::default()
        },
    );
    d.caller_turn("can I speak to a person");
    d.wait(300);
    assert_eq!(escalations(&d)[0].1 .0, EscalationReason::CallerAsked);

    let mut d = after_greeting(config());
    d.extractor = fixed(100, extraction("general_inquiry", "something", 0.3));
    d.caller_turn("well it is sort of a thing");
    d.until_quiet();
    assert!(escalations(&d).is_empty(), "one unsure turn is not enough");
    d.caller_turn("you know the thing");
    d.wait(300);
    assert_eq!(escalations(&d)[0].1 .0, EscalationReason::LowConfidence);
}

#[test]
fn a_failed_transfer_takes_a_message_and_says_goodbye() {
    let mut c = config();
    c.can_transfer = true;
    let mut d = after_greeting(c);
    d.transfer_ok = Some(false);
    d.extractor = fixed(100, Extraction::default());
    d.input(|at| Input::Dtmf { at, digit: '0' });
    d.wait(6000);
    let last = d.says().pop().expect("said something");
    assert!(
        last.2.contains("anything you'd like me to pass on"),
        "{last:?}"
    );
    d.caller_turn("please tell them the gate code is 1234");
    d.wait(8000);
    assert_eq!(d.hangups()[0].1, EndReason::EscalatedCallback);
    let bye = d
        .says()
        .into_iter()
        .find(|s| s.1 == Purpose::Goodbye)
        .expect("goodbye");
    assert!(bye.2.starts_with("Thank you, I'll pass that on."));
}

#[test]
fn when_speech_recognition_is_gone_the_caller_leaves_a_voice_message() {
    let mut d = after_greeting(config());
    // The session's chain reports an error only once every engine failed.
    let err = ProviderError::retryable("offline", "model not loaded");
    d.stt(SttEvent::Error(err.clone()));
    d.stt(SttEvent::Error(err));
    assert_eq!(d.events("stt_error").len(), 2);
    assert_eq!(d.events("voice_message").len(), 1, "entered once");
    let prompt: Vec<_> = d
        .says()
        .into_iter()
        .filter(|s| s.2.contains("leave your name"))
        .collect();
    assert_eq!(prompt.len(), 1);
    let order: Vec<&str> = d
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::SaveTask { .. } => Some("save"),
            Output::RecordMessage => Some("record"),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        ["save", "record"],
        "the task exists before recording starts"
    );
    // The caller talks for 20 s, well past the normal turn and re-prompt
    // timers: no re-prompt, no hang-up while they speak.
    d.wait(2000);
    d.frames(20_000, true);
    assert!(d.hangups().is_empty());
    assert!(d.events("reprompt").is_empty());
    // Silence after the message ends the call with thanks.
    d.frames(7_000, false);
    d.wait(4000);
    assert_eq!(d.hangups()[0].1, EndReason::MessageTaken);
    let bye = d
        .says()
        .into_iter()
        .find(|s| s.1 == Purpose::Goodbye)
        .expect("goodbye");
    assert!(bye.2.contains("we have your message"), "{bye:?}");
}

#[test]
fn failed_speech_moves_on_and_inputs_after_hangup_are_ignored() {
    let mut d = Driver::new(config());
    d.auto_play = false;
    let greeting = d.current_say().expect("greeting");
    d.input(|at| Input::SpeechFailed {
        at,
        utterance: greeting,
        error: ProviderError::fatal("flite", "voice missing"),
    });
    assert_eq!(d.events("speech_failed").len(), 1);
    d.wait(6000);
    assert_eq!(
        d.events("reprompt").len(),
        1,
        "the greeting counted as played"
    );
    d.input(|at| Input::CallerHungUp { at });
    assert_eq!(d.hangups()[0].1, EndReason::CallerHungUp);
    let before = d.log.len();
    d.input(|at| Input::Dtmf { at, digit: '0' });
    d.frames(1000, true);
    d.final_text("hello?", true);
    d.wait(60_000);
    assert_eq!(d.log.len(), before, "nothing after the hang-up");
}

/// A scripted extractor: what the rules engine would find in each answer.
fn scripted(conv: &Conversation) -> Result<Extraction, ProviderError> {
    let last = conv.last_caller_text().unwrap_or_default();
    let mut e = Extraction::default();
    if last.contains("sink") {
        e = extraction("plumbing", "kitchen sink is leaking", 0.9);
    } else if last.contains("Oak") {
        e.location = Some("42 Oak Street".into());
    } else if last.contains("tomorrow") {
        e.requested_time = Some("tomorrow morning".into());
    } else if last.contains("name") {
        e.caller_name = Some("Ann Lee".into());
    }
    Ok(e)
}

#[test]
fn happy_path_reads_back_the_reference() {
    let mut d = after_greeting(config());
    d.extractor = Some((Duration::from_millis(150), Box::new(scripted)));
    let turns = [
        ("My kitchen sink is leaking", "What is the address where you need the service?"),
        ("42 Oak Street", "When would you like someone to come out?"),
        ("tomorrow morning please", "May I have your name, please?"),
        ("my name is Ann Lee", "Is 5 5 5, 1 2 3, 4 5 6 7 the best number to reach you?"),
        ("yes", "Let me confirm your plumbing request about kitchen sink is leaking, at 42 Oak Street, tomorrow morning, for Ann Lee, reachable at 5 5 5, 1 2 3, 4 5 6 7. Is that right?"),
        ("yes that's right", "Thank you. Your reference is T 1 0 4 2. Is there anything else I can help with?"),
        ("no thanks", "Thank you for calling Acme Plumbing. Goodbye."),
    ];
    for (caller, expected) in turns {
        d.caller_turn(caller);
        d.wait(400);
        let last = d.says().pop().expect("a reply");
        assert!(last.2.ends_with(expected), "after {caller:?}: {:?}", last.2);
        d.until_quiet();
    }
    assert_eq!(
        d.hangups().iter().map(|h| h.1).collect::<Vec<_>>(),
        vec![EndReason::Completed]
    );
    let saves = d.find(|o| match o {
        Output::SaveTask { extraction } => Some(extraction.clone()),
        _ => None,
    });
    // Created at the first useful turn, updated each time something was added.
    assert_eq!(saves.len(), 5, "{saves:?}");
    let last = &saves.last().expect("saved").1;
    assert_eq!(last.callback_number.as_deref(), Some("+15551234567"));
    assert_eq!(last.caller_name.as_deref(), Some("Ann Lee"));
    assert_eq!(d.call.task_reference(), Some("T-1042"));
    let caller_lines = d.find(|o| match o {
        Output::Transcript {
            speaker: Speaker::Caller,
            text,
            ..
        } => Some(text.clone()),
        _ => None,
    });
    assert_eq!(caller_lines.len(), 7);
    assert!(d.events("turn_end").len() == 7 && d.events("filler").is_empty());
}

#[test]
fn a_dialogue_model_reply_is_preferred() {
    let mut d = after_greeting(config());
    let mut e = extraction("plumbing", "leak", 0.9);
    e.reply = Some("Oh no, a leak! Where are you located?".into());
    d.extractor = fixed(100, e);
    d.caller_turn("I have a leak");
    d.wait(300);
    assert_eq!(
        d.says().pop().map(|s| s.2).as_deref(),
        Some("Oh no, a leak! Where are you located?")
    );
    assert_eq!(
        d.call.extraction().reply,
        None,
        "the reply is not a stored detail"
    );
}

#[test]
fn an_inbound_call_uses_the_server_config_and_stamps_wall_time() {
    let server = switchboard::config::Config::defaults();
    let start = chrono::Utc::now();
    let c = CallConfig::inbound(&server, Some("+15551234567".into()), true, start);
    assert!(c.can_transfer);
    let mut d = after_greeting(c);
    assert!(d.says()[0].2.contains(&server.business.name));
    d.caller_turn("my sink is leaking");
    let (at, _, conv) = d.extract_requests().pop().expect("extraction asked");
    let elapsed = conv.now.expect("wall time") - start;
    assert_eq!(elapsed.num_milliseconds() as u64, at);
}

#[test]
fn an_outbound_callback_opens_with_its_context() {
    let mut c = config();
    c.opening = Some("your plumbing request T-1042".into());
    let d = Driver::new(c);
    assert_eq!(
        d.says()[0].2,
        "Hello, this is Acme Plumbing calling you back about your plumbing request T-1042. How can I help?"
    );
}
