//! How the PostgreSQL store reaches the database: the pool and the runtime its connections
//! live on, the migrations run at start, the time limit on each operation, and what a failure
//! means for the write ([`DbError`]).
//!
//! Apart from the store because API keys (`keys`) open their own pool the same way and share
//! the migrations and the error handling; none of this knows about reports or the spool.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_postgres::NoTls;

use super::sql;
use crate::StoreError;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// The advisory-lock key every replica takes around the migration run ("triagent" in ASCII),
/// so two replicas starting together apply each migration once (refinery alone would let both
/// apply the first migration and one fail). Session-level, on a connection of its own: a
/// replica that dies while migrating releases it with its connection.
const MIGRATION_LOCK: i64 = 0x7472_6961_6765_6e74;

/// Why a database operation failed, as far as what to do next is concerned.
#[derive(Debug)]
pub(super) enum DbError {
    /// The database cannot be reached or cannot work now: spool and retry.
    Transient(String),
    /// The database refused this content (a data or constraint error): retrying cannot help.
    Refused(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Only the SQLSTATE goes into the message: a server message may quote values.
        match e.code() {
            Some(code) if code.code().starts_with("22") || code.code().starts_with("23") => {
                DbError::Refused(format!("database refused the write (SQLSTATE {})", code.code()))
            }
            Some(code) => DbError::Transient(format!("database error (SQLSTATE {})", code.code())),
            None => DbError::Transient(format!("database unreachable: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => DbError::Transient(format!("database unreachable: {other}")),
        }
    }
}

impl DbError {
    pub(super) fn message(&self) -> &str {
        match self {
            DbError::Transient(m) | DbError::Refused(m) => m,
        }
    }
}

/// `f`, or a transient error once it has taken longer than `limit`.
pub(super) async fn timed<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    timeout(limit, f).await.unwrap_or_else(|_| {
        Err(DbError::Transient(format!("database did not answer within {limit:?}")))
    })
}

/// Opens pooled connections on the runtime that opened the store, whichever task asks.
///
/// actix-web runs each HTTP worker on a runtime of its own, and a tokio-postgres connection
/// lives on the runtime that connected it (its socket and its driver task). Left to itself,
/// the pool would connect on whichever worker asked first and lose the connection when that
/// worker stops (at shutdown, the writer's final commits and the last audit flush would find
/// it closed). Connecting on the opener's runtime (the service's main one) keeps every
/// connection alive as long as the store.
pub(super) struct OnRuntime(tokio::runtime::Handle);

impl OnRuntime {
    pub(super) fn current() -> OnRuntime {
        OnRuntime(tokio::runtime::Handle::current())
    }
}

impl deadpool_postgres::Connect for OnRuntime {
    fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>,
    > {
        let pg = pg.clone();
        let opened = self.0.spawn(async move {
            let (client, connection) = pg.connect(NoTls).await?;
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "database connection ended");
                }
            });
            Ok((client, driver))
        });
        // The runtime is shutting down: as the pool sees it, connecting timed out.
        Box::pin(async move {
            opened.await.unwrap_or_else(|_| Err(tokio_postgres::Error::__private_api_timeout()))
        })
    }
}

/// The connection settings in `url` (a libpq-style URL or key-value string), with `op_timeout`
/// to connect and `application_name` unless the URL names one.
pub(super) fn settings(
    url: &str,
    op_timeout: Duration,
    application_name: &str,
) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg = parse_url(url)?;
    pg.connect_timeout(op_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name(application_name);
    }
    Ok(pg)
}

/// The connection settings in `url`, as given.
pub(super) fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::Other(format!("database url: {e}")))
}

/// A pool of at most `max_size` connections to `pg`, opened on this runtime ([`OnRuntime`]);
/// waiting for, opening and recycling a connection each take at most `op_timeout`. Nothing is
/// connected until a connection is first asked for.
pub(super) fn pool(
    pg: tokio_postgres::Config,
    max_size: usize,
    op_timeout: Duration,
) -> Result<Pool, StoreError> {
    // A connection the network closed is noticed by `is_closed` without a query.
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = Manager::from_connect(pg, OnRuntime::current(), manager_config);
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(op_timeout))
        .create_timeout(Some(op_timeout))
        .recycle_timeout(Some(op_timeout))
        .build()
        .map_err(|e| StoreError::Other(format!("database pool: {e}")))
}

/// Applies the migrations under a session advisory lock, on a connection of its own so the
/// lock is released with it even if this task dies.
pub(super) async fn migrate(pg: &tokio_postgres::Config, limit: Duration) -> Result<(), DbError> {
    let (mut client, connection) =
        timed(limit, async { Ok::<_, DbError>(pg.connect(NoTls).await?) }).await?;
    let driver = tokio::spawn(connection);
    let result = async {
        // Not bounded by `limit`: another replica may hold the lock for as long as its
        // migrations take.
        client.execute(sql::ADVISORY_LOCK, &[&MIGRATION_LOCK]).await?;
        let run = embedded::migrations::runner().set_grouped(false).run_async(&mut client).await;
        if let Err(e) = run {
            return Err(if client.is_closed() {
                DbError::Transient(format!("connection lost during migrations: {e}"))
            } else {
                DbError::Refused(format!("migrations failed: {e}"))
            });
        }
        client.execute(sql::ADVISORY_UNLOCK, &[&MIGRATION_LOCK]).await?;
        Ok::<(), DbError>(())
    }
    .await;
    drop(client);
    let _ = driver.await;
    result
}
