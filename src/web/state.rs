//! Shared state of the web layer: a cheap clone over `Arc<Shared>`. Holds the
//! config, the store, the event bus, the sign-in throttle, the metrics
//! registry and the shutdown token that ends long-lived responses (SSE).
//! No lock in here is ever held across an `.await`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::throttle::Throttle;
use crate::config::Config;
use crate::events::Bus;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

pub struct Shared {
    pub config: Config,
    pub store: Store,
    pub bus: Bus,
    pub throttle: Throttle,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(config: Config, store: Store) -> AppState {
        AppState::with_shutdown(config, store, CancellationToken::new())
    }

    /// State whose long-lived responses end when `shutdown` is cancelled.
    pub fn with_shutdown(config: Config, store: Store, shutdown: CancellationToken) -> AppState {
        let bus = store.bus().clone();
        AppState {
            inner: Arc::new(Shared {
                config,
                store,
                bus,
                throttle: Throttle::sign_in(),
                metrics: Metrics::new(),
                shutdown,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}
