//! Shared state of the web layer: a cheap clone over `Arc`.

use std::sync::Arc;

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
}

impl AppState {
    pub fn new(config: Config, store: Store) -> AppState {
        let bus = store.bus().clone();
        AppState {
            inner: Arc::new(Shared { config, store, bus }),
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
}
