//! The SQL of Subscription delivery ([`termin_store::NotificationStore`]), the same on both
//! backends: [`notification_store!`](crate::notification_store) writes a backend's
//! `impl NotificationStore`, which runs these statements ([`NotifyExecutor`]) on the
//! connections and transactions the backend hands out.
//!
//! Tables (migration "subscription delivery" of each backend): `subscription_delivery`, one row
//! per tracked Subscription with its lease (`lease_owner`, `lease_until`), and
//! `subscription_event`, its numbered events. Instants are microseconds since the epoch.

use crate::Statement;
use crate::{Dialect, PushValue};
use async_trait::async_trait;
use jiff::Timestamp;
use termin_fhir::ResourceType;
use termin_store::{AttemptRecord, DeliveryState, DomainEvent, NewNotification, Notification, StoreError, StoreResult};

/// How a selected column is decoded.
#[derive(Debug, Clone, Copy)]
pub enum Column {
    Integer,
    Text,
}

/// A decoded value; `Null` for SQL NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Integer(i64),
    Text(String),
    Null,
}

/// Runs the statements of delivery on one connection or transaction.
#[async_trait]
pub trait NotifyExecutor<D: Dialect>: Send {
    /// Runs a statement; the number of rows it changed.
    async fn execute(&mut self, query: Statement<D>) -> StoreResult<u64>;

    /// The rows a query selects, each column decoded as `columns` says.
    async fn rows(&mut self, query: Statement<D>, columns: &[Column]) -> StoreResult<Vec<Vec<Cell>>>;
}

