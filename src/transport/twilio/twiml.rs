//! The few TwiML documents Switchboard returns or sends, built as text with
//! every attribute and body escaped. Pure.

/// Escapes text for an XML attribute value or element body.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 text.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `<Connect><Stream>` to `stream_url` (a bidirectional Media Stream) with
/// one `<Parameter>` per pair; Twilio echoes them in `start.customParameters`.
pub fn connect_stream(stream_url: &str, params: &[(&str, &str)]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>");
    xml.push_str(&format!("<Stream url=\"{}\">", escape(stream_url)));
    for (name, value) in params {
        xml.push_str(&format!(
            "<Parameter name=\"{}\" value=\"{}\"/>",
            escape(name),
            escape(value)
        ));
    }
    xml.push_str("</Stream></Connect></Response>");
    xml
}

/// Hands the live call to `number`: replaces the running TwiML (and so ends
/// the media stream) with a `<Dial>`.
pub fn dial(number: &str) -> String {
    format!("<Response><Dial>{}</Dial></Response>", escape(number))
}

/// A spoken apology for when the service cannot take the call.
pub fn say_and_hang_up(text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{}</Say><Hangup/></Response>",
        escape(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_stream_escapes_and_lists_parameters() {
        let xml = connect_stream(
            "wss://example.com/twilio/media",
            &[("token", "1.a&b"), ("From", "+1555<>\"")],
        );
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>\
             <Stream url=\"wss://example.com/twilio/media\">\
             <Parameter name=\"token\" value=\"1.a&amp;b\"/>\
             <Parameter name=\"From\" value=\"+1555&lt;&gt;&quot;\"/>\
             </Stream></Connect></Response>"
        );
    }

    #[test]
    fn dial_escapes_the_number() {
        assert_eq!(
            dial("+15551234567"),
            "<Response><Dial>+15551234567</Dial></Response>"
        );
        assert_eq!(dial("a<b"), "<Response><Dial>a&lt;b</Dial></Response>");
        assert!(!escape("x\u{1}y").contains('\u{1}'));
    }
}
