//! The registry: names and their registrations, on SQLite (embedded, the default) or
//! PostgreSQL, through one SQL layer (sqlx's `Any` driver; the same statements on both).
//!
//! A name and an address each appear at most once: the first registration wins and is never
//! replaced. The database enforces it (primary key on the name, unique address), so
//! concurrent registrations cannot both win, whichever server process handles them.

use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;

use crate::record::Registration;

/// A stored registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lower-cased name.
    pub name: String,
    /// Jami ID (40 hex digits, lower case).
    pub addr: String,
    /// Ethereum address given at registration.
    pub owner: String,
    /// base64 public key as registered.
    pub publickey: String,
    /// base64 signature as registered.
    pub signature: String,
}

/// What an insertion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The name is now registered.
    New,
    /// The same name was already registered to the same address: nothing changed.
    Same,
    /// The name belongs to another address.
    NameTaken,
    /// The address already has another name.
    AddressTaken,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not `sqlite:PATH` or `postgres://...`.
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://...")]
    Url(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The registry.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY,
    addr TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    publickey TEXT NOT NULL,
    signature TEXT NOT NULL,
    created BIGINT NOT NULL
)";

/// `sqlite:PATH` (created if missing) or a PostgreSQL URL, as sqlx wants it.
fn connect_url(url: &str) -> Result<String, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err(StoreError::Url(url.to_owned()));
        }
        if path.contains('?') || path == ":memory:" {
            return Ok(format!("sqlite:{path}"));
        }
        return Ok(format!("sqlite://{path}?mode=rwc"));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_owned());
    }
    Err(StoreError::Url(url.to_owned()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (and creates, for SQLite) the database at `url` and its table.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let target = connect_url(url)?;
        let sqlite = target.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few readers are plenty.
            .max_connections(if sqlite { 4 } else { 8 })
            .connect(&target)
            .await?;
        if sqlite {
            // Readers do not block the writer.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        sqlx::query(SCHEMA).execute(&pool).await?;
        Ok(Self { pool })
    }

    fn entry(row: &sqlx::any::AnyRow) -> Result<Entry, sqlx::Error> {
        Ok(Entry {
            name: row.try_get("name")?,
            addr: row.try_get("addr")?,
            owner: row.try_get("owner")?,
            publickey: row.try_get("publickey")?,
            signature: row.try_get("signature")?,
        })
    }

    /// The registration of `name` (lower-cased).
    pub async fn by_name(&self, name: &str) -> Result<Option<Entry>, StoreError> {
        let row = sqlx::query(
            "SELECT name, addr, owner, publickey, signature FROM names WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(Self::entry).transpose()?)
    }

    /// The registration of the Jami ID `addr` (lower case).
    pub async fn by_addr(&self, addr: &str) -> Result<Option<Entry>, StoreError> {
        let row = sqlx::query(
            "SELECT name, addr, owner, publickey, signature FROM names WHERE addr = $1",
        )
        .bind(addr)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(Self::entry).transpose()?)
    }

    /// Registers `name` (lower-cased, already checked) as `reg` says, if neither the name nor
    /// the address is taken.
    pub async fn insert(&self, name: &str, reg: &Registration) -> Result<Inserted, StoreError> {
        let addr = crate::record::strip_0x(&reg.addr).to_ascii_lowercase();
        let done = sqlx::query(
            "INSERT INTO names (name, addr, owner, publickey, signature, created) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(&addr)
        .bind(crate::record::strip_0x(&reg.owner).to_ascii_lowercase())
        .bind(&reg.publickey)
        .bind(&reg.signature)
        .bind(now())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Inserted::New);
        }
        Ok(match self.by_name(name).await? {
            Some(e) if e.addr == addr => Inserted::Same,
            Some(_) => Inserted::NameTaken,
            None => Inserted::AddressTaken,
        })
    }

    /// Registered names.
    pub async fn count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM names")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
