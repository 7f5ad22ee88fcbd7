//! The only module that writes SQL. [`Store`] speaks to SQLite (the embedded
//! default, WAL) or PostgreSQL through sqlx's `Any` driver with `$n`
//! placeholders that both accept; each backend has its own migrations.
//! Times are stored as Unix milliseconds. Every task change writes a
//! `task_events` row in the same transaction and is published on the bus.

mod calls;
mod latency;
mod outbox;
mod tasks;
#[doc(hidden)]
pub mod testkit;
mod types;
mod users;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use latency::{LatencySummary, Percentiles, TurnLatency};
pub use outbox::{OutboxMessage, OutboxStatus, OutboxTotals};
pub use types::*;
pub use users::SessionRecord;

use crate::events::{Bus, Event};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (illegal move, duplicate).
    #[error("{0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Turns a unique-constraint violation into a conflict with `what` as the message.
    fn on_unique(err: sqlx::Error, what: impl Into<String>) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(what.into())
            }
            _ => StoreError::Db(err),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Cheap to clone: a pool handle, the backend kind, the bus, and this node's name.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    bus: Bus,
    node: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("node", &self.node)
            .finish()
    }
}

impl Store {
    /// Connects (creating a SQLite file if missing) without migrating.
    pub async fn connect(url: &str, bus: Bus, node: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let sep = if rest.contains('?') { '&' } else { '?' };
            let url = if rest.contains("mode=") {
                url.to_string()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Invalid(
                "database URL must start with sqlite: or postgres://".into(),
            ));
        };
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite && memory {
                1
            } else {
                8
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Store {
            pool,
            backend,
            bus,
            node: node.to_string(),
        })
    }

    /// Connects and applies the backend's migrations.
    pub async fn open(url: &str, bus: Bus, node: &str) -> Result<Store> {
        let store = Store::connect(url, bus, node).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// A trivial round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn publish(&self, event: Event) {
        self.bus.publish(event);
    }
}

pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn opt_from_ms(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_ms)
}

/// Parses a text column into an enum, reporting a corrupt row instead of panicking.
pub(crate) fn parse_col<T: FromStr>(row: &AnyRow, col: &str) -> Result<T> {
    let text: String = row.try_get(col)?;
    text.parse::<T>().map_err(|_| {
        StoreError::Db(sqlx::Error::Decode(
            format!("bad value `{text}` in column {col}").into(),
        ))
    })
}
