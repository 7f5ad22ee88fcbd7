//! Placing calls: the handle the API holds ([`SipDialer`]) and the request it
//! sends the SIP server, plus the pure parsing of a `sip:` target. The server
//! admits the call, binds its RTP port, sends the INVITE (through the
//! registrar when one is configured) and answers with the Call-ID at once;
//! the answered call reaches the session like an inbound one, carrying the
//! task it calls back about in its leg's `callback_task` parameter.

use std::net::{IpAddr, SocketAddr};

use tokio::sync::{mpsc, oneshot};

/// The leg parameter naming the task an outbound call is about.
pub const CALLBACK_TASK: &str = "callback_task";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("`{0}` is not a SIP URI we can call: {1}")]
    BadTarget(String, &'static str),
    #[error("at the concurrent call limit")]
    AtCapacity,
    #[error("no RTP port for the call: {0}")]
    NoMediaPort(String),
    #[error("the SIP server is not running")]
    Stopped,
}

/// One call to place.
#[derive(Debug)]
pub struct DialRequest {
    pub target: Target,
    /// The task reference the call is about.
    pub task: String,
    /// Answered with the Call-ID once the INVITE is out.
    pub reply: oneshot::Sender<Result<String, DialError>>,
}

/// Where a `sip:` URI says to send the INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URI as the Request-URI (`sip:bob@192.0.2.9:5080`).
    pub uri: String,
    pub user: String,
    /// The host as an address; names are not resolved (no DNS here).
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `sip:user@host[:port]` with an IP literal host (5060 by default).
    pub fn parse(uri: &str) -> Result<Target, DialError> {
        let bad = |why| DialError::BadTarget(uri.to_string(), why);
        let rest = uri
            .strip_prefix("sip:")
            .ok_or_else(|| bad("only sip: URIs can be called"))?;
        let rest = rest.split([';', '?']).next().unwrap_or(rest);
        let (user, hostport) = rest.rsplit_once('@').ok_or_else(|| bad("no user@ part"))?;
        if user.is_empty() || user.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
            return Err(bad("empty or malformed user part"));
        }
        let addr = match hostport.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => SocketAddr::new(
                hostport
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .map_err(|_| bad("the host must be an IP address"))?,
                5060,
            ),
        };
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(bad("unusable address"));
        }
        Ok(Target {
            uri: format!("sip:{rest}"),
            user: user.to_string(),
            addr,
        })
    }
}

/// The API's handle on the SIP server for placing calls; cheap to clone.
#[derive(Debug, Clone)]
pub struct SipDialer {
    tx: mpsc::Sender<DialRequest>,
}

impl SipDialer {
    /// A dialer and the receiving end the SIP server serves.
    pub fn channel() -> (SipDialer, mpsc::Receiver<DialRequest>) {
        let (tx, rx) = mpsc::channel(16);
        (SipDialer { tx }, rx)
    }

    /// Places a call to `target` about `task`; returns its Call-ID.
    pub async fn dial(&self, target: Target, task: &str) -> Result<String, DialError> {
        let (reply, answer) = oneshot::channel();
        let request = DialRequest {
            target,
            task: task.to_string(),
            reply,
        };
        self.tx
            .send(request)
            .await
            .map_err(|_| DialError::Stopped)?;
        answer.await.map_err(|_| DialError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_need_a_user_and_an_ip_host() {
        let t = Target::parse("sip:+15550001111@192.0.2.9:5080;transport=udp").unwrap();
        assert_eq!(t.uri, "sip:+15550001111@192.0.2.9:5080");
        assert_eq!(t.user, "+15550001111");
        assert_eq!(t.addr, "192.0.2.9:5080".parse().unwrap());
        assert_eq!(
            Target::parse("sip:bob@10.0.0.1").unwrap().addr,
            "10.0.0.1:5060".parse().unwrap()
        );
        for bad in [
            "tel:+15550001111",
            "sip:192.0.2.9",
            "sip:@192.0.2.9",
            "sip:bob@pbx.example.com",
            "sip:bob@0.0.0.0:5060",
            "bob@192.0.2.9",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(DialError::BadTarget(..))),
                "{bad}"
            );
        }
    }
}