/// Defines `Executor<'c>`, the [`NotifyExecutor`] over a connection of the backend's `$database`
/// (`$connection`); the invoking crate's `db_error` maps sqlx's errors. Decoding compiles only
/// for a concrete database (as [`crate::Dialect::bind`]), so each backend expands it.
#[macro_export]
macro_rules! notify_executor {
    ($database:ty, $connection:ty) => {
        struct Executor<'c>(&'c mut $connection);

        #[async_trait::async_trait]
        impl $crate::notify::NotifyExecutor<$database> for Executor<'_> {
            async fn execute(&mut self, query: $crate::Statement<$database>) -> termin_store::StoreResult<u64> {
                let (sql, values) = query.into_parts();
                let arguments = $crate::sqlx_arguments::<$database>(values).map_err(db_error)?;
                let done = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments).execute(&mut *self.0).await;
                Ok(done.map_err(db_error)?.rows_affected())
            }

            async fn rows(
                &mut self,
                query: $crate::Statement<$database>,
                columns: &[$crate::notify::Column],
            ) -> termin_store::StoreResult<Vec<Vec<$crate::notify::Cell>>> {
                use sqlx::Row;
                use $crate::notify::{Cell, Column};
                let (sql, values) = query.into_parts();
                let arguments = $crate::sqlx_arguments::<$database>(values).map_err(db_error)?;
                let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments)
                    .fetch_all(&mut *self.0)
                    .await
                    .map_err(db_error)?;
                rows.iter()
                    .map(|row| {
                        columns
                            .iter()
                            .enumerate()
                            .map(|(i, column)| {
                                Ok(match column {
                                    Column::Integer => row
                                        .try_get::<Option<i64>, _>(i)
                                        .map_err(db_error)?
                                        .map_or(Cell::Null, Cell::Integer),
                                    Column::Text => row
                                        .try_get::<Option<String>, _>(i)
                                        .map_err(db_error)?
                                        .map_or(Cell::Null, Cell::Text),
                                })
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    };
}

/// `impl NotificationStore`, [`MailStore`](termin_store::MailStore) and
/// [`LeaseStore`](termin_store::LeaseStore) `for $store` — the delivery work of the notifier,
/// the mailer and background jobs — on the backend's `$database` (connection type
/// `$connection`), with [`notify_executor!`](crate::notify_executor). The store provides
/// `async fn reader(&self)` (listings) and `async fn delivery_writer(&self)` (changes), each a
/// `StoreResult` of something that derefs to `$connection` (a pooled connection; SQLite's
/// writer holds its write turn with it), and
/// `async fn begin_delivery(conn: &mut <the writer>) -> StoreResult<Transaction<'_, $database>>`
/// for the changes that must be atomic (`untrack`, `append_notifications`, `queue_mail`).
#[macro_export]
macro_rules! notification_store {
    ($store:ty, $database:ty, $connection:ty) => {
        $crate::notify_executor!($database, $connection);

        const _: () = {
            use $crate::{lease, mail, notify};
            use $crate::support::*;

            #[async_trait]
            impl NotificationStore for $store {
                async fn events_of_type(&self, resource_type: ResourceType, after: u64, limit: usize) -> StoreResult<Vec<(u64, DomainEvent)>> {
                    notify::events_of_type(&mut Executor(&mut *self.reader().await?), resource_type, after, limit).await
                }

                async fn track(&self, subscription_id: &str, from: u64, now: Timestamp) -> StoreResult<()> {
                    notify::track(&mut Executor(&mut *self.delivery_writer().await?), subscription_id, from, now).await
                }

                async fn untrack(&self, subscription_id: &str) -> StoreResult<()> {
                    let mut conn = self.delivery_writer().await?;
                    let mut tx = Self::begin_delivery(&mut conn).await?;
                    notify::untrack(&mut Executor(&mut tx), subscription_id).await?;
                    tx.commit().await.map_err(db_error)
                }

                async fn due(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<String>> {
                    notify::due(&mut Executor(&mut *self.reader().await?), now, limit).await
                }

                async fn claim(&self, subscription_id: &str, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<DeliveryState>> {
                    notify::claim(&mut Executor(&mut *self.delivery_writer().await?), subscription_id, owner, now, until).await
                }

                #[rustfmt::skip]
                async fn append_notifications(&self, subscription_id: &str, owner: &str, matched_through: u64, events: &[NewNotification]) -> StoreResult<Option<DeliveryState>> {
                    let mut conn = self.delivery_writer().await?;
                    let mut tx = Self::begin_delivery(&mut conn).await?;
                    let state = notify::append_notifications(&mut Executor(&mut tx), subscription_id, owner, matched_through, events).await?;
                    tx.commit().await.map_err(db_error)?;
                    Ok(state)
                }

                async fn notifications(&self, subscription_id: &str, from: u64, until: u64, limit: usize) -> StoreResult<Vec<Notification>> {
                    notify::notifications(&mut Executor(&mut *self.reader().await?), subscription_id, from, until, limit).await
                }

                async fn finish(&self, subscription_id: &str, owner: &str, attempt: &AttemptRecord) -> StoreResult<()> {
                    notify::finish(&mut Executor(&mut *self.delivery_writer().await?), subscription_id, owner, attempt).await
                }

                async fn delivery_state(&self, subscription_id: &str) -> StoreResult<Option<DeliveryState>> {
                    notify::delivery_state(&mut Executor(&mut *self.reader().await?), subscription_id).await
                }
            }

            #[async_trait]
            impl MailStore for $store {
                async fn claim_mail_cursor(&self, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<u64>> {
                    mail::claim_mail_cursor(&mut Executor(&mut *self.delivery_writer().await?), owner, now, until).await
                }

                #[rustfmt::skip]
                async fn queue_mail(&self, owner: &str, through: Option<u64>, mails: &[OutgoingMail], now: Timestamp) -> StoreResult<bool> {
                    let mut conn = self.delivery_writer().await?;
                    let mut tx = Self::begin_delivery(&mut conn).await?;
                    let queued = mail::queue_mail(&mut Executor(&mut tx), owner, through, mails, now).await?;
                    tx.commit().await.map_err(db_error)?;
                    Ok(queued)
                }

                async fn known_mail_events(&self, event_keys: &[String]) -> StoreResult<Vec<String>> {
                    mail::known_mail_events(&mut Executor(&mut *self.reader().await?), event_keys).await
                }

                async fn claim_mail(&self, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<ClaimedMail>> {
                    mail::claim_mail(&mut Executor(&mut *self.delivery_writer().await?), owner, now, until).await
                }

                #[rustfmt::skip]
                async fn record_mail(&self, event_key: &str, recipient: &str, owner: &str, outcome: &MailOutcome, now: Timestamp) -> StoreResult<()> {
                    mail::record_mail(&mut Executor(&mut *self.delivery_writer().await?), event_key, recipient, owner, outcome, now).await
                }
            }

            #[async_trait]
            impl LeaseStore for $store {
                async fn claim_lease(&self, name: &str, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
                    lease::claim_lease(&mut Executor(&mut *self.delivery_writer().await?), name, owner, now, until).await
                }
            }
        };
    };
}

const STATE_COLUMNS: &str =
    "sub_id, matched_through, events_total, delivered_through, failures, next_attempt, last_delivery, last_error";
const STATE_KINDS: [Column; 8] = [
    Column::Text,
    Column::Integer,
    Column::Integer,
    Column::Integer,
    Column::Integer,
    Column::Integer,
    Column::Integer,
    Column::Text,
];
const EVENT_COLUMNS: &str = "number, outbox_seq, focus_type, focus_id, focus_version, occurred_at";
const EVENT_KINDS: [Column; 6] =
    [Column::Integer, Column::Integer, Column::Text, Column::Text, Column::Integer, Column::Integer];
const OUTBOX_COLUMNS: &str = "seq, kind, res_type, res_id, version, occurred_at, detail";
const OUTBOX_KINDS: [Column; 7] =
    [Column::Integer, Column::Text, Column::Text, Column::Text, Column::Integer, Column::Text, Column::Text];

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("subscription delivery: bad {what}"))
}

fn integer(cell: &Cell, what: &str) -> StoreResult<Option<i64>> {
    match cell {
        Cell::Integer(i) => Ok(Some(*i)),
        Cell::Null => Ok(None),
        Cell::Text(_) => Err(corrupt(what)),
    }
}

fn count(cell: &Cell, what: &str) -> StoreResult<u64> {
    integer(cell, what)?.and_then(|i| u64::try_from(i).ok()).ok_or_else(|| corrupt(what))
}

fn text(cell: &Cell, what: &str) -> StoreResult<Option<String>> {
    match cell {
        Cell::Text(t) => Ok(Some(t.clone())),
        Cell::Null => Ok(None),
        Cell::Integer(_) => Err(corrupt(what)),
    }
}

fn instant(micros: i64, what: &str) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(micros).map_err(|_| corrupt(what))
}

fn resource_type(cell: &Cell) -> StoreResult<ResourceType> {
    text(cell, "resource type")?.and_then(|t| t.parse().ok()).ok_or_else(|| corrupt("resource type"))
}

fn decode_state(row: &[Cell]) -> StoreResult<DeliveryState> {
    Ok(DeliveryState {
        subscription_id: text(&row[0], "sub_id")?.ok_or_else(|| corrupt("sub_id"))?,
        matched_through: count(&row[1], "matched_through")?,
        events_total: count(&row[2], "events_total")?,
        delivered_through: count(&row[3], "delivered_through")?,
        failures: u32::try_from(count(&row[4], "failures")?).unwrap_or(u32::MAX),
        next_attempt: instant(integer(&row[5], "next_attempt")?.unwrap_or_default(), "next_attempt")?,
        last_delivery: integer(&row[6], "last_delivery")?.map(|m| instant(m, "last_delivery")).transpose()?,
        last_error: text(&row[7], "last_error")?,
    })
}

fn decode_notification(row: &[Cell]) -> StoreResult<Notification> {
    Ok(Notification {
        number: count(&row[0], "number")?,
        event: NewNotification {
            outbox_seq: count(&row[1], "outbox_seq")?,
            focus_type: resource_type(&row[2])?,
            focus_id: text(&row[3], "focus_id")?.ok_or_else(|| corrupt("focus_id"))?,
            focus_version: integer(&row[4], "focus_version")?.and_then(|v| u64::try_from(v).ok()),
            occurred_at: instant(integer(&row[5], "occurred_at")?.unwrap_or_default(), "occurred_at")?,
        },
    })
}

fn decode_outbox(row: &[Cell]) -> StoreResult<(u64, DomainEvent)> {
    let occurred_at = text(&row[5], "occurred_at")?.ok_or_else(|| corrupt("occurred_at"))?;
    Ok((
        count(&row[0], "seq")?,
        DomainEvent {
            kind: text(&row[1], "kind")?.ok_or_else(|| corrupt("kind"))?,
            resource_type: resource_type(&row[2])?,
            resource_id: text(&row[3], "res_id")?.ok_or_else(|| corrupt("res_id"))?,
            version: count(&row[4], "version")?,
            occurred_at: occurred_at.parse().map_err(|_| corrupt("occurred_at"))?,
            detail: text(&row[6], "detail")?.unwrap_or_default(),
        },
    ))
}

pub async fn events_of_type<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    resource_type: ResourceType,
    after: u64,
    limit: usize,
) -> StoreResult<Vec<(u64, DomainEvent)>> {
    let mut q = D::builder(format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE res_type = "));
    q.push_value(resource_type.as_str());
    q.push(" AND seq > ").push_value(signed(after));
    q.push(" ORDER BY seq LIMIT ").push_value(signed(limit as u64));
    executor.rows(q, &OUTBOX_KINDS).await?.iter().map(|row| decode_outbox(row)).collect()
}

pub async fn track<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    id: &str,
    from: u64,
    now: Timestamp,
) -> StoreResult<()> {
    let mut q = D::builder(
        "INSERT INTO subscription_delivery (sub_id, matched_through, events_total, delivered_through, failures, \
         next_attempt, lease_until) VALUES (",
    );
    q.push_value(id).push(", ").push_value(signed(from)).push(", 0, 0, 0, ");
    q.push_value(now.as_microsecond()).push(", 0) ON CONFLICT (sub_id) DO NOTHING");
    executor.execute(q).await.map(|_| ())
}

pub async fn untrack<D: Dialect>(executor: &mut impl NotifyExecutor<D>, id: &str) -> StoreResult<()> {
    for table in ["subscription_event", "subscription_delivery"] {
        let mut q = D::builder(format!("DELETE FROM {table} WHERE sub_id = "));
        q.push_value(id);
        executor.execute(q).await?;
    }
    Ok(())
}

pub async fn due<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    now: Timestamp,
    limit: usize,
) -> StoreResult<Vec<String>> {
    let mut q = D::builder("SELECT sub_id FROM subscription_delivery WHERE next_attempt <= ");
    q.push_value(now.as_microsecond());
    q.push(" AND lease_until <= ").push_value(now.as_microsecond());
    q.push(" ORDER BY next_attempt LIMIT ").push_value(signed(limit as u64));
    let rows = executor.rows(q, &[Column::Text]).await?;
    rows.iter().map(|row| text(&row[0], "sub_id")?.ok_or_else(|| corrupt("sub_id"))).collect()
}

async fn state_where<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    id: &str,
    owner: Option<&str>,
) -> StoreResult<Option<DeliveryState>> {
    let mut q = D::builder(format!("SELECT {STATE_COLUMNS} FROM subscription_delivery WHERE sub_id = "));
    q.push_value(id);
    if let Some(owner) = owner {
        q.push(" AND lease_owner = ").push_value(owner);
    }
    executor.rows(q, &STATE_KINDS).await?.first().map(|row| decode_state(row)).transpose()
}

