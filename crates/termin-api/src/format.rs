//! The format layer: request content types and size limits, JSON parsing, response
//! negotiation (`Accept`, `_format`, `_pretty`) and rendering. XML will plug in here.

use crate::error::ApiError;
use crate::{ApiConfig, SharedState, query::query_pairs};
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use termin_fhir::json::{parse_resource, parse_value};
use termin_fhir::{Issue, IssueCode};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// How the response body is written, negotiated from `_format`, `Accept` and `_pretty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseFormat {
    pub pretty: bool,
}

fn is_json_media(media: &str) -> bool {
    matches!(
        media,
        "json" | "application/json" | "application/fhir+json" | "application/json+fhir" | "*/*" | "application/*"
    )
}

fn not_acceptable(asked: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        Issue::error(
            IssueCode::NotSupported,
            format!("Cannot answer in {asked}; this server speaks FHIR JSON (application/fhir+json)"),
        ),
    )
}

impl ResponseFormat {
    fn negotiate(query: Option<&str>, headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut format = ResponseFormat::default();
        let mut explicit_format = None;
        for (name, value) in query_pairs(query) {
            match name.as_ref() {
                "_format" => explicit_format = Some(value.into_owned()),
                "_pretty" => format.pretty = value == "true",
                _ => {}
            }
        }
        if let Some(asked) = explicit_format {
            // An unencoded '+' in `_format=application/fhir+json` arrives as a space.
            let media = asked.split(';').next().unwrap_or_default().trim().replace(' ', "+").to_ascii_lowercase();
            return if is_json_media(&media) { Ok(format) } else { Err(not_acceptable(&asked)) };
        }
        let accept: Vec<&str> = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let acceptable = accept.is_empty()
            || accept.iter().any(|item| {
                let media = item.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                is_json_media(&media)
            });
        if acceptable { Ok(format) } else { Err(not_acceptable(&accept.join(","))) }
    }

    fn render(self, value: &Value) -> String {
        if self.pretty {
            serde_json::to_string_pretty(value).unwrap_or_default()
        } else {
            value.to_string()
        }
    }
}

/// Middleware: renders error OperationOutcomes in the format the request asked for, so that
/// errors raised before a handler ran (extractors, routing) honour `_pretty` too.
pub async fn render_errors(request: Request, next: axum::middleware::Next) -> Response {
    let pretty = ResponseFormat::negotiate(request.uri().query(), request.headers())
        .map(|f| f.pretty)
        .unwrap_or(false);
    let mut response = next.run(request).await;
    if pretty && let Some(outcome) = response.extensions_mut().remove::<crate::error::ErrorOutcome>() {
        let body = ResponseFormat { pretty }.render(&outcome.0);
        *response.body_mut() = Body::from(body);
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for ResponseFormat {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        ResponseFormat::negotiate(parts.uri.query(), &parts.headers)
    }
}

/// A request body holding one FHIR resource.
pub struct FhirBody(pub Map<String, Value>);

impl FromRequest<SharedState> for FhirBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        /// Larger bodies are parsed on a blocking thread: a megabyte of JSON takes milliseconds
        /// of CPU that the async workers owe to other requests.
        const PARSE_INLINE_BYTES: usize = 64 * 1024;
        let bytes = read_body(request, &state.config, FHIR_JSON_TYPES).await?;
        let parsed = if bytes.len() <= PARSE_INLINE_BYTES {
            parse_resource(&bytes)
        } else {
            tokio::task::spawn_blocking(move || parse_resource(&bytes)).await.map_err(|e| {
                ApiError::from(termin_domain::DomainError::Internal(format!("parsing the body failed: {e}")))
            })?
        };
        parsed.map(FhirBody).map_err(ApiError::bad_request)
    }
}

const FHIR_JSON_TYPES: &[&str] = &["application/fhir+json", "application/json", "application/json+fhir"];

/// The media type of the patch documents `PATCH` takes (the CapabilityStatement's `patchFormat`).
pub const JSON_PATCH: &str = "application/json-patch+json";

