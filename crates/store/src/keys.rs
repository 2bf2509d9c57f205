//! API keys and the audit log of their use, behind one trait.
//!
//! A key is `tri_` followed by 64 hex digits (32 bytes from the operating system's generator,
//! through `rand`'s CSPRNG). It is shown once, when it is created; only its SHA-256 hash is
//! kept. Keys are looked up by that hash, so the store never sees a key after creation and a
//! leaked table gives nobody a usable key. A key is revoked, never deleted, so the reports and
//! audit entries that name it keep their meaning.
//!
//! Two implementations: [`PgKeys`](crate::PgKeys) in PostgreSQL's `api_keys` and `audit_log`
//! tables (with `database.url`), and [`FileKeys`] in a JSON file for the embedded default, so a
//! single machine can require keys without a database.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::StoreError;

/// What a key may do. Each `/v1` route names the scope it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// `POST /v1/triage`.
    #[serde(rename = "triage:write")]
    TriageWrite,
    /// `GET /v1/triage/{id}`, for the reports this key created.
    #[serde(rename = "reports:read")]
    ReportsRead,
    /// `GET /v1/events`, for the events of the reports this key created.
    #[serde(rename = "events:read")]
    EventsRead,
    /// `GET /v1/events` for every key's events: operators and bridges.
    #[serde(rename = "events:read_all")]
    EventsReadAll,
}

impl Scope {
    pub const ALL: [Scope; 4] =
        [Scope::TriageWrite, Scope::ReportsRead, Scope::EventsRead, Scope::EventsReadAll];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TriageWrite => "triage:write",
            Scope::ReportsRead => "reports:read",
            Scope::EventsRead => "events:read",
            Scope::EventsReadAll => "events:read_all",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s.trim()).ok_or_else(|| {
            format!(
                "unknown scope '{}': use {}",
                s.trim(),
                Scope::ALL.map(Scope::as_str).join(", ")
            )
        })
    }
}

/// Parses `triage:write,reports:read`: at least one scope, each known, duplicates folded.
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, String> {
    let mut scopes: Vec<Scope> = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(format!(
            "give at least one scope: {}",
            Scope::ALL.map(Scope::as_str).join(", ")
        ));
    }
    Ok(scopes)
}

/// A key as it is kept: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key has `scope`; `events:read_all` includes `events:read`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
            || (scope == Scope::EventsRead && self.scopes.contains(&Scope::EventsReadAll))
    }

    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// The key itself, as handed to its owner once. `Debug` and `Display` print nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret(String);

impl KeySecret {
    pub const PREFIX: &'static str = "tri_";

    /// 32 random bytes as 64 hex digits after the prefix.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        KeySecret(format!("{}{}", Self::PREFIX, hex(&bytes)))
    }

    /// What the caller sent, to be hashed and looked up.
    pub fn new(s: impl Into<String>) -> Self {
        KeySecret(s.into())
    }

    /// The key, to print once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        let digest = Sha256::digest(self.0.as_bytes());
        KeyHash(hex(&digest))
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret([redacted])")
    }
}

/// SHA-256 of a key, as 64 hex digits: what the stores keep and look keys up by. Its `Debug`
/// is redacted too: a hash is not a key, but it should not be in a log either.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash([redacted])")
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// What the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    KeyCreated,
    KeyRevoked,
    /// Requests a key made in one flush interval, counted (`detail.requests`).
    KeyUsed,
    /// Requests refused with 401: no key, a malformed header, or an unknown or revoked key.
    AuthFailed,
    /// Requests refused with 403: the key lacks the route's scope.
    ScopeDenied,
    /// Requests refused with 429.
    RateLimited,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::KeyCreated => "key_created",
            AuditAction::KeyRevoked => "key_revoked",
            AuditAction::KeyUsed => "key_used",
            AuditAction::AuthFailed => "auth_failed",
            AuditAction::ScopeDenied => "scope_denied",
            AuditAction::RateLimited => "rate_limited",
        }
    }
}

impl FromStr for AuditAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            AuditAction::KeyCreated,
            AuditAction::KeyRevoked,
            AuditAction::KeyUsed,
            AuditAction::AuthFailed,
            AuditAction::ScopeDenied,
            AuditAction::RateLimited,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or_else(|| format!("unknown audit action '{s}'"))
    }
}

/// One audit entry. `detail` holds ids, names of routes and scopes, counts: never a key, a
/// hash or a person's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `None` for admin actions from the command line and for requests without a known key.
    pub api_key_id: Option<Uuid>,
    pub action: AuditAction,
    pub detail: serde_json::Value,
}

/// A key just created: the record and the key itself, which exists nowhere else.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: KeySecret,
}

/// What `revoke` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Revoked,
    AlreadyRevoked,
    NotFound,
}

