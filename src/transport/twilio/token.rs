//! The per-call media token. The voice webhook (already signature-checked)
//! issues it for one CallSid and puts it in a `<Parameter>` of the
//! `<Connect><Stream>`; Twilio echoes it in `start.customParameters`, and the
//! media socket refuses to process any audio unless it is valid for that
//! CallSid and not expired. Format: `EXPIRY.MAC` where EXPIRY is Unix seconds
//! and MAC is base64url(HMAC-SHA256(key, CallSid "." EXPIRY)). Pure: the
//! caller passes the current time in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;

/// Name of the `<Parameter>` that carries the token.
pub const PARAM: &str = "token";

/// How long a token stays valid: the stream starts seconds after the webhook.
pub const LIFETIME_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no media token")]
    Missing,
    #[error("malformed media token")]
    Malformed,
    #[error("media token expired")]
    Expired,
    #[error("media token does not match the call")]
    BadSignature,
}

/// The server secret tokens are signed with.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

impl TokenKey {
    pub fn new(bytes: [u8; 32]) -> TokenKey {
        TokenKey(bytes)
    }

    /// Derives the key from the configuration's secrets (the Twilio auth token
    /// and the database URL), so every node of one deployment agrees on it
    /// without another setting. Without an auth token the webhook is unsigned
    /// anyway and the token only binds the stream to a webhook-issued CallSid.
    pub fn derive(config: &Config) -> TokenKey {
        let mut h = Sha256::new();
        h.update(b"switchboard media token v1\0");
        if let Some(t) = &config.twilio.auth_token {
            h.update(t.expose().as_bytes());
        }
        h.update(b"\0");
        h.update(config.database_url.expose().as_bytes());
        TokenKey(h.finalize().into())
    }

    fn mac(&self, call_sid: &str, expiry: u64) -> [u8; 32] {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(call_sid.as_bytes());
        mac.update(b".");
        mac.update(expiry.to_string().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A token for `call_sid` valid until `now_unix + LIFETIME_SECS`.
    pub fn issue(&self, call_sid: &str, now_unix: u64) -> String {
        let expiry = now_unix + LIFETIME_SECS;
        format!("{expiry}.{}", B64URL.encode(self.mac(call_sid, expiry)))
    }

    /// Checks a token against the CallSid the stream announced.
    pub fn check(
        &self,
        token: Option<&str>,
        call_sid: &str,
        now_unix: u64,
    ) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let (expiry, mac) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        let mac = B64URL.decode(mac).map_err(|_| TokenError::Malformed)?;
        let good: bool = self.mac(call_sid, expiry).ct_eq(mac.as_slice()).into();
        if !good {
            return Err(TokenError::BadSignature);
        }
        if now_unix > expiry {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn issued_token_checks_for_its_call_only() {
        let key = TokenKey::new([7; 32]);
        let t = key.issue("CA1", NOW);
        assert_eq!(key.check(Some(&t), "CA1", NOW), Ok(()));
        assert_eq!(key.check(Some(&t), "CA1", NOW + LIFETIME_SECS), Ok(()));
        assert_eq!(
            key.check(Some(&t), "CA2", NOW),
            Err(TokenError::BadSignature)
        );
        let other = TokenKey::new([8; 32]);
        assert_eq!(
            other.check(Some(&t), "CA1", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expired_missing_and_malformed_tokens_fail() {
        let key = TokenKey::new([7; 32]);
        let t = key.issue("CA1", NOW);
        assert_eq!(
            key.check(Some(&t), "CA1", NOW + LIFETIME_SECS + 1),
            Err(TokenError::Expired)
        );
        assert_eq!(key.check(None, "CA1", NOW), Err(TokenError::Missing));
        assert_eq!(
            key.check(Some("garbage"), "CA1", NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            key.check(Some("12.!!"), "CA1", NOW),
            Err(TokenError::Malformed)
        );
        // Moving the expiry forward invalidates the MAC.
        let (_, mac) = t.split_once('.').unwrap();
        let forged = format!("{}.{mac}", NOW + 10_000);
        assert_eq!(
            key.check(Some(&forged), "CA1", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn derived_key_depends_on_secrets() {
        let a = Config::defaults();
        let mut b = Config::defaults();
        b.twilio.auth_token = Some(crate::config::Secret::new("other"));
        let t = TokenKey::derive(&a).issue("CA1", NOW);
        assert!(TokenKey::derive(&a).check(Some(&t), "CA1", NOW).is_ok());
        assert!(TokenKey::derive(&b).check(Some(&t), "CA1", NOW).is_err());
        assert!(!format!("{:?}", TokenKey::derive(&a)).contains('7'));
    }
}
