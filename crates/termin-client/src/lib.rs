//! A client for the Scheduling Client actor of the AT Scheduling IG: create the patient,
//! search services, schedules, slots and appointments (with paging and typed queries, see
//! [`SearchQuery`]), find healthcare service providers (`$findHSP`), hold a slot, book, and
//! cancel, postpone or update an appointment, send batch and transaction Bundles. Failures
//! carry the server's OperationOutcome.
//!
//! One [`Client`] holds one `reqwest::Client`, whose connection pool every clone shares:
//! create it once and clone it into tasks. Of the other Termin crates it uses only
//! `termin-fhir` (its reader of Parameters and references), never the server's.

mod providers;
mod query;
mod resources;

pub use providers::ProviderSearch;
pub use query::{AppointmentQuery, ScheduleQuery, SearchQuery, ServiceQuery, SlotQuery};
pub use resources::{austrian_patient, proposed_appointment};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use termin_fhir::Parameters;

/// The social security number system (`urn:oid:1.2.40.0.10.1.4.3.1`) of Austrian patients.
pub const SVNR_SYSTEM: &str = "urn:oid:1.2.40.0.10.1.4.3.1";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status; `outcome` is its OperationOutcome, if any.
    #[error("HTTP {status}: {}", describe(.outcome))]
    Status { status: StatusCode, outcome: Option<Value> },
    #[error("transport error: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("unexpected response: {0}")]
    Unexpected(String),
}

fn describe(outcome: &Option<Value>) -> String {
    let Some(outcome) = outcome else {
        return "no OperationOutcome".into();
    };
    outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["diagnostics"].as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

pub type ClientResult<T> = Result<T, ClientError>;

/// A response: status, ETag version and JSON body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub version: Option<u64>,
    pub body: Value,
}

/// The answer to `$hold`.
#[derive(Debug, Clone)]
pub enum Hold {
    Held { slot: Value, held_until: String, token: Option<String> },
    Released { slot: Value },
    /// Someone else booked or holds it (409).
    Rejected { slot: Value, outcome: Value },
}

/// The answer to `$book`.
#[derive(Debug, Clone)]
pub struct Booking {
    pub status: StatusCode,
    pub appointment: Value,
    pub outcome: Value,
}

impl Booking {
    /// Booked (201), pending (202) or an earlier booking returned (200).
    pub fn accepted(&self) -> bool {
        matches!(self.status, StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED)
    }
}

/// A connection to one FHIR base. Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// Access token sent as `Authorization: Bearer` with every request.
    bearer: Option<String>,
}

/// The `resource` of the named parameter of a Parameters body (Null if absent).
fn resource_parameter(parameters: &Value, name: &str) -> Value {
    Parameters::read_value(parameters)
        .and_then(|p| p.resource(name))
        .cloned()
        .unwrap_or_default()
}

/// The `key` value (e.g. `valueString`) of the named parameter.
fn text_parameter(parameters: &Value, name: &str, key: &str) -> Option<String> {
    Parameters::read_value(parameters)?.text(name, &[key]).map(str::to_owned)
}

fn status_error(status: StatusCode, body: Value) -> ClientError {
    ClientError::Status {
        status,
        outcome: (body["resourceType"] == "OperationOutcome").then_some(body),
    }
}

/// `path?name=value&...`, form-encoded.
fn with_query<N: AsRef<str>, V: AsRef<str>>(path: &str, pairs: impl IntoIterator<Item = (N, V)>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name.as_ref(), value.as_ref());
    }
    format!("{path}?{}", query.finish())
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// Moves the entries out of a Bundle.
fn take_entries(bundle: &mut Value) -> Vec<Value> {
    match bundle.get_mut("entry").map(Value::take) {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    }
}

fn search_mode(entry: &Value) -> &str {
    entry["search"]["mode"].as_str().unwrap_or("match")
}

/// `Type/id` → `id`, so both spellings of an id work.
fn bare_id<'a>(resource_type: &str, id: &'a str) -> &'a str {
    termin_fhir::parse_literal(id)
        .filter(|literal| literal.resource_type == resource_type)
        .map_or(id, |literal| literal.id)
}

