//! Throw-away databases for tests (this crate's and the server's integration tests): each is
//! created empty on the server named by `TERMIN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped again by its owner.

use sqlx::{Connection, Executor, PgConnection};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A server that does not answer within this is treated as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The maintenance database URL scratch databases are created through.
pub fn admin_url() -> String {
    std::env::var("TERMIN_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

#[derive(Debug)]
pub struct ScratchDatabase {
    pub name: String,
    /// The URL to hand to `PostgresStore::open` or `termin serve --database`.
    pub url: String,
}

async fn connect_admin() -> Result<PgConnection, String> {
    let url = admin_url();
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("PostgreSQL at {url} is not reachable: {e}")),
        Err(_) => Err(format!("PostgreSQL at {url} did not answer within {CONNECT_TIMEOUT:?}")),
    }
}

/// `admin` with its database replaced by `name` (query parameters kept).
fn database_url(admin: &str, name: &str) -> Result<String, String> {
    let (location, parameters) = admin.split_once('?').map_or((admin, None), |(l, p)| (l, Some(p)));
    let Some((server, _)) = location.rsplit_once('/') else {
        return Err(format!("TERMIN_TEST_POSTGRES_URL {admin} names no database"));
    };
    Ok(match parameters {
        Some(parameters) => format!("{server}/{name}?{parameters}"),
        None => format!("{server}/{name}"),
    })
}

impl ScratchDatabase {
    /// Creates a new empty database whose name starts with `prefix`; the error says why the
    /// server could not be used.
    pub async fn create(prefix: &str) -> Result<Self, String> {
        static CREATED: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{prefix}_{}_{}_{nanos}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = connect_admin().await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .map_err(|e| format!("cannot create database {name}: {e}"))?;
        let url = database_url(&admin_url(), &name)?;
        Ok(ScratchDatabase { name, url })
    }

    /// Drops the database, closing whatever connections still use it.
    pub async fn drop_database(self) -> Result<(), String> {
        let mut admin = connect_admin().await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)))
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot drop database {}: {e}", self.name))
    }
}
