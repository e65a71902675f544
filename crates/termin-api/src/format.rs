//! The format layer: request content types and size limits, JSON and XML parsing, response
//! negotiation (`Accept`, `_format`, `_pretty`) and rendering. FHIR XML is converted from and
//! to FHIR JSON by `termin-xml` at this boundary; everything behind it sees JSON only.

use crate::bundle::Searchset;
use crate::error::ApiError;
use crate::{ApiConfig, SharedState, query::query_pairs};
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use termin_fhir::json::{check_content, parse_resource, parse_value};
use termin_fhir::{Issue, IssueCode};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
pub const FHIR_XML: &str = "application/fhir+xml; charset=utf-8";

/// The two FHIR formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Syntax {
    #[default]
    Json,
    Xml,
}

/// The format a media type or `_format` value names (R5 http.html: `json`, `xml` and the
/// JSON and XML media types all mean FHIR); `None` for others. XML counts only when the
/// server has it (a converter is installed).
fn syntax_of(media: &str) -> Option<Syntax> {
    match media {
        "json" | "application/json" | "application/fhir+json" | "application/json+fhir" => Some(Syntax::Json),
        "xml" | "text/xml" | "application/xml" | "application/fhir+xml" | "application/xml+fhir"
            if termin_xml::offered() =>
        {
            Some(Syntax::Xml)
        }
        _ => None,
    }
}

/// The CapabilityStatement's `format`: what [`syntax_of`] accepts, by media type and short name.
pub fn offered_formats() -> Vec<&'static str> {
    let mut formats = vec!["application/fhir+json", "json"];
    if termin_xml::offered() {
        formats.extend(["application/fhir+xml", "xml"]);
    }
    formats
}

/// The media type of a header value or `_format` (parameters dropped, lower case). An
/// unencoded '+' in `_format=application/fhir+json` arrives as a space.
fn media_of(value: &str) -> String {
    value.split(';').next().unwrap_or_default().trim().replace(' ', "+").to_ascii_lowercase()
}

/// The request body's media type, if it has a Content-Type.
fn content_media(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).map(|v| media_of(v.to_str().unwrap_or_default()))
}

/// How the response body is written, negotiated from `_format`, `Accept` and `_pretty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseFormat {
    pub pretty: bool,
    pub syntax: Syntax,
}

fn not_acceptable(asked: &str) -> ApiError {
    let offered = if termin_xml::offered() {
        "FHIR JSON (application/fhir+json) and FHIR XML (application/fhir+xml)"
    } else {
        "FHIR JSON (application/fhir+json)"
    };
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        Issue::error(IssueCode::NotSupported, format!("Cannot answer in {asked}; this server speaks {offered}")),
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
            let media = media_of(&asked);
            format.syntax = match media.as_str() {
                "*/*" | "application/*" => Syntax::Json,
                media => syntax_of(media).ok_or_else(|| not_acceptable(&asked))?,
            };
            return Ok(format);
        }
        let accept: Vec<&str> = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter(|item| !item.trim().is_empty())
            .collect();
        // The acceptable item of the highest quality, the first of equals; a wildcard (or no
        // Accept at all) leaves the choice to the server: the request body's format, else JSON.
        let mut best: Option<(f32, Option<Syntax>)> = None;
        for item in &accept {
            let mut parts = item.split(';');
            let media = media_of(parts.next().unwrap_or_default());
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let candidate = match media.as_str() {
                "*/*" | "application/*" => None,
                media => match syntax_of(media) {
                    Some(syntax) => Some(syntax),
                    None => continue,
                },
            };
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, candidate));
            }
        }
        format.syntax = match best {
            Some((_, Some(syntax))) => syntax,
            Some((_, None)) => content_media(headers).and_then(|m| syntax_of(&m)).unwrap_or_default(),
            None if accept.is_empty() => content_media(headers).and_then(|m| syntax_of(&m)).unwrap_or_default(),
            None => return Err(not_acceptable(&accept.join(","))),
        };
        Ok(format)
    }

    /// The body and its Content-Type. A resource without an XML form (only possible for content
    /// stored without validation) answers 406.
    fn render(self, value: &Value) -> Result<(String, &'static str), ApiError> {
        match self.syntax {
            Syntax::Json if self.pretty => Ok((serde_json::to_string_pretty(value).unwrap_or_default(), FHIR_JSON)),
            Syntax::Json => Ok((value.to_string(), FHIR_JSON)),
            Syntax::Xml => {
                let converter = termin_xml::installed().map_err(|why| {
                    ApiError::new(
                        StatusCode::NOT_ACCEPTABLE,
                        Issue::error(IssueCode::NotSupported, format!("FHIR XML is not available: {why}")),
                    )
                })?;
                let xml = converter.to_xml(value, self.pretty).map_err(|issue| {
                    ApiError::new(
                        StatusCode::NOT_ACCEPTABLE,
                        Issue {
                            diagnostics: format!("The response has no FHIR XML form: {}", issue.diagnostics),
                            code: IssueCode::NotSupported,
                            ..issue
                        },
                    )
                })?;
                Ok((xml, FHIR_XML))
            }
        }
    }
}