impl Client {
    /// `base` is the FHIR base URL, e.g. `http://127.0.0.1:8080/fhir`.
    pub fn new(base: impl Into<String>) -> Self {
        Self::with_http(base, reqwest::Client::new())
    }

    /// Like [`Client::new`], over a configured `reqwest::Client` (timeouts, pool size, ...).
    pub fn with_http(base: impl Into<String>, http: reqwest::Client) -> Self {
        Client {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            bearer: None,
        }
    }

    /// Sends `token` (an OAuth access token from the server's identity provider) with every
    /// request, for a server with authorization on.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        };
        let request = self
            .http
            .request(method, url)
            .header("Accept", "application/fhir+json")
            .header("Prefer", "return=representation");
        match &self.bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder, body: Option<&Value>) -> ClientResult<Response> {
        let request = match body {
            Some(body) => request
                .header("Content-Type", "application/fhir+json")
                .body(body.to_string()),
            None => request,
        };
        let response = request.send().await?;
        let status = response.status();
        let version = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok());
        let bytes = response.bytes().await?;
        let body = match serde_json::from_slice(&bytes) {
            _ if bytes.is_empty() => Value::Null,
            Ok(body) => body,
            // An error page not written by a FHIR server (a proxy's 502): the status says enough.
            Err(_) if !status.is_success() => Value::Null,
            Err(e) => return Err(ClientError::Unexpected(format!("body is not JSON: {e}"))),
        };
        Ok(Response { status, version, body })
    }

    async fn expect_success(&self, request: RequestBuilder, body: Option<&Value>) -> ClientResult<Response> {
        let response = self.send(request, body).await?;
        if response.status.is_success() {
            Ok(response)
        } else {
            Err(status_error(response.status, response.body))
        }
    }

    /// GETs a path under the base, or an absolute URL (a paging link), as JSON.
    async fn get(&self, path: &str) -> ClientResult<Value> {
        Ok(self.expect_success(self.request(Method::GET, path), None).await?.body)
    }

    pub async fn create(&self, resource: &Value) -> ClientResult<Response> {
        let resource_type = resource["resourceType"]
            .as_str()
            .ok_or_else(|| ClientError::Unexpected("resource without resourceType".into()))?;
        self.expect_success(self.request(Method::POST, resource_type), Some(resource)).await
    }

    /// Sends a `batch` or `transaction` Bundle to the base; answers the `batch-response` or
    /// `transaction-response`. A transaction that fails is an error carrying the
    /// OperationOutcome, which names the failing entry.
    pub async fn send_bundle(&self, bundle: &Value) -> ClientResult<Value> {
        Ok(self.expect_success(self.request(Method::POST, ""), Some(bundle)).await?.body)
    }

    /// Creates the patient unless one with the same social security number exists; returns it.
    pub async fn ensure_patient(&self, patient: &Value, svnr: &str) -> ClientResult<Value> {
        let request = self
            .request(Method::POST, "Patient")
            .header("If-None-Exist", format!("identifier={SVNR_SYSTEM}|{svnr}"));
        Ok(self.expect_success(request, Some(patient)).await?.body)
    }

    /// `id` may also be written `Type/id`.
    pub async fn read(&self, resource_type: &str, id: &str) -> ClientResult<Response> {
        let id = bare_id(resource_type, id);
        self.expect_success(self.request(Method::GET, &format!("{resource_type}/{id}")), None).await
    }

    /// Updates a resource (its `id` names it); `if_match` guards against concurrent changes.
    pub async fn update(&self, resource: &Value, if_match: Option<u64>) -> ClientResult<Response> {
        let (Some(resource_type), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str()) else {
            return Err(ClientError::Unexpected("update needs resourceType and id".into()));
        };
        let mut request = self.request(Method::PUT, &format!("{resource_type}/{id}"));
        if let Some(version) = if_match {
            request = request.header("If-Match", format!("W/\"{version}\""));
        }
        self.expect_success(request, Some(resource)).await
    }

    /// One page of a search; follow [`Client::next_page`] for more.
    pub async fn search(&self, resource_type: &str, params: &[(&str, &str)]) -> ClientResult<Value> {
        self.get(&with_query(resource_type, params.iter().copied())).await
    }

    /// One page of a typed search, e.g. a [`SlotQuery`].
    pub async fn search_with<Q: SearchQuery>(&self, query: &Q) -> ClientResult<Value> {
        self.get(&with_query(Q::RESOURCE_TYPE, query.pairs())).await
    }

    /// The page after `bundle`, if its `next` link says there is one.
    pub async fn next_page(&self, bundle: &Value) -> ClientResult<Option<Value>> {
        match next_link(bundle) {
            None => Ok(None),
            Some(url) => Ok(Some(self.get(&url).await?)),
        }
    }

    /// Every match of a search, following `next` links.
    pub async fn search_all(&self, resource_type: &str, params: &[(&str, &str)]) -> ClientResult<Vec<Value>> {
        let first = self.search(resource_type, params).await?;
        self.matches_on_every_page(first).await
    }

    /// Every match of a typed search, following `next` links.
    pub async fn search_all_with<Q: SearchQuery>(&self, query: &Q) -> ClientResult<Vec<Value>> {
        let first = self.search_with(query).await?;
        self.matches_on_every_page(first).await
    }

    async fn matches_on_every_page(&self, first: Value) -> ClientResult<Vec<Value>> {
        let mut page = Some(first);
        let mut matches = Vec::new();
        while let Some(mut bundle) = page {
            let next = next_link(&bundle);
            matches.extend(
                take_entries(&mut bundle)
                    .into_iter()
                    .filter(|e| search_mode(e) == "match")
                    .filter_map(|mut e| e.get_mut("resource").map(Value::take)),
            );
            page = match next {
                Some(url) => Some(self.get(&url).await?),
                None => None,
            };
        }
        Ok(matches)
    }

    /// `first` with the entries of every later page appended (matches and includes; the
    /// outcome entry of the first page stands for all) and its paging links removed: one
    /// Bundle holding the whole answer.
    pub async fn all_pages(&self, mut first: Value) -> ClientResult<Value> {
        let mut next = next_link(&first);
        let mut entries = take_entries(&mut first);
        while let Some(url) = next {
            let mut page = self.get(&url).await?;
            next = next_link(&page);
            entries.extend(take_entries(&mut page).into_iter().filter(|e| search_mode(e) != "outcome"));
        }
        let Some(bundle) = first.as_object_mut() else {
            return Err(ClientError::Unexpected("a search answer that is not a Bundle".into()));
        };
        bundle.remove("link");
        bundle.insert("entry".into(), Value::Array(entries));
        Ok(first)
    }

    /// `HealthcareService/$findHSP`: the matching services with their providers (Organization,
    /// Practitioner, PractitionerRole as `include` entries) and an outcome entry, as the first
    /// page of a searchset Bundle (more with [`Client::next_page`] or [`Client::all_pages`]).
    /// A GET unless the search carries availability windows, which need a POSTed Parameters.
    pub async fn find_hsp(&self, search: &ProviderSearch) -> ClientResult<Value> {
        const FIND_HSP: &str = "HealthcareService/$findHSP";
        let response = if search.needs_post() {
            let path = match search.count {
                Some(count) => format!("{FIND_HSP}?_count={count}"),
                None => FIND_HSP.to_owned(),
            };
            self.expect_success(self.request(Method::POST, &path), Some(&search.to_parameters())).await?
        } else {
            self.expect_success(self.request(Method::GET, &with_query(FIND_HSP, search.pairs())), None).await?
        };
        Ok(response.body)
    }

    /// The appointments of the patient with this social security number ("Find existing
    /// Appointments"), every page; `dates` are `date` values with prefixes (ANDed, e.g.
    /// `["ge2026-04-07", "le2026-04-14"]`), `status` e.g. `booked`.
    pub async fn find_appointments(&self, svnr: &str, dates: &[&str], status: Option<&str>) -> ClientResult<Vec<Value>> {
        let query = AppointmentQuery {
            dates: dates.iter().map(|d| (*d).to_owned()).collect(),
            status: status.map(str::to_owned),
            ..AppointmentQuery::for_patient(svnr)
        };
        self.search_all_with(&query).await
    }

    /// `Slot/$hold`: place a hold (`hold = true`) or release it; `token` proves an earlier hold.
    /// `slot_id` may be written `id` or `Slot/id`.
    pub async fn hold(&self, slot_id: &str, hold: bool, token: Option<&str>) -> ClientResult<Hold> {
        let slot_id = bare_id("Slot", slot_id);
        let mut parameters = vec![
            json!({"name": "slot-reference", "valueReference": {"reference": format!("Slot/{slot_id}")}}),
            json!({"name": "slot-status", "valueCode": if hold { "busy-tentative" } else { "free" }}),
        ];
        if let Some(token) = token {
            parameters.push(json!({"name": "hold-token", "valueString": token}));
        }
        let body = json!({"resourceType": "Parameters", "parameter": parameters});
        let Response { status, body, .. } = self.send(self.request(Method::POST, "Slot/$hold"), Some(&body)).await?;
        match status {
            StatusCode::OK if hold => Ok(Hold::Held {
                held_until: text_parameter(&body, "held-until", "valueDateTime").unwrap_or_default(),
                token: text_parameter(&body, "hold-token", "valueString"),
                slot: resource_parameter(&body, "slot"),
            }),
            StatusCode::OK => Ok(Hold::Released { slot: resource_parameter(&body, "slot") }),
            StatusCode::CONFLICT => Ok(Hold::Rejected {
                slot: resource_parameter(&body, "slot"),
                outcome: resource_parameter(&body, "outcome"),
            }),
            status => Err(status_error(status, body)),
        }
    }

    /// `Appointment/$book` for a `proposed` Appointment; `tokens` are the holds on its slots.
    /// Rejections (409) are answers, not errors: see [`Booking::accepted`].
    pub async fn book(&self, appointment: &Value, tokens: &[&str]) -> ClientResult<Booking> {
        let mut parameters = vec![json!({"name": "appointment-resource", "resource": appointment})];
        parameters.extend(tokens.iter().map(|t| json!({"name": "hold-token", "valueString": t})));
        let body = json!({"resourceType": "Parameters", "parameter": parameters});
        let Response { status, body, .. } = self.send(self.request(Method::POST, "Appointment/$book"), Some(&body)).await?;
        match status {
            StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED | StatusCode::CONFLICT => Ok(Booking {
                status,
                appointment: resource_parameter(&body, "appointment"),
                outcome: resource_parameter(&body, "outcome"),
            }),
            status => Err(status_error(status, body)),
        }
    }

    /// Books one slot for `patient` (`Patient/id`): reads the slot and its Schedule, builds the
    /// [`proposed_appointment`] and calls `$book` with the hold `tokens`. `slot_id` may be
    /// written `id` or `Slot/id`.
    pub async fn book_slot(&self, slot_id: &str, patient: &str, tokens: &[&str]) -> ClientResult<Booking> {
        let slot = self.read("Slot", slot_id).await?.body;
        let schedule = match slot["schedule"]["reference"].as_str() {
            Some(reference) => self.get(reference).await?,
            None => return Err(ClientError::Unexpected(format!("Slot/{slot_id} names no schedule"))),
        };
        self.book(&proposed_appointment(patient, &slot, &schedule), tokens).await
    }

    /// Changes an appointment's information ("Update Appointment": description, notes,
    /// non-patient participants, ...): reads it, applies `change`, writes it back guarded by
    /// If-Match, so a concurrent change makes this fail with 412 instead of being overwritten.
    /// Timing and patient changes belong to [`Client::postpone`] and [`Client::cancel`].
    pub async fn update_appointment(&self, appointment_id: &str, change: impl FnOnce(&mut Value)) -> ClientResult<Value> {
        self.amend_appointment(appointment_id, &[], change).await
    }

    /// Cancels an appointment (reads it, sets `cancelled`, writes it back guarded by If-Match).
    pub async fn cancel(&self, appointment_id: &str) -> ClientResult<Value> {
        self.amend_appointment(appointment_id, &[], |appointment| appointment["status"] = json!("cancelled"))
            .await
    }

    /// Moves an appointment onto other slots (held with `tokens`, or free), with their times.
    pub async fn postpone(&self, appointment_id: &str, slots: &[Value], tokens: &[&str]) -> ClientResult<Value> {
        let start = slots.iter().filter_map(|s| s["start"].as_str()).min();
        let end = slots.iter().filter_map(|s| s["end"].as_str()).max();
        let references: Vec<Value> = slots
            .iter()
            .map(|s| json!({"reference": format!("Slot/{}", s["id"].as_str().unwrap_or_default())}))
            .collect();
        self.amend_appointment(appointment_id, tokens, |appointment| {
            appointment["slot"] = Value::Array(references);
            appointment["start"] = json!(start);
            appointment["end"] = json!(end);
        })
        .await
    }

    /// Read, change, PUT with If-Match (and the hold tokens of newly referenced slots).
    async fn amend_appointment(&self, appointment_id: &str, tokens: &[&str], change: impl FnOnce(&mut Value)) -> ClientResult<Value> {
        let appointment_id = bare_id("Appointment", appointment_id);
        let current = self.read("Appointment", appointment_id).await?;
        let mut appointment = current.body;
        if !appointment.is_object() {
            return Err(ClientError::Unexpected(format!("Appointment/{appointment_id} is not a JSON object")));
        }
        change(&mut appointment);
        let mut request = self.request(Method::PUT, &format!("Appointment/{appointment_id}"));
        if let Some(version) = current.version {
            request = request.header("If-Match", format!("W/\"{version}\""));
        }
        if !tokens.is_empty() {
            request = request.header("X-Hold-Token", tokens.join(","));
        }
        Ok(self.expect_success(request, Some(&appointment)).await?.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_may_be_written_with_their_type() {
        assert_eq!(bare_id("Slot", "Slot/a"), "a");
        assert_eq!(bare_id("Slot", "a"), "a");
        assert_eq!(bare_id("Slot", "Slotted"), "Slotted");
    }

    #[test]
    fn all_but_outcome_and_include_entries_are_matches() {
        let mut bundle = json!({"entry": [
            {"resource": {"id": "m"}, "search": {"mode": "match"}},
            {"resource": {"id": "i"}, "search": {"mode": "include"}},
            {"resource": {"id": "plain"}}]});
        let modes: Vec<&str> = bundle["entry"].as_array().unwrap().iter().map(search_mode).collect();
        assert_eq!(modes, ["match", "include", "match"]);
        assert_eq!(take_entries(&mut bundle).len(), 3);
        assert!(take_entries(&mut bundle).is_empty(), "the entries were moved out");
    }

    #[test]
    fn parameters_are_read_by_name() {
        let held = json!({"resourceType": "Parameters", "parameter": [
            {"name": "slot", "resource": {"resourceType": "Slot"}},
            {"name": "hold-token", "valueString": "t"}]});
        assert_eq!(text_parameter(&held, "hold-token", "valueString").as_deref(), Some("t"));
        assert_eq!(text_parameter(&held, "held-until", "valueDateTime"), None);
        assert_eq!(resource_parameter(&held, "slot")["resourceType"], "Slot");
        assert_eq!(resource_parameter(&held, "outcome"), Value::Null);
    }

    #[test]
    fn query_strings_are_form_encoded() {
        let path = with_query("Appointment", [("actor:identifier", "urn:oid:1.2.40.0.10.1.4.3.1|1234010180")]);
        assert_eq!(path, "Appointment?actor%3Aidentifier=urn%3Aoid%3A1.2.40.0.10.1.4.3.1%7C1234010180");
    }
}
