//! Throw-away stores for tests: a SQLite file in a temporary directory, or a
//! fresh PostgreSQL schema. PostgreSQL comes from `TEST_POSTGRES_URL`, else
//! `DATABASE_URL`, else the local default; an unreachable server is an error,
//! never a silent skip.

use super::{Result, Store};
use crate::events::Bus;

/// The PostgreSQL server tests use.
pub fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A migrated SQLite store in its own directory (kept alive by the returned guard).
pub async fn sqlite() -> Result<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().map_err(|e| super::StoreError::Invalid(e.to_string()))?;
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    Ok((Store::open(&url, Bus::new(), "test-node").await?, dir))
}

/// A migrated PostgreSQL store in a schema of its own.
pub async fn postgres() -> Result<Store> {
    let url = postgres_schema_url().await?;
    Store::open(&url, Bus::new(), "test-node").await
}

/// The URL of a fresh, empty PostgreSQL schema, for tests that open several
/// stores (nodes) on one database.
pub async fn postgres_schema_url() -> Result<String> {
    let base = postgres_url();
    let schema = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Store::connect(&base, Bus::new(), "test-node").await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin.pool)
        .await?;
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}