/// Where API keys and their audit log are kept.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Creates a key with these scopes and records `key_created`.
    async fn create(&self, name: &str, scopes: &[Scope]) -> Result<CreatedKey, StoreError>;

    /// Every key, active and revoked, oldest first.
    async fn list(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key for good and records `key_revoked`.
    async fn revoke(&self, id: Uuid) -> Result<Revoked, StoreError>;

    /// The key with this hash, active or revoked; `None` if there is none.
    async fn find(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError>;

    /// Appends audit entries.
    async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError>;

    /// The most recent `limit` audit entries, newest last.
    async fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// `"file"` or `"postgres"`.
    fn kind(&self) -> &'static str;
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(StoreError::Other("a key name is 1 to 100 printable characters".into()));
    }
    Ok(())
}

pub(crate) fn new_key(name: &str, scopes: &[Scope]) -> Result<(ApiKey, KeySecret), StoreError> {
    check_name(name)?;
    if scopes.is_empty() {
        return Err(StoreError::Other("a key needs at least one scope".into()));
    }
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let key = ApiKey {
        id: Uuid::new_v4(),
        name: name.trim().to_string(),
        scopes,
        created_at: Utc::now(),
        revoked_at: None,
    };
    Ok((key, KeySecret::generate()))
}

pub(crate) fn admin_entry(action: AuditAction, key: &ApiKey) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        api_key_id: Some(key.id),
        action,
        detail: serde_json::json!({"name": key.name, "scopes": key.scopes}),
    }
}

/// Keys in a JSON file, for the embedded default: `{"keys": [{"key": ApiKey, "hash": ...}]}`,
/// rewritten whole (to a temporary file, fsynced, then renamed over the old one) on every
/// change, so a crash leaves the old file or the new one. The audit log is a JSON-lines file
/// beside it (`PATH.audit.jsonl`). A running service re-reads the key file when it changes, so
/// keys created or revoked by `triagent keys` take effect without a restart. For one machine;
/// several replicas share keys through PostgreSQL.
#[derive(Debug)]
pub struct FileKeys {
    path: PathBuf,
    audit_path: PathBuf,
    state: Mutex<FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    modified: Option<std::time::SystemTime>,
    len: u64,
    keys: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    key: ApiKey,
    hash: KeyHash,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileDoc {
    keys: Vec<FileEntry>,
}

fn io_err(path: &Path, e: impl fmt::Display) -> StoreError {
    StoreError::Other(format!("key file {}: {e}", path.display()))
}

impl FileKeys {
    /// Opens (or, on the first key, creates) the key file at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<FileKeys, StoreError> {
        let path = path.into();
        let mut audit = path.clone().into_os_string();
        audit.push(".audit.jsonl");
        let keys = FileKeys {
            audit_path: PathBuf::from(audit),
            path,
            state: Mutex::new(FileState::default()),
        };
        keys.reload()?;
        Ok(keys)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the file again if its modification time or length changed since the last read.
    fn reload(&self) -> Result<(), StoreError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut s = self.lock();
                *s = FileState::default();
                return Ok(());
            }
            Err(e) => return Err(io_err(&self.path, e)),
        };
        let (modified, len) = (meta.modified().ok(), meta.len());
        {
            let s = self.lock();
            if s.modified.is_some() && s.modified == modified && s.len == len {
                return Ok(());
            }
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| io_err(&self.path, e))?;
        let doc: FileDoc = serde_json::from_str(&text).map_err(|e| io_err(&self.path, e))?;
        let mut s = self.lock();
        s.keys = doc.keys.into_iter().map(|e| (e.hash.0.clone(), e)).collect();
        s.modified = modified;
        s.len = len;
        Ok(())
    }

    fn write(&self, s: &mut FileState) -> Result<(), StoreError> {
        use std::io::Write;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_err(&self.path, e))?;
        }
        let mut keys: Vec<FileEntry> = s.keys.values().cloned().collect();
        keys.sort_by_key(|e| (e.key.created_at, e.key.id));
        let text =
            serde_json::to_string_pretty(&FileDoc { keys }).map_err(|e| io_err(&self.path, e))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
            f.write_all(text.as_bytes()).map_err(|e| io_err(&tmp, e))?;
            f.sync_all().map_err(|e| io_err(&tmp, e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| io_err(&self.path, e))?;
        let meta = std::fs::metadata(&self.path).map_err(|e| io_err(&self.path, e))?;
        s.modified = meta.modified().ok();
        s.len = meta.len();
        Ok(())
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        append_lines(&self.audit_path, entries)
    }
}

fn append_lines(path: &Path, entries: &[AuditEntry]) -> Result<(), StoreError> {
    use std::io::Write;
    if entries.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).map_err(|e| io_err(path, e))?);
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| io_err(path, e))?;
    f.sync_data().map_err(|e| io_err(path, e))
}

