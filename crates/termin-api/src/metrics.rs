//! Prometheus metrics at `GET /metrics`. Any crate of the process records through the
//! `metrics` facade; this module installs the process-wide recorder, counts and times every
//! request by FHIR interaction, and renders the Prometheus text format. Each node reports its
//! own counters; Prometheus sums them over the nodes.

use crate::SharedState;
use crate::operations::OPERATIONS;
use crate::registry::Interaction;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::borrow::Cow;
use std::time::{Duration, Instant};

const REQUEST_DURATION: &str = "termin_http_request_duration_seconds";

/// Request latency buckets, in seconds.
const DURATION_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// How often recorded histogram samples are folded into their buckets between scrapes, so
/// that an unscraped node does not accumulate them.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

type Sampler = Box<dyn Fn() + Send + Sync>;

pub struct Metrics {
    handle: PrometheusHandle,
    /// Refresh gauges that are read off something at scrape time (the database pool).
    samplers: Vec<Sampler>,
}

impl Metrics {
    /// Installs the process-wide recorder; there can be only one per process.
    pub fn install() -> Result<Metrics, String> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &DURATION_BUCKETS)
            .and_then(|builder| builder.install_recorder())
            .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
        Ok(Metrics {
            handle,
            samplers: Vec::new(),
        })
    }

    /// Runs `sampler` before every scrape.
    pub fn sample_on_scrape(mut self, sampler: impl Fn() + Send + Sync + 'static) -> Self {
        self.samplers.push(Box::new(sampler));
        self
    }

    /// Folds recorded samples in periodically; runs until the process ends.
    pub fn upkeep(&self) -> impl Future<Output = ()> + Send + 'static {
        let handle = self.handle.clone();
        async move {
            let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                ticks.tick().await;
                handle.run_upkeep();
            }
        }
    }

    fn render(&self) -> String {
        for sample in &self.samplers {
            sample();
        }
        self.handle.render()
    }
}

/// `GET /metrics`
pub async fn endpoint(State(state): State<SharedState>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts and times every request by interaction; 409s are also counted as conflicts.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let interaction = interaction(request.method(), route.as_deref(), request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    metrics::histogram!(REQUEST_DURATION, "interaction" => interaction.clone()).record(started.elapsed().as_secs_f64());
    metrics::counter!("termin_http_requests_total", "interaction" => interaction.clone(), "status" => status.as_str().to_owned())
        .increment(1);
    if status == StatusCode::CONFLICT {
        metrics::counter!("termin_conflicts_total", "interaction" => interaction).increment(1);
    }
    response
}

/// The metric label of a request: the FHIR interaction code, `$operation` for the operations
/// Termin serves, the system endpoint's name, or `other` (labels stay a small fixed set).
fn interaction(method: &Method, route: Option<&str>, path: &str) -> Cow<'static, str> {
    let last_segment = path.rsplit('/').next().unwrap_or_default();
    if let Some(code) = last_segment.strip_prefix('$') {
        return match OPERATIONS.iter().find(|op| op.code == code) {
            Some(op) => Cow::Owned(format!("${}", op.code)),
            None => Cow::Borrowed("operation"),
        };
    }
    let interaction = match (method, route.unwrap_or_default()) {
        (_, "/health") => return Cow::Borrowed("health"),
        (_, "/ready") => return Cow::Borrowed("ready"),
        (_, "/metrics") => return Cow::Borrowed("metrics"),
        (_, "/fhir/metadata" | "/fhir" | "/fhir/") => return Cow::Borrowed("capabilities"),
        (&Method::GET, "/fhir/{type}/{id}") => Interaction::Read,
        (&Method::GET, "/fhir/{type}/{id}/_history/{vid}") => Interaction::Vread,
        (&Method::PUT, "/fhir/{type}/{id}" | "/fhir/{type}") => Interaction::Update,
        (&Method::PATCH, "/fhir/{type}/{id}") => Interaction::Patch,
        (&Method::DELETE, "/fhir/{type}/{id}" | "/fhir/{type}") => Interaction::Delete,
        (&Method::GET, "/fhir/{type}/{id}/_history") => Interaction::HistoryInstance,
        (&Method::GET, "/fhir/{type}/_history") => Interaction::HistoryType,
        (&Method::POST, "/fhir/{type}") => Interaction::Create,
        (&Method::GET, "/fhir/{type}") | (&Method::POST, "/fhir/{type}/_search") => Interaction::SearchType,
        _ => return Cow::Borrowed("other"),
    };
    Cow::Borrowed(interaction.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_by_interaction() {
        assert_eq!(interaction(&Method::GET, Some("/fhir/{type}/{id}"), "/fhir/Slot/1"), "read");
        assert_eq!(interaction(&Method::PUT, Some("/fhir/{type}"), "/fhir/Patient"), "update");
        assert_eq!(interaction(&Method::POST, Some("/fhir/{type}/{id}"), "/fhir/Slot/$hold"), "$hold");
        assert_eq!(interaction(&Method::POST, Some("/fhir/{type}/{id}/{operation}"), "/fhir/Slot/1/$hold"), "$hold");
        assert_eq!(interaction(&Method::POST, Some("/fhir/{type}/{id}"), "/fhir/Slot/$nonsense"), "operation");
        assert_eq!(interaction(&Method::GET, None, "/nowhere"), "other");
    }
}
