//! Server-sent events from the bus: event name = `Event::kind()`, data = the
//! event as JSON, a keep-alive comment every 15 s. The stream subscribes when
//! the response is built (so nothing published after that is missed) and
//! ends at shutdown so graceful draining completes. The dashboard's live
//! page reuses [`event_stream`].

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::AppState;
use crate::events::Event;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn event_stream(
    state: &AppState,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static> {
    let rx = state.bus().subscribe();
    let stop = state.shutdown().clone().cancelled_owned();
    let stream = BroadcastStream::new(rx)
        .map(|item| Ok(to_sse(item)))
        .take_until(stop);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

fn to_sse(item: Result<Event, BroadcastStreamRecvError>) -> SseEvent {
    match item {
        Ok(ev) => {
            let data = serde_json::to_string(&ev).unwrap_or_else(|_| "{}".to_string());
            SseEvent::default().event(ev.kind()).data(data)
        }
        // A slow client missed events: tell it so it can reload instead of showing stale data.
        Err(BroadcastStreamRecvError::Lagged(n)) => SseEvent::default()
            .event("lagged")
            .data(format!("{{\"missed\":{n}}}")),
    }
}
