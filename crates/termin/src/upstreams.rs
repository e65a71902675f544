//! The central platform's upstreams from `--upstream NAME=URL` or the config file's
//! `[[upstream]]` tables (which also set auth, timeout and priority).

use jiff::SignedDuration;
use serde::Deserialize;
use termin_platform::{PlatformConfig, UpstreamAuth, UpstreamConfig};

pub const DEFAULT_UPSTREAM_TIMEOUT: &str = "5s";

/// One `[[upstream]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    name: String,
    url: String,
    /// Overrides `upstream_timeout` for this upstream.
    timeout: Option<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    auth: FileAuth,
}

/// `auth = { type = "bearer", token = "..." }` or
/// `auth = { type = "client-credentials", token_url = "...", client_id = "...", client_secret = "...", scope = "..." }`.
#[derive(Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum FileAuth {
    #[default]
    None,
    Bearer { token: String },
    ClientCredentials { token_url: String, client_id: String, client_secret: String, scope: Option<String> },
}

/// What the flags and the config file say about the platform.
pub struct PlatformSettings {
    /// `--upstream NAME=URL`; they replace the file's tables.
    pub flags: Vec<String>,
    pub tables: Vec<FileUpstream>,
    pub timeout: SignedDuration,
    pub name: Option<String>,
    pub directory_ttl: SignedDuration,
    pub slot_ttl: SignedDuration,
}

fn std_duration(name: &str, value: SignedDuration) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from(value).map_err(|e| format!("{name}: {e}"))
}

/// The platform configuration; `None` without upstreams.
pub fn platform_config(settings: PlatformSettings) -> Result<Option<PlatformConfig>, String> {
    let timeout = std_duration("upstream_timeout", settings.timeout)?;
    let upstreams = if settings.flags.is_empty() {
        settings.tables.into_iter().map(|table| from_table(table, timeout)).collect::<Result<Vec<_>, _>>()?
    } else {
        settings.flags.iter().map(|flag| from_flag(flag, timeout)).collect::<Result<Vec<_>, _>>()?
    };
    if upstreams.is_empty() {
        return Ok(None);
    }
    let name = settings.name.unwrap_or_else(|| format!("termin-{}", uuid::Uuid::new_v4().simple()));
    if name.is_empty() || name.contains(',') || !name.is_ascii() {
        return Err(format!("platform_name {name:?} must be ASCII text without commas"));
    }
    Ok(Some(PlatformConfig {
        name,
        upstreams,
        directory_ttl: std_duration("directory_cache_ttl", settings.directory_ttl)?,
        slot_ttl: std_duration("slot_cache_ttl", settings.slot_ttl)?,
    }))
}

fn from_flag(flag: &str, timeout: std::time::Duration) -> Result<UpstreamConfig, String> {
    let (name, url) = flag.split_once('=').ok_or_else(|| format!("--upstream {flag:?} is not NAME=URL"))?;
    UpstreamConfig { name: name.trim().into(), url: url.trim().into(), auth: UpstreamAuth::None, timeout, priority: 0 }
        .checked()
}

fn from_table(table: FileUpstream, default_timeout: std::time::Duration) -> Result<UpstreamConfig, String> {
    let timeout = match table.timeout {
        None => default_timeout,
        Some(text) => {
            let value: SignedDuration =
                text.parse().map_err(|e| format!("upstream {} timeout {text:?} is not a duration: {e}", table.name))?;
            std::time::Duration::try_from(value).map_err(|e| format!("upstream {} timeout: {e}", table.name))?
        }
    };
    let auth = match table.auth {
        FileAuth::None => UpstreamAuth::None,
        FileAuth::Bearer { token } => UpstreamAuth::Bearer(token),
        FileAuth::ClientCredentials { token_url, client_id, client_secret, scope } => {
            UpstreamAuth::ClientCredentials { token_url, client_id, client_secret, scope }
        }
    };
    UpstreamConfig { name: table.name, url: table.url, auth, timeout, priority: table.priority }.checked()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(flags: &[&str], tables: Vec<FileUpstream>, name: Option<&str>) -> PlatformSettings {
        PlatformSettings {
            flags: flags.iter().map(|f| f.to_string()).collect(),
            tables,
            timeout: SignedDuration::from_secs(5),
            name: name.map(str::to_owned),
            directory_ttl: SignedDuration::from_mins(10),
            slot_ttl: SignedDuration::ZERO,
        }
    }

    #[test]
    fn flags_are_name_equals_url() {
        let config = platform_config(settings(&["a=http://a/fhir/"], Vec::new(), Some("p"))).unwrap().unwrap();
        assert_eq!(config.name, "p");
        assert_eq!(config.upstreams[0].url, "http://a/fhir");
        assert_eq!(config.upstreams[0].timeout, std::time::Duration::from_secs(5));
        assert_eq!(config.directory_ttl, std::time::Duration::from_secs(600));
        assert!(platform_config(settings(&["a"], Vec::new(), None)).is_err());
        assert!(platform_config(settings(&["a.b=http://x"], Vec::new(), None)).is_err());
        assert!(platform_config(settings(&[], Vec::new(), None)).unwrap().is_none());
    }

    #[test]
    fn tables_carry_auth_timeout_and_priority() {
        let tables: std::collections::BTreeMap<String, Vec<FileUpstream>> = toml::from_str(
            r#"
            [[upstream]]
            name = "praxis"
            url = "https://praxis.example/fhir"
            timeout = "2s"
            priority = 3
            auth = { type = "client-credentials", token_url = "https://login/token", client_id = "c", client_secret = "s", scope = "system/*.rs" }

            [[upstream]]
            name = "klinik"
            url = "https://klinik.example/fhir"
            auth = { type = "bearer", token = "t" }
            "#,
        )
        .unwrap();
        let tables = tables.into_values().next().unwrap();
        let config = platform_config(settings(&[], tables, None)).unwrap().unwrap();
        assert!(config.name.starts_with("termin-"));
        assert_eq!(config.upstreams[0].priority, 3);
        assert_eq!(config.upstreams[0].timeout, std::time::Duration::from_secs(2));
        assert!(matches!(config.upstreams[0].auth, UpstreamAuth::ClientCredentials { .. }));
        assert_eq!(config.upstreams[1].auth, UpstreamAuth::Bearer("t".into()));
    }
}