/// Middleware: renders error OperationOutcomes in the format the request asked for, so that
/// errors raised before a handler ran (extractors, routing) are in that format too. When the
/// negotiation itself failed, the error stays JSON.
pub async fn render_errors(request: Request, next: axum::middleware::Next) -> Response {
    let format = ResponseFormat::negotiate(request.uri().query(), request.headers()).unwrap_or_default();
    let mut response = next.run(request).await;
    if format != ResponseFormat::default()
        && let Some(outcome) = response.extensions_mut().remove::<crate::error::ErrorOutcome>()
        && let Ok((body, content_type)) = format.render(&outcome.0)
    {
        *response.body_mut() = Body::from(body);
        response.headers_mut().remove(header::CONTENT_LENGTH);
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for ResponseFormat {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        ResponseFormat::negotiate(parts.uri.query(), &parts.headers)
    }
}

/// A request body holding one FHIR resource, in FHIR JSON or (converted to JSON) FHIR XML.
/// A body without a Content-Type is XML when it starts with `<`.
pub struct FhirBody(pub Map<String, Value>);

impl FromRequest<SharedState> for FhirBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        /// Larger bodies are parsed on a blocking thread: a megabyte of JSON takes milliseconds
        /// of CPU that the async workers owe to other requests.
        const PARSE_INLINE_BYTES: usize = 64 * 1024;
        let declared = match content_media(request.headers()) {
            None => None,
            Some(media) => Some(syntax_of(&media).ok_or_else(|| {
                let xml = if termin_xml::offered() { " or application/fhir+xml" } else { "" };
                unsupported_media(&media, &format!("application/fhir+json{xml}"))
            })?),
        };
        let bytes = read_limited(request, &state.config).await?;
        let syntax = declared.unwrap_or_else(|| {
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first == Some(&b'<') && termin_xml::offered() { Syntax::Xml } else { Syntax::Json }
        });
        // XML always goes to a blocking thread: its first use may load the R5 definitions.
        let inline = syntax == Syntax::Json && bytes.len() <= PARSE_INLINE_BYTES;
        let parse = move || match syntax {
            Syntax::Json => parse_resource(&bytes),
            Syntax::Xml => parse_xml_resource(&bytes),
        };
        let parsed = if inline {
            parse()
        } else {
            tokio::task::spawn_blocking(parse).await.map_err(|e| {
                ApiError::from(termin_domain::DomainError::Internal(format!("parsing the body failed: {e}")))
            })?
        };
        parsed.map(FhirBody).map_err(ApiError::bad_request)
    }
}

/// One FHIR resource from an XML body, within the content limits JSON bodies keep.
fn parse_xml_resource(bytes: &[u8]) -> Result<Map<String, Value>, Issue> {
    let converter = termin_xml::installed()
        .map_err(|why| Issue::error(IssueCode::NotSupported, format!("FHIR XML is not available: {why}")))?;
    let resource = converter.from_xml(bytes)?;
    check_content(&resource)?;
    Ok(resource)
}

fn unsupported_media(media: &str, send: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Issue::error(IssueCode::NotSupported, format!("Content-Type {media:?} is not supported here; send {send}")),
    )
}

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
    if let Some(media) = content_media(request.headers())
        && !accepted.contains(&media.as_str())
    {
        return Err(unsupported_media(&media, accepted[0]));
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
    /// A searchset whose stored resources are spliced in unparsed when possible.
    Searchset(Searchset),
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

    pub fn searchset(mut self, bundle: Searchset) -> Self {
        self.payload = Some(Payload::Searchset(bundle));
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }
}

/// The `Link` header (RFC 8288) mirroring a Bundle's `link`s (`self`, `next`, `previous`), for
/// clients that page by the header.
fn link_header(value: &Value) -> Option<HeaderValue> {
    if value.get("resourceType")? != "Bundle" {
        return None;
    }
    link_header_of(value.get("link")?)
}

/// The `Link` header of a Bundle's `link` array.
fn link_header_of(links: &Value) -> Option<HeaderValue> {
    let links: Vec<String> = links
        .as_array()?
        .iter()
        .filter_map(|link| Some(format!("<{}>; rel=\"{}\"", link.get("url")?.as_str()?, link.get("relation")?.as_str()?)))
        .collect();
    if links.is_empty() {
        return None;
    }
    HeaderValue::from_str(&links.join(", ")).ok()
}

