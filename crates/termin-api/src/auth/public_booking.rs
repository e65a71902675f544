//! Anonymous booking (`--public-booking`, with authorization on): `$hold` and `$book` without a
//! token, rate-limited per client address, and the Appointment such a booking made reachable
//! only with its access secret (header [`ACCESS_SECRET`]): read, update (cancel, move) and
//! PATCH of that one Appointment. A wrong secret answers as an unknown Appointment does (404).

use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use termin_fhir::{Issue, IssueCode};

/// Header carrying an Appointment's access secret (from an anonymous `$book`).
pub const ACCESS_SECRET: &str = "x-access-secret";

/// Default of `--public-booking-limit`: anonymous `$hold` and `$book` per client address and hour.
pub const DEFAULT_LIMIT_PER_HOUR: u32 = 60;

/// Client addresses whose buckets are remembered at most; when more ask, the full (idle)
/// buckets are forgotten first, which changes nothing for them.
const MAX_TRACKED: usize = 100_000;

/// `--public-booking` with its rate limit: a token bucket per client address holding up to
/// `limit` requests and refilled by `limit` per hour, so a client may book in a burst and
/// then at the hourly rate.
pub struct PublicBooking {
    limit: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl PublicBooking {
    pub fn new(limit_per_hour: u32) -> Self {
        PublicBooking { limit: limit_per_hour.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    fn per_second(&self) -> f64 {
        f64::from(self.limit) / 3600.0
    }

    /// Takes one request from `address`'s bucket: `Err` with how long until the next one is
    /// allowed when it is empty.
    pub fn admit(&self, address: &str, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.limit);
        let rate = self.per_second();
        let refilled = |bucket: &Bucket| (bucket.tokens + now.saturating_duration_since(bucket.updated).as_secs_f64() * rate).min(capacity);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(address) {
            buckets.retain(|_, bucket| refilled(bucket) < capacity);
            if buckets.len() >= MAX_TRACKED {
                // Every tracked address is being limited right now: they all start afresh
                // rather than memory growing without bound.
                buckets.clear();
            }
        }
        let bucket = buckets.entry(address.to_owned()).or_insert(Bucket { tokens: capacity, updated: now });
        let tokens = refilled(bucket);
        if tokens >= 1.0 {
            *bucket = Bucket { tokens: tokens - 1.0, updated: now };
            Ok(())
        } else {
            *bucket = Bucket { tokens, updated: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / rate))
        }
    }
}

/// The access secret the request presents, if any.
pub fn access_secret(headers: &HeaderMap) -> Option<&str> {
    headers.get(ACCESS_SECRET).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

/// 429 with `Retry-After` (whole seconds, rounded up).
pub fn too_many_requests(retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let why = format!(
        "Too many holds and bookings without an access token from this address; try again in {seconds} seconds"
    );
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, Issue::error(IssueCode::Throttled, why)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// 404, as for an Appointment that does not exist: a wrong secret reveals nothing.
pub fn not_found(id: &str) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, Issue::error(IssueCode::NotFound, format!("Appointment/{id} is not known")))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_burst_then_the_hourly_rate() {
        let limiter = PublicBooking::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit("10.0.0.1", start), Ok(()));
        }
        let wait = limiter.admit("10.0.0.1", start).unwrap_err();
        assert_eq!(wait.as_secs(), 1200, "one request per 20 minutes at 3 per hour");
        assert_eq!(limiter.admit("10.0.0.2", start), Ok(()), "another address has its own bucket");
        assert!(limiter.admit("10.0.0.1", start + Duration::from_secs(1199)).is_err());
        assert_eq!(limiter.admit("10.0.0.1", start + Duration::from_secs(1201)), Ok(()));
        assert!(limiter.admit("10.0.0.1", start + Duration::from_secs(1202)).is_err());
    }

    #[test]
    fn the_answer_says_when_to_retry() {
        let response = too_many_requests(Duration::from_millis(1500));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
