//! The speech-to-text engine used when no real one could be loaded (for
//! example the offline model has not been fetched yet): every stream fails at
//! once with the reason, so a call degrades (DTMF, a message) instead of
//! the server refusing to start.

use super::super::{ProviderError, SttProvider, SttStream};

#[derive(Debug, Clone)]
pub struct UnavailableStt {
    pub reason: String,
}

impl SttProvider for UnavailableStt {
    fn name(&self) -> &'static str {
        "unavailable"
    }

    fn open(&self) -> Result<SttStream, ProviderError> {
        Err(ProviderError::fatal("stt", self.reason.clone()))
    }
}
