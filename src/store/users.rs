//! Users, sign-in sessions and API tokens. Only hashes of session and API
//! tokens are stored; password hashing happens in `web::auth`.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{from_ms, to_ms, ApiToken, Result, Role, Store, StoreError, User};

fn user_from_row(row: &AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        role: Role::parse(&role).ok_or_else(|| {
            StoreError::Db(sqlx::Error::Decode(format!("bad role `{role}`").into()))
        })?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

/// A signed-in session: its user and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    pub async fn create_user(&self, email: &str, password_hash: &str, role: Role) -> Result<User> {
        let email = email.trim().to_lowercase();
        if !email.contains('@') && email != "admin" {
            return Err(StoreError::Invalid(format!(
                "`{email}` is not an e-mail address"
            )));
        }
        let row = sqlx::query("INSERT INTO users (email, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id, email, password_hash, role, created_at")
            .bind(&email)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(to_ms(Utc::now()))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::on_unique(e, format!("a user with e-mail {email} already exists")))?;
        user_from_row(&row)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT id, email, password_hash, role, created_at FROM users WHERE email = $1",
        )
        .bind(email.trim().to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT id, email, password_hash, role, created_at FROM users ORDER BY email",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    pub async fn set_user_role(&self, user_id: i64, role: Role) -> Result<()> {
        let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    pub async fn set_user_password(&self, user_id: i64, password_hash: &str) -> Result<()> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_user(&self, user_id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(to_ms(Utc::now()))
            .bind(to_ms(expires_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The live session with this token hash; expired ones are not returned.
    pub async fn session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.password_hash, u.role, u.created_at, s.csrf_token, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(to_ms(now))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(SessionRecord {
                user: user_from_row(&r)?,
                csrf_token: r.try_get("csrf_token")?,
                expires_at: from_ms(r.try_get("expires_at")?),
            })),
        }
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(to_ms(now))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub async fn create_api_token(&self, name: &str, token_hash: &str) -> Result<ApiToken> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a token needs a name".into()));
        }
        let row = sqlx::query("INSERT INTO api_tokens (name, token_hash, created_at) VALUES ($1, $2, $3) RETURNING id, name, created_at")
            .bind(name)
            .bind(token_hash)
            .bind(to_ms(Utc::now()))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::on_unique(e, "that token already exists"))?;
        Ok(ApiToken {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: from_ms(row.try_get("created_at")?),
        })
    }

    /// The token with this hash, marking it used.
    pub async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query("SELECT id, name, created_at FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get("id")?;
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(to_ms(Utc::now()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(Some(ApiToken {
            id,
            name: row.try_get("name")?,
            created_at: from_ms(row.try_get("created_at")?),
        }))
    }
}
