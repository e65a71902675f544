//! The storage of e-mail to people: messages queued once per event and recipient (the key
//! makes a second queueing of the same one a no-op), their state, and leases so that of
//! several nodes one turns the outbox into messages and each message is sent by one node.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;

/// A rendered message waiting to be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// What the message is about, unique per event: `outbox:<seq>` or `reminder:...`.
    pub event_key: String,
    pub recipient: String,
    /// The whole message (RFC 5322), as it goes over SMTP.
    pub message: String,
}

/// A queued message a node has claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMail {
    pub mail: OutgoingMail,
    /// Attempts before this one.
    pub attempts: u32,
    pub queued_at: Timestamp,
}

/// What became of an attempt to send a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    Sent,
    /// A temporary failure: try again at `at`.
    Retry { at: Timestamp, error: String },
    /// A permanent failure: the message is not sent.
    GaveUp { error: String },
}

#[async_trait]
pub trait MailStore: Send + Sync {
    /// Takes the lease on turning the outbox into messages for `owner` until `until`, if no
    /// other owner holds a live one; the outbox position messages have been made through.
    /// The first claim ever starts at the outbox's current end (no mail for older events).
    async fn claim_mail_cursor(&self, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<u64>>;

    /// Queues `mails` (those already queued stay as they are) and, with `through`, records
    /// that the outbox has been made into messages up to there, in one transaction and only
    /// while `owner` holds the cursor's lease; false when it was lost.
    async fn queue_mail(&self, owner: &str, through: Option<u64>, mails: &[OutgoingMail], now: Timestamp) -> StoreResult<bool>;

    /// Which of these event keys have messages queued (in any state).
    async fn known_mail_events(&self, event_keys: &[String]) -> StoreResult<Vec<String>>;

    /// Takes the lease on one queued message that is due, for `owner` until `until`.
    async fn claim_mail(&self, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<ClaimedMail>>;

    /// Records the outcome of an attempt and gives the lease back (only while `owner` holds it).
    async fn record_mail(
        &self,
        event_key: &str,
        recipient: &str,
        owner: &str,
        outcome: &MailOutcome,
        now: Timestamp,
    ) -> StoreResult<()>;
}
