//! The reads by key of [`ResourceStore`], the same on every backend: [`resource_store!`]
//! writes a backend's `impl ResourceStore` with them, around the methods the backend owns.
//!
//! [`ResourceStore`]: termin_store::ResourceStore
//! [`resource_store!`]: crate::resource_store

/// What [`resource_store!`](crate::resource_store) and
/// [`notification_store!`](crate::notification_store) name in the crate that invokes them.
#[doc(hidden)]
pub mod support {
    pub use async_trait::async_trait;
    pub use jiff::Timestamp;
    pub use termin_fhir::ResourceType;
    pub use termin_store::{
        AttemptRecord, ClaimedMail, DeliveryState, DomainEvent, LeaseStore, MailOutcome, MailStore, NewNotification,
        Notification, NotificationStore, OutgoingMail, RequestContext, ResourceStore, ResourceVersion, SlotHold,
        StoreResult,
    };
}

/// `impl ResourceStore for $store` (in dialect `$dialect`): reads of a version, of holds,
/// outbox events and the index fingerprint run the shared statements on a pooled connection
/// from the store's `async fn reader(&self) -> StoreResult<PoolConnection<_>>`; the methods
/// in braces (the current version, search, history, units of work, readiness) are the
/// backend's own.
#[macro_export]
macro_rules! resource_store {
    ($store:ty, $dialect:ty, { $($own:tt)* }) => {
        #[$crate::support::async_trait]
        impl $crate::support::ResourceStore for $store {
            async fn read_version(
                &self,
                _ctx: &$crate::support::RequestContext,
                resource_type: $crate::support::ResourceType,
                id: &str,
                version: u64,
            ) -> $crate::support::StoreResult<Option<$crate::support::ResourceVersion>> {
                Ok($crate::read_version::<$dialect, _>(&mut $crate::Sqlx::<$dialect>(&mut *self.reader().await?), resource_type, id, version).await?)
            }

            async fn search_index_fingerprint(&self) -> $crate::support::StoreResult<Option<String>> {
                Ok($crate::search_index_fingerprint::<$dialect, _>(&mut $crate::Sqlx::<$dialect>(&mut *self.reader().await?)).await?)
            }

            async fn holds(
                &self,
                _ctx: &$crate::support::RequestContext,
                slot_ids: &[String],
            ) -> $crate::support::StoreResult<Vec<$crate::support::SlotHold>> {
                Ok($crate::holds::<$dialect, _>(&mut $crate::Sqlx::<$dialect>(&mut *self.reader().await?), slot_ids).await?)
            }

            /// Candidates only: where several nodes sweep, each may list the same holds; each
            /// release re-checks the hold in its own unit of work, so a hold is released once.
            async fn expired_holds(
                &self,
                now: $crate::support::Timestamp,
                limit: usize,
            ) -> $crate::support::StoreResult<Vec<$crate::support::SlotHold>> {
                Ok($crate::expired_holds::<$dialect, _>(&mut $crate::Sqlx::<$dialect>(&mut *self.reader().await?), now, limit).await?)
            }

            async fn events(
                &self,
                after: u64,
                limit: usize,
            ) -> $crate::support::StoreResult<Vec<(u64, $crate::support::DomainEvent)>> {
                Ok($crate::events::<$dialect, _>(&mut $crate::Sqlx::<$dialect>(&mut *self.reader().await?), after, limit).await?)
            }

            $($own)*
        }
    };
}
