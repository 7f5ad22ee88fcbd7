//! `X-Twilio-Signature`: Twilio signs each request it makes (webhooks and the
//! Media Streams WebSocket handshake) with HMAC-SHA1 keyed by the account's
//! auth token over the full URL it called followed by every POST parameter,
//! sorted by name, as name then value with no separators; the digest is
//! base64-encoded. A handshake has no POST parameters, so it signs the URL
//! alone. Pure functions; comparison is constant-time.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The HTTP header Twilio puts the signature in.
pub const HEADER: &str = "x-twilio-signature";

/// The signature Twilio would send for a request to `url` with these POST parameters.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Repeated names keep a deterministic order by value as well.
    sorted.sort();
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    B64.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's for this request. A missing or empty
/// signature never verifies.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    if signature.is_empty() {
        return false;
    }
    let expected = compute(auth_token, url, params);
    expected
        .as_bytes()
        .ct_eq(signature.trim().as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Twilio's documented example request and its signature.
    fn documented() -> (&'static str, &'static str, Vec<(String, String)>) {
        (
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            p(&[
                ("CallSid", "CA1234567890ABCDE"),
                ("Caller", "+14158675309"),
                ("Digits", "1234"),
                ("From", "+14158675309"),
                ("To", "+18005551212"),
            ]),
        )
    }

    #[test]
    fn matches_twilio_documented_example() {
        let (token, url, params) = documented();
        assert_eq!(compute(token, url, &params), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify(token, url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn order_of_parameters_does_not_matter() {
        let (token, url, mut params) = documented();
        params.reverse();
        assert!(verify(token, url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let (token, url, params) = documented();
        let sig = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(!verify("54321", url, &params, sig));
        assert!(!verify(
            token,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            sig
        ));
        let mut changed = params.clone();
        changed[2].1 = "1235".into();
        assert!(!verify(token, url, &changed, sig));
        assert!(!verify(token, url, &params[..4], sig));
        assert!(!verify(token, url, &params, ""));
        assert!(!verify(token, url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8"));
    }

    #[test]
    fn handshake_signs_the_url_alone() {
        let sig = compute("secret", "wss://example.com/twilio/media", &[]);
        assert!(verify(
            "secret",
            "wss://example.com/twilio/media",
            &[],
            &sig
        ));
        assert!(!verify(
            "secret",
            "wss://example.com/twilio/other",
            &[],
            &sig
        ));
    }
}