#[async_trait]
impl KeyStore for FileKeys {
    async fn create(&self, name: &str, scopes: &[Scope]) -> Result<CreatedKey, StoreError> {
        let (key, secret) = new_key(name, scopes)?;
        self.reload()?;
        {
            let mut s = self.lock();
            s.keys.insert(secret.hash().0, FileEntry { key: key.clone(), hash: secret.hash() });
            self.write(&mut s)?;
        }
        self.append_audit(&[admin_entry(AuditAction::KeyCreated, &key)])?;
        Ok(CreatedKey { key, secret })
    }

    async fn list(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.reload()?;
        let mut keys: Vec<ApiKey> = self.lock().keys.values().map(|e| e.key.clone()).collect();
        keys.sort_by_key(|k| (k.created_at, k.id));
        Ok(keys)
    }

    async fn revoke(&self, id: Uuid) -> Result<Revoked, StoreError> {
        self.reload()?;
        let revoked = {
            let mut s = self.lock();
            let Some(entry) = s.keys.values_mut().find(|e| e.key.id == id) else {
                return Ok(Revoked::NotFound);
            };
            if entry.key.revoked_at.is_some() {
                return Ok(Revoked::AlreadyRevoked);
            }
            entry.key.revoked_at = Some(Utc::now());
            let key = entry.key.clone();
            self.write(&mut s)?;
            key
        };
        self.append_audit(&[admin_entry(AuditAction::KeyRevoked, &revoked)])?;
        Ok(Revoked::Revoked)
    }

    async fn find(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError> {
        self.reload()?;
        Ok(self.lock().keys.get(&hash.0).map(|e| e.key.clone()))
    }

    async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        // The service's periodic flush: the fsync runs off the async threads.
        let path = self.audit_path.clone();
        tokio::task::spawn_blocking(move || append_lines(&path, &entries))
            .await
            .map_err(|e| StoreError::Other(format!("audit writer: {e}")))?
    }

    async fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let text = match std::fs::read_to_string(&self.audit_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.audit_path, e)),
        };
        let entries: Vec<AuditEntry> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| io_err(&self.audit_path, e))?;
        let skip = entries.len().saturating_sub(limit);
        Ok(entries.into_iter().skip(skip).collect())
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hash_to_hex() {
        let a = KeySecret::generate();
        let b = KeySecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("tri_") && a.expose().len() == 68);
        assert_eq!(a.hash(), KeySecret::new(a.expose()).hash());
        assert_eq!(a.hash().as_str().len(), 64);
        assert_ne!(a.hash().as_str(), &a.expose()[4..]);
        assert!(!format!("{a:?} {:?}", a.hash()).contains(&a.expose()[4..12]));
        // SHA-256 of "abc", a published test vector.
        assert_eq!(
            KeySecret::new("abc").hash().as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn scopes_parse_strictly() {
        assert_eq!(
            parse_scopes("reports:read, triage:write,triage:write").unwrap(),
            vec![Scope::TriageWrite, Scope::ReportsRead]
        );
        assert!(parse_scopes("").is_err());
        assert!(parse_scopes("triage:read").unwrap_err().contains("unknown scope 'triage:read'"));
    }

    #[tokio::test]
    async fn the_file_store_keeps_only_hashes_and_revokes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keys.json");
        let keys = FileKeys::open(&path).unwrap();
        assert!(keys.list().await.unwrap().is_empty());
        let created = keys.create("kiosk", &[Scope::TriageWrite]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(created.secret.expose()), "the key itself is never written");
        assert!(text.contains(created.secret.hash().as_str()));
        // A second handle (another process) sees it.
        let other = FileKeys::open(&path).unwrap();
        let found = other.find(&created.secret.hash()).await.unwrap().unwrap();
        assert_eq!(found, created.key);
        assert!(found.allows(Scope::TriageWrite) && !found.allows(Scope::ReportsRead));
        assert_eq!(other.revoke(created.key.id).await.unwrap(), Revoked::Revoked);
        assert_eq!(other.revoke(created.key.id).await.unwrap(), Revoked::AlreadyRevoked);
        assert_eq!(other.revoke(Uuid::new_v4()).await.unwrap(), Revoked::NotFound);
        // The first handle notices the change on its next read.
        assert!(!keys.find(&created.secret.hash()).await.unwrap().unwrap().is_active());
        let audit = keys.recent_audit(10).await.unwrap();
        assert_eq!(
            audit.iter().map(|a| a.action).collect::<Vec<_>>(),
            vec![AuditAction::KeyCreated, AuditAction::KeyRevoked]
        );
        let log = std::fs::read_to_string(dir.path().join("sub/keys.json.audit.jsonl")).unwrap();
        assert!(
            !log.contains(created.secret.expose()) && !log.contains(created.secret.hash().as_str())
        );
        assert!(keys.create(" ", &[Scope::TriageWrite]).await.is_err());
        assert!(keys.create("x", &[]).await.is_err());
    }
}
