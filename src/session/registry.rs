//! The live calls of this node: what the dashboard lists, what a carrier's
//! status callback can end, and what shutdown drains. A [`Semaphore`] caps
//! concurrent calls across all transports (`call.max_concurrent`). A
//! transport that must refuse a call before answering it (SIP: 503 to the
//! INVITE) takes the slot itself and hands it over with the leg as an
//! [`AdmittedLeg`], so the call is counted once from offer to end. Cheap to
//! clone; no lock is held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::store::Transport;
use crate::transport::{CallLeg, LegInfo};

/// One call in progress, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveCall {
    pub transport: Transport,
    pub external_id: String,
    pub from: String,
    pub to: String,
    pub started_at: DateTime<Utc>,
    /// The call row, once created.
    pub call_id: Option<i64>,
}

struct Entry {
    call: LiveCall,
    /// Cancelled when the carrier reports the call over or on shutdown.
    stop: CancellationToken,
}

struct Inner {
    calls: Mutex<HashMap<u64, Entry>>,
    permits: Arc<Semaphore>,
    capacity: usize,
    next: AtomicU64,
    shutdown: CancellationToken,
    /// The number of live calls, for waiting until it reaches zero.
    count: watch::Sender<usize>,
}

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("live", &self.len())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

/// A call's place in the registry; leaving it (drop) frees the slot.
pub struct Admission {
    registry: Registry,
    id: u64,
    _permit: OwnedSemaphorePermit,
    stop: CancellationToken,
}

/// A leg whose slot its transport took when the carrier offered the call.
#[derive(Debug)]
pub struct AdmittedLeg {
    pub leg: CallLeg,
    pub admission: Admission,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("id", &self.id).finish()
    }
}

impl Admission {
    /// Cancelled when the call must end from outside (carrier end, shutdown).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Records the call row's id once created.
    pub fn set_call_id(&self, call_id: i64) {
        if let Ok(mut calls) = self.registry.inner.calls.lock() {
            if let Some(e) = calls.get_mut(&self.id) {
                e.call.call_id = Some(call_id);
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.registry.inner.calls.lock() {
            calls.remove(&self.id);
            self.registry.inner.count.send_replace(calls.len());
        }
    }
}

impl Registry {
    pub fn new(max_concurrent: usize) -> Registry {
        let capacity = max_concurrent.max(1);
        Registry {
            inner: Arc::new(Inner {
                calls: Mutex::new(HashMap::new()),
                permits: Arc::new(Semaphore::new(capacity)),
                capacity,
                next: AtomicU64::new(1),
                shutdown: CancellationToken::new(),
                count: watch::channel(0).0,
            }),
        }
    }

    /// Takes a slot for a new call, or `None` at the limit or after shutdown.
    pub fn try_admit(&self, info: &LegInfo) -> Option<Admission> {
        if self.inner.shutdown.is_cancelled() {
            return None;
        }
        let permit = self.inner.permits.clone().try_acquire_owned().ok()?;
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let stop = self.inner.shutdown.child_token();
        let entry = Entry {
            call: LiveCall {
                transport: info.transport,
                external_id: info.external_id.clone(),
                from: info.from.clone(),
                to: info.to.clone(),
                started_at: Utc::now(),
                call_id: None,
            },
            stop: stop.clone(),
        };
        let mut calls = self.inner.calls.lock().ok()?;
        calls.insert(id, entry);
        self.inner.count.send_replace(calls.len());
        drop(calls);
        Some(Admission {
            registry: self.clone(),
            id,
            _permit: permit,
            stop,
        })
    }

    pub fn has_capacity(&self) -> bool {
        !self.inner.shutdown.is_cancelled() && self.inner.permits.available_permits() > 0
    }

    pub fn len(&self) -> usize {
        self.inner.calls.lock().map(|c| c.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live calls, oldest first.
    pub fn list(&self) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self
            .inner
            .calls
            .lock()
            .map(|c| c.values().map(|e| e.call.clone()).collect())
            .unwrap_or_default();
        calls.sort_by_key(|c| c.started_at);
        calls
    }

    /// Ends the live call with this carrier id, if it is here.
    pub fn end_external(&self, external_id: &str) -> bool {
        let Ok(calls) = self.inner.calls.lock() else {
            return false;
        };
        let mut found = false;
        for e in calls.values().filter(|e| e.call.external_id == external_id) {
            e.stop.cancel();
            found = true;
        }
        found
    }

    /// Refuses new calls and asks every live call to end.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Resolves when no call is live.
    pub async fn drained(&self) {
        let mut rx = self.inner.count.subscribe();
        // The sender lives as long as `self`, so this only ends at zero.
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> LegInfo {
        LegInfo {
            transport: Transport::Twilio,
            external_id: id.into(),
            from: "+1".into(),
            to: "+2".into(),
            params: Default::default(),
            can_transfer: false,
        }
    }

    #[test]
    fn admission_is_capped_and_freed_on_drop() {
        let r = Registry::new(2);
        let a = r.try_admit(&info("CA1")).unwrap();
        let b = r.try_admit(&info("CA2")).unwrap();
        assert!(!r.has_capacity());
        assert!(r.try_admit(&info("CA3")).is_none());
        assert_eq!(r.len(), 2);
        b.set_call_id(7);
        assert!(r.list().iter().any(|c| c.call_id == Some(7)));
        drop(b);
        assert!(r.has_capacity());
        assert_eq!(r.list().len(), 1);
        drop(a);
        assert!(r.is_empty());
    }

    #[test]
    fn carrier_end_cancels_only_that_call() {
        let r = Registry::new(4);
        let a = r.try_admit(&info("CA1")).unwrap();
        let b = r.try_admit(&info("CA2")).unwrap();
        assert!(r.end_external("CA2"));
        assert!(!r.end_external("CA9"));
        assert!(!a.stop_token().is_cancelled());
        assert!(b.stop_token().is_cancelled());
    }

    #[tokio::test]
    async fn shutdown_stops_calls_refuses_new_ones_and_drains() {
        let r = Registry::new(4);
        let a = r.try_admit(&info("CA1")).unwrap();
        let stop = a.stop_token();
        let waiter = tokio::spawn({
            let r = r.clone();
            async move { r.drained().await }
        });
        r.shutdown();
        assert!(stop.is_cancelled());
        assert!(r.try_admit(&info("CA2")).is_none());
        assert!(!waiter.is_finished());
        drop(a);
        waiter.await.unwrap();
    }
}