pub async fn delivery_state<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    id: &str,
) -> StoreResult<Option<DeliveryState>> {
    state_where(executor, id, None).await
}

/// One conditional UPDATE: of several nodes claiming at once, the database lets one win.
pub async fn claim<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    id: &str,
    owner: &str,
    now: Timestamp,
    until: Timestamp,
) -> StoreResult<Option<DeliveryState>> {
    let mut q = D::builder("UPDATE subscription_delivery SET lease_owner = ");
    q.push_value(owner).push(", lease_until = ").push_value(until.as_microsecond());
    q.push(" WHERE sub_id = ").push_value(id);
    q.push(" AND (lease_until <= ").push_value(now.as_microsecond());
    q.push(" OR lease_owner = ").push_value(owner).push(")");
    if executor.execute(q).await? == 0 {
        return Ok(None);
    }
    state_where(executor, id, Some(owner)).await
}

/// Run inside one transaction by the backend.
pub async fn append_notifications<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    id: &str,
    owner: &str,
    matched_through: u64,
    events: &[NewNotification],
) -> StoreResult<Option<DeliveryState>> {
    let Some(state) = state_where(executor, id, Some(owner)).await? else {
        return Ok(None);
    };
    for (offset, event) in (1..).zip(events) {
        let mut q = D::builder(format!("INSERT INTO subscription_event (sub_id, {EVENT_COLUMNS}) VALUES ("));
        q.push_value(id).push(", ").push_value(signed(state.events_total + offset));
        q.push(", ").push_value(signed(event.outbox_seq));
        q.push(", ").push_value(event.focus_type.as_str());
        q.push(", ").push_value(event.focus_id.as_str());
        match event.focus_version {
            Some(version) => q.push(", ").push_value(signed(version)),
            None => q.push(", NULL"),
        };
        q.push(", ").push_value(event.occurred_at.as_microsecond()).push(")");
        executor.execute(q).await?;
    }
    let mut q = D::builder("UPDATE subscription_delivery SET matched_through = ");
    q.push_value(signed(matched_through));
    q.push(", events_total = ").push_value(signed(state.events_total + events.len() as u64));
    q.push(" WHERE sub_id = ").push_value(id);
    executor.execute(q).await?;
    state_where(executor, id, Some(owner)).await
}

