//! One upstream Scheduling Server: its configuration, its credentials and the requests sent to
//! it (each with the upstream's timeout, its credentials and the cascade chain).

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::time::{Duration, Instant};
use termin_fhir::{Issue, IssueCode};
use tokio::sync::Mutex;

/// A configured upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The prefix of its resources' ids at the platform: 1 to 32 of `[A-Za-z0-9-]`.
    pub name: String,
    /// Its FHIR base URL.
    pub url: String,
    pub auth: UpstreamAuth,
    /// How long one request to it may take (connecting included).
    pub timeout: Duration,
    /// Higher first: the order results are interleaved in.
    pub priority: i32,
}

/// How the platform authenticates at an upstream.
#[derive(Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    None,
    /// A static bearer token.
    Bearer(String),
    /// OAuth 2.0 client credentials: tokens fetched from the token endpoint and kept until
    /// shortly before they expire.
    ClientCredentials { token_url: String, client_id: String, client_secret: String, scope: Option<String> },
}

/// Secrets stay out of logs and debug output.
impl std::fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamAuth::None => write!(f, "None"),
            UpstreamAuth::Bearer(_) => write!(f, "Bearer(***)"),
            UpstreamAuth::ClientCredentials { token_url, client_id, scope, .. } => {
                write!(f, "ClientCredentials {{ token_url: {token_url:?}, client_id: {client_id:?}, scope: {scope:?} }}")
            }
        }
    }
}

/// Longest upstream name: the id prefix must leave room for the upstream's own id in FHIR's 64.
pub const MAX_NAME_LEN: usize = 32;

impl UpstreamConfig {
    /// Checks the name and URL; the URL loses a trailing slash.
    pub fn checked(mut self) -> Result<Self, String> {
        let name_ok = (1..=MAX_NAME_LEN).contains(&self.name.len())
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !name_ok {
            return Err(format!(
                "upstream name {:?} must be 1 to {MAX_NAME_LEN} letters, digits or '-' (it prefixes ids as NAME.id)",
                self.name
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!("upstream {} url {:?} must be an http(s) FHIR base URL", self.name, self.url));
        }
        if self.timeout.is_zero() {
            return Err(format!("upstream {} timeout must be longer than zero", self.name));
        }
        self.url = self.url.trim_end_matches('/').to_owned();
        Ok(self)
    }
}

/// An upstream's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as JSON (`None`: empty or not JSON).
    pub body: Option<Value>,
}

/// Why an upstream gave no answer: 504 for a timeout, 502 otherwise, with an issue naming it.
#[derive(Debug, Clone)]
pub struct Unreachable {
    pub status: u16,
    pub issue: Issue,
}

pub struct Upstream {
    pub config: UpstreamConfig,
    token: Mutex<Option<(String, Instant)>>,
}

/// A fetched token is used until this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Self {
        Upstream { config, token: Mutex::new(None) }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn base(&self) -> &str {
        &self.config.url
    }

    fn unreachable(&self, error: &reqwest::Error) -> Unreachable {
        let name = &self.config.name;
        if error.is_timeout() {
            Unreachable {
                status: 504,
                issue: Issue::warning(
                    IssueCode::Timeout,
                    format!("Upstream {name} did not answer within {:?}", self.config.timeout),
                ),
            }
        } else {
            let mut cause = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(inner) = source {
                cause = format!("{cause}: {inner}");
                source = inner.source();
            }
            Unreachable {
                status: 502,
                issue: Issue::warning(IssueCode::Exception, format!("Upstream {name} could not be reached: {cause}")),
            }
        }
    }

    /// The `Authorization` value for a request, fetching a client-credentials token if the
    /// cached one is about to expire.
    async fn authorization(&self, http: &reqwest::Client) -> Result<Option<String>, Unreachable> {
        match &self.config.auth {
            UpstreamAuth::None => Ok(None),
            UpstreamAuth::Bearer(token) => Ok(Some(format!("Bearer {token}"))),
            UpstreamAuth::ClientCredentials { token_url, client_id, client_secret, scope } => {
                let mut cached = self.token.lock().await;
                if let Some((token, until)) = cached.as_ref()
                    && Instant::now() < *until
                {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let form = {
                    let mut form = form_urlencoded::Serializer::new(String::new());
                    form.append_pair("grant_type", "client_credentials");
                    form.append_pair("client_id", client_id);
                    form.append_pair("client_secret", client_secret);
                    if let Some(scope) = scope {
                        form.append_pair("scope", scope);
                    }
                    form.finish()
                };
                let failed = |why: String| Unreachable {
                    status: 502,
                    issue: Issue::warning(
                        IssueCode::Security,
                        format!("No access token for upstream {}: {why}", self.config.name),
                    ),
                };
                let response = http
                    .post(token_url)
                    .timeout(self.config.timeout)
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form)
                    .send()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let status = response.status();
                let body: Value = response.json().await.map_err(|e| failed(e.to_string()))?;
                let token = match body.get("access_token").and_then(Value::as_str) {
                    Some(token) if status.is_success() => token.to_owned(),
                    _ => return Err(failed(format!("the token endpoint answered {status}"))),
                };
                let lifetime = Duration::from_secs(body.get("expires_in").and_then(Value::as_u64).unwrap_or(60));
                let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
                *cached = Some((token.clone(), until));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Sends one request to `{base}/{path}[?query]` with a JSON body, the cascade chain and
    /// `headers` (the ones relayed from the client).
    pub async fn send(
        &self,
        http: &reqwest::Client,
        request: UpstreamRequest<'_>,
    ) -> Result<Answer, Unreachable> {
        let mut url = format!("{}/{}", self.config.url, request.path);
        if let Some(query) = request.query.filter(|q| !q.is_empty()) {
            url = format!("{url}?{query}");
        }
        let mut builder = http
            .request(request.method, &url)
            .timeout(self.config.timeout)
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .header(HeaderName::from_static(crate::via::HEADER), request.via.join(", "));
        let typed = request.headers.iter().any(|(name, _)| name == reqwest::header::CONTENT_TYPE);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if let Some(authorization) = self.authorization(http).await? {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        if let Some(body) = request.body {
            if !typed {
                builder = builder.header(reqwest::header::CONTENT_TYPE, "application/fhir+json");
            }
            builder = builder.body(body.to_string());
        }
        let response = builder.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        let body = (!bytes.is_empty()).then(|| termin_fhir::json::parse_value(&bytes).ok()).flatten();
        Ok(Answer { status, headers, body })
    }
}

/// What [`Upstream::send`] sends.
pub struct UpstreamRequest<'a> {
    pub method: reqwest::Method,
    /// Path below the FHIR base, without a leading slash.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<&'a Value>,
    pub via: &'a [String],
}
