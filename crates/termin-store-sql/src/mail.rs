//! The SQL of e-mail to people ([`termin_store::MailStore`]), the same on both backends: a
//! backend runs the statements with its [`NotifyExecutor`] and wraps [`queue_mail`] in a
//! transaction of its own.
//!
//! Tables (migration "email messages" of each backend): `mail_message`, one row per event and
//! recipient with its lease (`lease_owner`, `lease_until`), and `mail_cursor`, the one row of
//! how far the outbox has been made into messages. Instants are microseconds since the epoch.

use crate::Dialect;
use crate::PushValue;
use crate::notify::{Cell, Column, NotifyExecutor};
use jiff::Timestamp;
use termin_store::{ClaimedMail, MailOutcome, OutgoingMail, StoreError, StoreResult};

const QUEUED: &str = "queued";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("mail: bad {what}"))
}

fn integer(cell: &Cell, what: &str) -> StoreResult<i64> {
    match cell {
        Cell::Integer(i) => Ok(*i),
        _ => Err(corrupt(what)),
    }
}

fn text(cell: &Cell, what: &str) -> StoreResult<String> {
    match cell {
        Cell::Text(t) => Ok(t.clone()),
        _ => Err(corrupt(what)),
    }
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One conditional UPDATE takes the lease (of several nodes at once, one wins); the row is
/// made on the first claim, at the outbox's end.
pub async fn claim_mail_cursor<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    owner: &str,
    now: Timestamp,
    until: Timestamp,
) -> StoreResult<Option<u64>> {
    executor
        .execute(D::builder(
            "INSERT INTO mail_cursor (id, outbox_through, lease_until) \
             SELECT 1, COALESCE(MAX(seq), 0), 0 FROM outbox WHERE true ON CONFLICT (id) DO NOTHING",
        ))
        .await?;
    let mut q = D::builder("UPDATE mail_cursor SET lease_owner = ");
    q.push_value(owner).push(", lease_until = ").push_value(until.as_microsecond());
    q.push(" WHERE id = 1 AND (lease_until <= ").push_value(now.as_microsecond());
    q.push(" OR lease_owner = ").push_value(owner).push(")");
    if executor.execute(q).await? == 0 {
        return Ok(None);
    }
    let rows =
        executor.rows(D::builder("SELECT outbox_through FROM mail_cursor WHERE id = 1"), &[Column::Integer]).await?;
    let through = rows.first().ok_or_else(|| corrupt("cursor"))?;
    Ok(Some(u64::try_from(integer(&through[0], "outbox_through")?).map_err(|_| corrupt("outbox_through"))?))
}

/// Run inside one transaction by the backend.
pub async fn queue_mail<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    owner: &str,
    through: Option<u64>,
    mails: &[OutgoingMail],
    now: Timestamp,
) -> StoreResult<bool> {
    if let Some(through) = through {
        let mut q = D::builder("UPDATE mail_cursor SET outbox_through = ");
        q.push_value(signed(through));
        q.push(" WHERE id = 1 AND lease_owner = ").push_value(owner);
        if executor.execute(q).await? == 0 {
            return Ok(false);
        }
    }
    // Each message of the batch is stamped one microsecond after the one before it: the sender
    // takes due messages by `next_attempt`, then `queued_at`, so a batch goes out in the order of
    // its events (by key, "outbox:10" would come before "outbox:9").
    for (mail, queued) in mails.iter().zip(now.as_microsecond()..) {
        let mut q = D::builder(
            "INSERT INTO mail_message (event_key, recipient, message, state, attempts, queued_at, next_attempt, \
             lease_until) VALUES (",
        );
        q.push_value(mail.event_key.as_str()).push(", ").push_value(mail.recipient.as_str());
        q.push(", ").push_value(mail.message.as_str()).push(", ").push_value(QUEUED).push(", 0, ");
        q.push_value(queued).push(", ").push_value(now.as_microsecond());
        q.push(", 0) ON CONFLICT (event_key, recipient) DO NOTHING");
        executor.execute(q).await?;
    }
    Ok(true)
}

