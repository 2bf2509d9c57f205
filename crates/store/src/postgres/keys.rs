//! API keys and the audit log in PostgreSQL (`api_keys`, `audit_log`; migrations/V3).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::connection::{self, DbError, migrate, timed};
use crate::StoreError;
use crate::keys::{
    AuditAction, AuditEntry, CreatedKey, KeyHash, KeyStore, Revoked, Scope, admin_entry, new_key,
};

/// The PostgreSQL [`KeyStore`]: a small pool of its own beside the report store's.
pub struct PgKeys {
    pool: Pool,
    op_timeout: Duration,
}

impl std::fmt::Debug for PgKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgKeys").finish_non_exhaustive()
    }
}

fn unavailable(e: DbError) -> StoreError {
    match e {
        DbError::Transient(m) => StoreError::Unavailable(m),
        DbError::Refused(m) => StoreError::Other(m),
    }
}

impl PgKeys {
    /// A pool to `url`; nothing is connected until the first call. The service opens it beside
    /// [`PgStore`](crate::PgStore), which applies the migrations (and keeps answering while
    /// the database is down: key lookups then fail as unavailable).
    pub fn new(url: &str, op_timeout: Duration) -> Result<PgKeys, StoreError> {
        let pg = connection::settings(url, op_timeout, "triagent-keys")?;
        let pool = connection::pool(pg, 2, op_timeout)?;
        Ok(PgKeys { pool, op_timeout })
    }

    /// Connects now and applies the migrations: for the `triagent keys` commands, which must
    /// fail at once, with the reason, when the database cannot be reached.
    pub async fn connect(url: &str, op_timeout: Duration) -> Result<PgKeys, StoreError> {
        let pg = connection::parse_url(url)?;
        migrate(&pg, op_timeout).await.map_err(unavailable)?;
        PgKeys::new(url, op_timeout)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        timed(self.op_timeout, async { Ok::<_, DbError>(self.pool.get().await?) })
            .await
            .map_err(unavailable)
    }
}

fn scopes_of(names: Vec<String>) -> Vec<Scope> {
    // A scope this version does not know (written by a newer one) grants nothing here.
    names.iter().filter_map(|s| s.parse().ok()).collect()
}

fn key_of(row: &tokio_postgres::Row) -> crate::keys::ApiKey {
    crate::keys::ApiKey {
        id: row.get(0),
        name: row.get(1),
        scopes: scopes_of(row.get(2)),
        created_at: row.get(3),
        revoked_at: row.get(4),
    }
}

const KEY_COLUMNS: &str = "id, name, scopes, created_at, revoked_at";

#[async_trait]
impl KeyStore for PgKeys {
    async fn create(&self, name: &str, scopes: &[Scope]) -> Result<CreatedKey, StoreError> {
        let (key, secret) = new_key(name, scopes)?;
        let mut client = self.client().await?;
        let entry = admin_entry(AuditAction::KeyCreated, &key);
        let hash = secret.hash();
        timed(self.op_timeout, async {
            let tx = client.transaction().await?;
            let names: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
            tx.execute("INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)", &[&key.id, &key.name, &hash.as_str(), &names, &key.created_at]).await?;
            tx.execute("INSERT INTO audit_log (at, api_key_id, action, detail) VALUES ($1, $2, $3, $4)", &[&entry.at, &entry.api_key_id, &entry.action.as_str(), &entry.detail]).await?;
            tx.commit().await?;
            Ok::<_, DbError>(())
        })
        .await
        .map_err(unavailable)?;
        Ok(CreatedKey { key, secret })
    }

    async fn list(&self) -> Result<Vec<crate::keys::ApiKey>, StoreError> {
        let client = self.client().await?;
        let rows = timed(self.op_timeout, async {
            Ok::<_, DbError>(
                client
                    .query(
                        &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                        &[],
                    )
                    .await?,
            )
        })
        .await
        .map_err(unavailable)?;
        Ok(rows.iter().map(key_of).collect())
    }

    async fn revoke(&self, id: Uuid) -> Result<Revoked, StoreError> {
        let mut client = self.client().await?;
        timed(self.op_timeout, async {
            let tx = client.transaction().await?;
            let Some(row) = tx
                .query_opt(
                    &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 FOR UPDATE"),
                    &[&id],
                )
                .await?
            else {
                return Ok(Revoked::NotFound);
            };
            let mut key = key_of(&row);
            if key.revoked_at.is_some() {
                return Ok(Revoked::AlreadyRevoked);
            }
            let now: DateTime<Utc> = Utc::now();
            tx.execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1", &[&id, &now]).await?;
            key.revoked_at = Some(now);
            let entry = admin_entry(AuditAction::KeyRevoked, &key);
            tx.execute(
                "INSERT INTO audit_log (at, api_key_id, action, detail) VALUES ($1, $2, $3, $4)",
                &[&entry.at, &entry.api_key_id, &entry.action.as_str(), &entry.detail],
            )
            .await?;
            tx.commit().await?;
            Ok::<_, DbError>(Revoked::Revoked)
        })
        .await
        .map_err(unavailable)
    }

    async fn find(&self, hash: &KeyHash) -> Result<Option<crate::keys::ApiKey>, StoreError> {
        let client = self.client().await?;
        let row = timed(self.op_timeout, async {
            Ok::<_, DbError>(
                client
                    .query_opt(
                        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1"),
                        &[&hash.as_str()],
                    )
                    .await?,
            )
        })
        .await
        .map_err(unavailable)?;
        Ok(row.as_ref().map(key_of))
    }

    async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        timed(self.op_timeout, async {
            let tx = client.transaction().await?;
            let stmt = tx.prepare("INSERT INTO audit_log (at, api_key_id, action, detail) VALUES ($1, $2, $3, $4)").await?;
            for e in &entries {
                tx.execute(&stmt, &[&e.at, &e.api_key_id, &e.action.as_str(), &e.detail]).await?;
            }
            tx.commit().await?;
            Ok::<_, DbError>(())
        })
        .await
        .map_err(unavailable)
    }

    async fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = timed(self.op_timeout, async {
            Ok::<_, DbError>(client.query("SELECT at, api_key_id, action, detail FROM (SELECT id, at, api_key_id, action, detail FROM audit_log ORDER BY id DESC LIMIT $1) t ORDER BY id", &[&limit]).await?)
        })
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                let action: String = r.get(2);
                Ok(AuditEntry {
                    at: r.get(0),
                    api_key_id: r.get(1),
                    action: action.parse().map_err(StoreError::Other)?,
                    detail: r.get(3),
                })
            })
            .collect()
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}