impl IntoResponse for FhirResponse {
    fn into_response(self) -> Response {
        let link = match &self.payload {
            Some(Payload::Json(value)) => link_header(value),
            Some(Payload::Searchset(bundle)) => link_header_of(&bundle.links),
            _ => None,
        };
        let rendered = match self.payload {
            None => None,
            Some(Payload::Json(value)) => Some(self.format.render(&value)),
            Some(Payload::Stored(text)) if self.format == ResponseFormat::default() => Some(Ok((text, FHIR_JSON))),
            Some(Payload::Stored(text)) => match termin_fhir::json::parse_stored(&text) {
                Ok(value) => Some(self.format.render(&value)),
                Err(_) => Some(Ok((text, FHIR_JSON))),
            },
            Some(Payload::Searchset(bundle)) if self.format == ResponseFormat::default() => {
                Some(Ok((bundle.to_json_text(), FHIR_JSON)))
            }
            Some(Payload::Searchset(bundle)) => Some(bundle.into_value().and_then(|value| self.format.render(&value))),
        };
        let mut response = match rendered {
            Some(Ok((body, content_type))) => {
                let mut response = Response::new(Body::from(body));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                response
            }
            Some(Err(error)) => return error.into_response(),
            None => Response::new(Body::empty()),
        };
        *response.status_mut() = self.status;
        if let Some(link) = link {
            response.headers_mut().insert(header::LINK, link);
        }
        response.headers_mut().extend(self.headers);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XML is offered once a converter is installed (the server installs one at start-up).
    fn offer_xml() {
        termin_xml::install_on_first_use(|| {
            let cache = termin_search::default_package_cache();
            termin_xml::XmlConverter::load(cache.as_deref()).map_err(|e| e.to_string())
        });
    }

    fn negotiate_with(query: Option<&str>, accept: Option<&str>, content_type: Option<&str>) -> Result<Syntax, StatusCode> {
        offer_xml();
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, accept.parse().unwrap());
        }
        if let Some(content_type) = content_type {
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        }
        ResponseFormat::negotiate(query, &headers).map(|f| f.syntax).map_err(|e| e.status)
    }

    fn negotiate(query: Option<&str>, accept: Option<&str>) -> Result<Syntax, StatusCode> {
        negotiate_with(query, accept, None)
    }

    #[test]
    fn negotiates_json_and_xml_by_format_and_accept() {
        use Syntax::{Json, Xml};
        assert_eq!(negotiate(None, None), Ok(Json));
        assert_eq!(negotiate(None, Some("text/html,application/xhtml+xml,*/*;q=0.8")), Ok(Json));
        assert_eq!(negotiate(None, Some("application/fhir+json")), Ok(Json));
        assert_eq!(negotiate(None, Some("application/fhir+xml")), Ok(Xml));
        assert_eq!(negotiate(None, Some("text/xml")), Ok(Xml));
        assert_eq!(negotiate(None, Some("application/xml;q=0.5, application/fhir+json;q=0.9")), Ok(Json));
        assert_eq!(negotiate(None, Some("application/fhir+json;q=0, application/fhir+xml;q=0.1")), Ok(Xml));
        assert_eq!(negotiate(None, Some("text/html, application/fhir+xml;q=0.2")), Ok(Xml));
        assert_eq!(negotiate(None, Some("text/html")), Err(StatusCode::NOT_ACCEPTABLE));
        assert_eq!(negotiate(None, Some("application/fhir+xml;q=0")), Err(StatusCode::NOT_ACCEPTABLE));
        assert_eq!(negotiate(Some("_format=xml"), None), Ok(Xml));
        assert_eq!(negotiate(Some("_format=application/fhir+xml"), Some("application/fhir+json")), Ok(Xml));
        assert_eq!(negotiate(Some("_format=application%2Ffhir%2Bjson"), Some("application/xml")), Ok(Json));
        assert_eq!(negotiate(Some("_format=turtle"), None), Err(StatusCode::NOT_ACCEPTABLE));
        // Without a preference, the answer comes in the format of the request body.
        assert_eq!(negotiate_with(None, None, Some("application/fhir+xml")), Ok(Xml));
        assert_eq!(negotiate_with(None, Some("*/*"), Some("application/xml; charset=utf-8")), Ok(Xml));
        assert_eq!(negotiate_with(None, Some("application/json"), Some("application/fhir+xml")), Ok(Json));
    }

    #[test]
    fn pretty_is_independent_of_the_format() {
        offer_xml();
        let headers = HeaderMap::new();
        assert!(ResponseFormat::negotiate(Some("_pretty=true"), &headers).unwrap().pretty);
        assert!(ResponseFormat::negotiate(Some("_pretty=true&_format=xml"), &headers).unwrap().pretty);
    }
}