pub async fn known_mail_events<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    event_keys: &[String],
) -> StoreResult<Vec<String>> {
    if event_keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = D::builder("SELECT DISTINCT event_key FROM mail_message WHERE event_key IN (");
    for (i, key) in event_keys.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push_value(key.as_str());
    }
    q.push(")");
    executor.rows(q, &[Column::Text]).await?.iter().map(|row| text(&row[0], "event_key")).collect()
}

/// Picks the most overdue free message, then takes it with one conditional UPDATE; when
/// another node was quicker, tries the next one.
pub async fn claim_mail<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    owner: &str,
    now: Timestamp,
    until: Timestamp,
) -> StoreResult<Option<ClaimedMail>> {
    const CANDIDATES: i64 = 8;
    let mut q = D::builder("SELECT event_key, recipient FROM mail_message WHERE state = ");
    q.push_value(QUEUED).push(" AND next_attempt <= ").push_value(now.as_microsecond());
    q.push(" AND lease_until <= ").push_value(now.as_microsecond());
    q.push(" ORDER BY next_attempt, queued_at LIMIT ").push_value(CANDIDATES);
    for candidate in executor.rows(q, &[Column::Text, Column::Text]).await? {
        let (event_key, recipient) = (text(&candidate[0], "event_key")?, text(&candidate[1], "recipient")?);
        let mut q = D::builder("UPDATE mail_message SET lease_owner = ");
        q.push_value(owner).push(", lease_until = ").push_value(until.as_microsecond());
        q.push(" WHERE event_key = ").push_value(event_key.as_str());
        q.push(" AND recipient = ").push_value(recipient.as_str());
        q.push(" AND state = ").push_value(QUEUED);
        q.push(" AND lease_until <= ").push_value(now.as_microsecond());
        if executor.execute(q).await? == 0 {
            continue;
        }
        let mut q = D::builder("SELECT message, attempts, queued_at FROM mail_message WHERE event_key = ");
        q.push_value(event_key.as_str()).push(" AND recipient = ").push_value(recipient.as_str());
        let rows = executor.rows(q, &[Column::Text, Column::Integer, Column::Integer]).await?;
        let row = rows.first().ok_or_else(|| corrupt("claimed message"))?;
        return Ok(Some(ClaimedMail {
            mail: OutgoingMail { event_key, recipient, message: text(&row[0], "message")? },
            attempts: u32::try_from(integer(&row[1], "attempts")?).unwrap_or(u32::MAX),
            queued_at: Timestamp::from_microsecond(integer(&row[2], "queued_at")?).map_err(|_| corrupt("queued_at"))?,
        }));
    }
    Ok(None)
}

pub async fn record_mail<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    event_key: &str,
    recipient: &str,
    owner: &str,
    outcome: &MailOutcome,
    now: Timestamp,
) -> StoreResult<()> {
    let mut q =
        D::builder("UPDATE mail_message SET attempts = attempts + 1, lease_owner = NULL, lease_until = 0, state = ");
    match outcome {
        MailOutcome::Sent => {
            q.push_value("sent").push(", done_at = ").push_value(now.as_microsecond()).push(", last_error = NULL");
        }
        MailOutcome::Retry { at, error } => {
            q.push_value(QUEUED).push(", next_attempt = ").push_value(at.as_microsecond());
            q.push(", last_error = ").push_value(error.as_str());
        }
        MailOutcome::GaveUp { error } => {
            q.push_value("failed").push(", done_at = ").push_value(now.as_microsecond());
            q.push(", last_error = ").push_value(error.as_str());
        }
    }
    q.push(" WHERE event_key = ").push_value(event_key).push(" AND recipient = ").push_value(recipient);
    q.push(" AND lease_owner = ").push_value(owner);
    executor.execute(q).await.map(|_| ())
}
