//! HTTP Digest authentication for SIP (RFC 2617, RFC 7616 with SHA-256, as
//! RFC 8760 brings it to SIP): parse a `WWW-Authenticate`/`Proxy-Authenticate`
//! challenge and compute the matching `Authorization` value. Pure.

use md5::Md5;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `auth` was offered (we never use `auth-int`).
    pub qop_auth: bool,
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not a Digest challenge")]
    NotDigest,
    #[error("challenge lacks {0}")]
    Missing(&'static str),
    #[error("unsupported digest algorithm {0}")]
    Algorithm(String),
}

/// Splits `k=v, k="v, with comma"` pairs.
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(stripped) = rest.strip_prefix('"') {
            let end = stripped.find('"').unwrap_or(stripped.len());
            value = stripped[..end].to_string();
            rest = stripped.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.push((key, value));
    }
    out
}

impl Challenge {
    pub fn parse(header: &str) -> Result<Challenge, DigestError> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(char::is_whitespace)
            .ok_or(DigestError::NotDigest)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let p = params(rest);
        let get = |k: &str| p.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm")
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("MD5") => Algorithm::Md5,
            Some("SHA-256") => Algorithm::Sha256,
            Some(other) => return Err(DigestError::Algorithm(other.to_string())),
        };
        Ok(Challenge {
            realm: get("realm").ok_or(DigestError::Missing("realm"))?,
            nonce: get("nonce").ok_or(DigestError::Missing("nonce"))?,
            opaque: get("opaque"),
            algorithm,
            qop_auth: get("qop")
                .is_some_and(|q| q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth"))),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `Authorization` header value for `method` on `uri`.
    pub fn authorize(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let h = |s: String| -> String {
            match self.algorithm {
                Algorithm::Md5 => hex::encode(Md5::digest(s.as_bytes())),
                Algorithm::Sha256 => hex::encode(Sha256::digest(s.as_bytes())),
            }
        };
        let ha1 = h(format!("{user}:{}:{password}", self.realm));
        let ha2 = h(format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = if self.qop_auth {
            h(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            h(format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let alg = match self.algorithm {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        };
        let mut v = format!("Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={alg}", self.realm, self.nonce);
        if self.qop_auth {
            v.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's worked example (HTTP, MD5, qop=auth).
    #[test]
    fn rfc2617_example() {
        let c = Challenge::parse(r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#).unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert!(c.qop_auth);
        let v = c.authorize(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            v.contains(r#"response="6629fae49393a05397450978507c4ef1""#),
            "{v}"
        );
        assert!(
            v.contains("nc=00000001") && v.contains(r#"opaque="5ccc069c403ebaf9f0171e9517f40e41""#)
        );
    }

    /// RFC 7616 §3.9.1's example with SHA-256.
    #[test]
    fn rfc7616_sha256_example() {
        let c = Challenge::parse(r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let v = c.authorize(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert!(
            v.contains(
                r#"response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#
            ),
            "{v}"
        );
    }

    #[test]
    fn bad_challenges_are_refused() {
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"x\""),
            Err(DigestError::Missing("nonce"))
        );
        assert!(matches!(
            Challenge::parse("Digest realm=\"x\", nonce=\"y\", algorithm=SHA-512-256"),
            Err(DigestError::Algorithm(_))
        ));
        let c = Challenge::parse("Digest realm=\"x\", nonce=\"y\", stale=TRUE").unwrap();
        assert!(c.stale && !c.qop_auth);
    }
}
