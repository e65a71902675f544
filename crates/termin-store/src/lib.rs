//! The storage port: the operations the domain needs from a database, free of SQL types.
//!
//! Reads go through [`ResourceStore`]; every change goes through a [`WriteTx`] unit of work
//! so the domain can check preconditions (versions, conditional matches, and later slot
//! state) and write in one atomic step. Backends live in their own crates.

mod context;

pub use context::{Principal, RequestContext};

use async_trait::async_trait;
use jiff::Timestamp;
use termin_fhir::ResourceType;

/// One stored version of a resource. Deleted versions carry no body.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceVersion {
    pub resource_type: ResourceType,
    pub id: String,
    pub version: u64,
    pub last_updated: Timestamp,
    /// The stored JSON text including the server-managed `meta`; `None` for a deletion.
    pub body: Option<String>,
}

impl ResourceVersion {
    pub fn is_deleted(&self) -> bool {
        self.body.is_none()
    }
}

/// The change that produced a history entry, as reported in `Bundle.entry.request.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
}

/// A history entry: a version and how it came to be.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub version: ResourceVersion,
    pub change: ChangeKind,
}

/// A token search-index row: `system|code` of an element a search parameter points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenIndex {
    pub param: String,
    pub system: Option<String>,
    pub code: String,
}

/// Everything a backend needs to index a resource version for search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexEntries {
    pub tokens: Vec<TokenIndex>,
}

/// A new version to write; the backend stores it and replaces the current version.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub version: ResourceVersion,
    pub change: ChangeKind,
    pub index: IndexEntries,
}

/// A condition on the current (non-deleted) resources of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Logical id is one of these.
    IdIn(Vec<String>),
    /// At least one token index row of `param` matches one of the alternatives.
    TokenAny {
        param: String,
        alternatives: Vec<TokenMatch>,
    },
}

/// A token alternative: `system|code`, `|code` (no system), `system|` or `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    pub system: SystemMatch,
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMatch {
    Any,
    None,
    Exactly(String),
}

/// A page request over current resources of one type, ordered by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    pub resource_type: ResourceType,
    pub conditions: Vec<Condition>,
    pub count: usize,
    /// Resume after this id (keyset paging: stable while others write).
    pub after_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub matches: Vec<ResourceVersion>,
    pub total: u64,
    /// Set when more matches follow: the last id of this page.
    pub next_after_id: Option<String>,
}

/// Which history to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    pub resource_type: ResourceType,
    /// `None` lists the history of the whole type.
    pub id: Option<String>,
    pub count: usize,
    /// Resume before this history position (keyset paging).
    pub before: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    pub total: u64,
    /// Set when older entries follow: the cursor for the next page.
    pub next_before: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the write conflicted with a concurrent transaction: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Read access to the resource store. Every call carries the request context so that
/// authorization (patient compartments) and auditing can be enforced at this layer.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// The current version of a resource (possibly a deletion), or `None` if it never existed.
    async fn read_current(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>>;

    async fn read_version(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<ResourceVersion>>;

    async fn search(&self, ctx: &RequestContext, request: &SearchRequest) -> StoreResult<SearchPage>;

    async fn history(&self, ctx: &RequestContext, request: &HistoryRequest) -> StoreResult<HistoryPage>;

    /// Starts a unit of work. Units of work are serializable: no other write interleaves.
    async fn begin_write(&self, ctx: &RequestContext) -> StoreResult<Box<dyn WriteTx>>;

    /// Checks that the database answers (for readiness).
    async fn ping(&self) -> StoreResult<()>;
}

/// A unit of work. Dropping it without [`WriteTx::commit`] discards every write.
#[async_trait]
pub trait WriteTx: Send {
    async fn read_current(
        &mut self,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>>;

    /// Ids of current resources matching every condition, at most `limit` of them.
    async fn find_ids(
        &mut self,
        resource_type: ResourceType,
        conditions: &[Condition],
        limit: usize,
    ) -> StoreResult<Vec<String>>;

    async fn write(&mut self, new: NewVersion) -> StoreResult<()>;

    async fn commit(self: Box<Self>) -> StoreResult<()>;
}
