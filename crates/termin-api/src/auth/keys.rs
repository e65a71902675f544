//! The identity provider's signing keys: from a JWKS file, or found by OpenID discovery
//! (`{issuer}/.well-known/openid-configuration` → `jwks_uri`), cached, fetched again when a
//! token names an unknown key, and kept while the provider cannot be reached.

use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};

/// Discovered keys are fetched again after this long, on the next request that needs them.
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);

/// Tokens naming an unknown key fetch the keys at most this often, so that made-up key ids
/// cannot make Termin hammer the provider.
const UNKNOWN_KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// How long one request to the provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The parts of the provider's OpenID configuration Termin uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: Option<String>,
    pub jwks_uri: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub introspection_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
}

pub enum KeySource {
    /// `--auth-jwks`: fixed keys, no discovery.
    File(JwkSet),
    Discovery(Box<Discovery>),
}

impl KeySource {
    pub fn from_file(path: &Path) -> Result<KeySource, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read auth-jwks {}: {e}", path.display()))?;
        let keys: JwkSet =
            serde_json::from_str(&text).map_err(|e| format!("auth-jwks {} is not a JWK set: {e}", path.display()))?;
        if keys.keys.is_empty() {
            return Err(format!("auth-jwks {} holds no keys", path.display()));
        }
        Ok(KeySource::File(keys))
    }

    /// The current keys; with `unknown_kid`, discovery first fetches them again (rate-limited).
    pub async fn keys(&self, unknown_kid: bool) -> Option<JwkSet> {
        match self {
            KeySource::File(keys) => Some(keys.clone()),
            KeySource::Discovery(discovery) => discovery.keys(unknown_kid).await,
        }
    }

    /// The provider's endpoints, when discovered.
    pub async fn metadata(&self) -> Option<ProviderMetadata> {
        match self {
            KeySource::File(_) => None,
            KeySource::Discovery(discovery) => {
                discovery.keys(false).await;
                discovery.cache.read().await.as_ref().map(|c| c.metadata.clone())
            }
        }
    }
}

struct Cached {
    keys: JwkSet,
    metadata: ProviderMetadata,
    fetched: Instant,
}

pub struct Discovery {
    issuer: String,
    client: reqwest::Client,
    cache: RwLock<Option<Cached>>,
    /// When keys were last fetched because of an unknown key id; the lock also makes one
    /// request fetch while the others wait for its result.
    last_refetch: Mutex<Option<Instant>>,
}

impl Discovery {
    pub fn new(issuer: &str) -> Result<Discovery, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for OpenID discovery: {e}"))?;
        Ok(Discovery {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client,
            cache: RwLock::new(None),
            last_refetch: Mutex::new(None),
        })
    }

    /// Fetches the configuration and keys once at start-up; a failure is logged, not fatal
    /// (requests try again).
    pub async fn prefetch(&self) {
        self.keys(false).await;
    }

    async fn keys(&self, unknown_kid: bool) -> Option<JwkSet> {
        {
            let cache = self.cache.read().await;
            if let Some(cached) = cache.as_ref()
                && !unknown_kid
                && cached.fetched.elapsed() < KEYS_MAX_AGE
            {
                return Some(cached.keys.clone());
            }
        }
        let mut last_refetch = self.last_refetch.lock().await;
        let cached_at = self.cache.read().await.as_ref().map(|c| c.fetched);
        let due = match cached_at {
            None => true,
            Some(fetched) if fetched.elapsed() >= KEYS_MAX_AGE => true,
            // Another request may have fetched while this one waited for the lock.
            Some(_) if unknown_kid => last_refetch.is_none_or(|t| t.elapsed() >= UNKNOWN_KEY_REFETCH_INTERVAL),
            Some(_) => false,
        };
        if due {
            if unknown_kid {
                *last_refetch = Some(Instant::now());
            }
            match self.fetch().await {
                Ok((metadata, keys)) => {
                    *self.cache.write().await = Some(Cached {
                        keys,
                        metadata,
                        fetched: Instant::now(),
                    });
                }
                // The cached keys stay in use while the provider is down.
                Err(error) => tracing::warn!(issuer = %self.issuer, %error, "cannot fetch the identity provider's keys"),
            }
        }
        self.cache.read().await.as_ref().map(|c| c.keys.clone())
    }

    async fn fetch(&self) -> Result<(ProviderMetadata, JwkSet), String> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let metadata: ProviderMetadata = self.get_json(&url).await?;
        if let Some(issuer) = &metadata.issuer
            && issuer.trim_end_matches('/') != self.issuer
        {
            return Err(format!("{url} names the issuer {issuer:?}, not {:?}", self.issuer));
        }
        let keys: JwkSet = self.get_json(&metadata.jwks_uri).await?;
        Ok((metadata, keys))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self.client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()));
        }
        response.json().await.map_err(|e| format!("GET {url}: {e}"))
    }
}