pub async fn notifications<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    id: &str,
    from: u64,
    until: u64,
    limit: usize,
) -> StoreResult<Vec<Notification>> {
    let mut q = D::builder(format!("SELECT {EVENT_COLUMNS} FROM subscription_event WHERE sub_id = "));
    q.push_value(id);
    q.push(" AND number >= ").push_value(signed(from));
    q.push(" AND number <= ").push_value(signed(until));
    q.push(" ORDER BY number LIMIT ").push_value(signed(limit as u64));
    executor.rows(q, &EVENT_KINDS).await?.iter().map(|row| decode_notification(row)).collect()
}

pub async fn finish<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    id: &str,
    owner: &str,
    attempt: &AttemptRecord,
) -> StoreResult<()> {
    let mut q = D::builder("UPDATE subscription_delivery SET delivered_through = ");
    q.push_value(signed(attempt.delivered_through));
    q.push(", failures = ").push_value(i64::from(attempt.failures));
    q.push(", next_attempt = ").push_value(attempt.next_attempt.as_microsecond());
    match attempt.last_delivery {
        Some(at) => q.push(", last_delivery = ").push_value(at.as_microsecond()),
        None => q.push(", last_delivery = NULL"),
    };
    match &attempt.last_error {
        Some(error) => q.push(", last_error = ").push_value(error.as_str()),
        None => q.push(", last_error = NULL"),
    };
    q.push(", lease_owner = NULL, lease_until = 0 WHERE sub_id = ").push_value(id);
    q.push(" AND lease_owner = ").push_value(owner);
    executor.execute(q).await.map(|_| ())
}