/// A request body holding a JSON Patch document (`application/json-patch+json`).
pub struct JsonPatchBody(pub Value);

impl FromRequest<SharedState> for JsonPatchBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, &state.config, &[JSON_PATCH]).await?;
        parse_value(&bytes).map(JsonPatchBody).map_err(ApiError::bad_request)
    }
}

/// Checks the content type and reads the body within the configured size limit.
pub async fn read_body(request: Request, config: &ApiConfig, accepted: &[&str]) -> Result<axum::body::Bytes, ApiError> {
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
        let media = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !accepted.contains(&media.as_str()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Issue::error(
                    IssueCode::NotSupported,
                    format!("Content-Type {media:?} is not supported here; send {}", accepted[0]),
                ),
            ));
        }
    }
    read_limited(request, config).await
}

/// Reads the body within the size limit and the body read timeout, whatever its content type.
pub async fn read_limited(request: Request, config: &ApiConfig) -> Result<axum::body::Bytes, ApiError> {
    let limit = config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Issue::error(IssueCode::TooLong, format!("The request body is larger than the limit of {limit} bytes")),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let reading = axum::body::to_bytes(request.into_body(), limit);
    let read = tokio::time::timeout(config.body_read_timeout, reading).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            Issue::error(
                IssueCode::Timeout,
                format!("The request body did not arrive within {} s", config.body_read_timeout.as_secs_f64()),
            ),
        )
    })?;
    read.map_err(|e| {
        let is_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if is_limit {
            too_large()
        } else {
            ApiError::bad_request(Issue::error(IssueCode::Structure, format!("The request body could not be read: {e}")))
        }
    })
}

/// What a handler answers with.
pub enum Payload {
    Json(Value),
    /// A resource as stored (compact JSON text), sent without re-serializing when possible.
    Stored(String),
}

pub struct FhirResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub payload: Option<Payload>,
    pub format: ResponseFormat,
}

impl FhirResponse {
    pub fn new(status: StatusCode, format: ResponseFormat) -> Self {
        FhirResponse {
            status,
            headers: HeaderMap::new(),
            payload: None,
            format,
        }
    }

    pub fn json(mut self, value: Value) -> Self {
        self.payload = Some(Payload::Json(value));
        self
    }

    pub fn stored(mut self, text: String) -> Self {
        self.payload = Some(Payload::Stored(text));
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }
}

impl IntoResponse for FhirResponse {
    fn into_response(self) -> Response {
        let body = match self.payload {
            None => None,
            Some(Payload::Json(value)) => Some(self.format.render(&value)),
            Some(Payload::Stored(text)) if !self.format.pretty => Some(text),
            Some(Payload::Stored(text)) => match termin_fhir::json::parse_stored(&text) {
                Ok(value) => Some(self.format.render(&value)),
                Err(_) => Some(text),
            },
        };
        let mut response = match body {
            Some(body) => {
                let mut response = Response::new(Body::from(body));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
                response
            }
            None => Response::new(Body::empty()),
        };
        *response.status_mut() = self.status;
        response.headers_mut().extend(self.headers);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(query: Option<&str>, accept: Option<&str>) -> Result<ResponseFormat, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, accept.parse().unwrap());
        }
        ResponseFormat::negotiate(query, &headers)
    }

    #[test]
    fn negotiates_json_and_refuses_xml() {
        assert!(negotiate(None, None).is_ok());
        assert!(negotiate(None, Some("text/html,application/xhtml+xml,*/*;q=0.8")).is_ok());
        assert!(negotiate(None, Some("application/fhir+json")).is_ok());
        assert_eq!(negotiate(None, Some("application/fhir+xml")).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(negotiate(Some("_format=xml"), None).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        assert!(negotiate(Some("_format=application%2Ffhir%2Bjson"), Some("application/xml")).is_ok());
        assert!(negotiate(Some("_pretty=true"), None).unwrap().pretty);
    }
}
