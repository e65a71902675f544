//! A client for the Scheduling Client actor of the AT Scheduling IG: create the patient,
//! search services, schedules, slots and appointments (with paging), hold a slot, book,
//! and cancel, postpone or update an appointment. Failures carry the server's
//! OperationOutcome.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

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

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

fn parameter(parameters: &Value, name: &str) -> Option<Value> {
    parameters["parameter"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

impl Client {
    /// `base` is the FHIR base URL, e.g. `http://127.0.0.1:8080/fhir`.
    pub fn new(base: impl Into<String>) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: base.into().trim_end_matches('/').to_owned(),
        }
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
        self.http
            .request(method, url)
            .header("Accept", "application/fhir+json")
            .header("Prefer", "return=representation")
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
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| ClientError::Unexpected(format!("body is not JSON: {e}")))?
        };
        Ok(Response { status, version, body })
    }

    async fn expect_success(&self, request: RequestBuilder, body: Option<&Value>) -> ClientResult<Response> {
        let response = self.send(request, body).await?;
        if response.status.is_success() {
            Ok(response)
        } else {
            Err(ClientError::Status {
                status: response.status,
                outcome: (response.body["resourceType"] == "OperationOutcome").then_some(response.body),
            })
        }
    }

    pub async fn create(&self, resource: &Value) -> ClientResult<Response> {
        let resource_type = resource["resourceType"]
            .as_str()
            .ok_or_else(|| ClientError::Unexpected("resource without resourceType".into()))?;
        self.expect_success(self.request(Method::POST, resource_type), Some(resource)).await
    }

    /// Creates the patient unless one with the same social security number exists; returns it.
    pub async fn ensure_patient(&self, patient: &Value, svnr: &str) -> ClientResult<Value> {
        let request = self
            .request(Method::POST, "Patient")
            .header("If-None-Exist", format!("identifier={SVNR_SYSTEM}|{svnr}"));
        Ok(self.expect_success(request, Some(patient)).await?.body)
    }

    pub async fn read(&self, resource_type: &str, id: &str) -> ClientResult<Response> {
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
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in params {
            query.append_pair(name, value);
        }
        let path = format!("{resource_type}?{}", query.finish());
        Ok(self.expect_success(self.request(Method::GET, &path), None).await?.body)
    }

    /// The page after `bundle`, if its `next` link says there is one.
    pub async fn next_page(&self, bundle: &Value) -> ClientResult<Option<Value>> {
        let next = bundle["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str());
        match next {
            None => Ok(None),
            Some(url) => Ok(Some(self.expect_success(self.request(Method::GET, url), None).await?.body)),
        }
    }

    /// Every match of a search, following `next` links.
    pub async fn search_all(&self, resource_type: &str, params: &[(&str, &str)]) -> ClientResult<Vec<Value>> {
        let mut page = Some(self.search(resource_type, params).await?);
        let mut matches = Vec::new();
        while let Some(bundle) = page {
            matches.extend(
                bundle["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e["search"]["mode"] != "outcome" && e["search"]["mode"] != "include")
                    .map(|e| e["resource"].clone()),
            );
            page = self.next_page(&bundle).await?;
        }
        Ok(matches)
    }

    /// `Slot/$hold`: place a hold (`hold = true`) or release it; `token` proves an earlier hold.
    pub async fn hold(&self, slot_id: &str, hold: bool, token: Option<&str>) -> ClientResult<Hold> {
        let mut parameters = vec![
            json!({"name": "slot-reference", "valueReference": {"reference": format!("Slot/{slot_id}")}}),
            json!({"name": "slot-status", "valueCode": if hold { "busy-tentative" } else { "free" }}),
        ];
        if let Some(token) = token {
            parameters.push(json!({"name": "hold-token", "valueString": token}));
        }
        let body = json!({"resourceType": "Parameters", "parameter": parameters});
        let response = self.send(self.request(Method::POST, "Slot/$hold"), Some(&body)).await?;
        let slot = parameter(&response.body, "slot").map(|p| p["resource"].clone()).unwrap_or_default();
        match response.status {
            StatusCode::OK if hold => Ok(Hold::Held {
                slot,
                held_until: parameter(&response.body, "held-until")
                    .and_then(|p| p["valueDateTime"].as_str().map(str::to_owned))
                    .unwrap_or_default(),
                token: parameter(&response.body, "hold-token").and_then(|p| p["valueString"].as_str().map(str::to_owned)),
            }),
            StatusCode::OK => Ok(Hold::Released { slot }),
            StatusCode::CONFLICT => Ok(Hold::Rejected {
                slot,
                outcome: parameter(&response.body, "outcome").map(|p| p["resource"].clone()).unwrap_or_default(),
            }),
            status => Err(ClientError::Status {
                status,
                outcome: (response.body["resourceType"] == "OperationOutcome").then_some(response.body),
            }),
        }
    }

    /// `Appointment/$book` for a `proposed` Appointment; `tokens` are the holds on its slots.
    /// Rejections (409) are answers, not errors: see [`Booking::accepted`].
    pub async fn book(&self, appointment: &Value, tokens: &[&str]) -> ClientResult<Booking> {
        let mut parameters = vec![json!({"name": "appointment-resource", "resource": appointment})];
        parameters.extend(tokens.iter().map(|t| json!({"name": "hold-token", "valueString": t})));
        let body = json!({"resourceType": "Parameters", "parameter": parameters});
        let response = self.send(self.request(Method::POST, "Appointment/$book"), Some(&body)).await?;
        match response.status {
            StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED | StatusCode::CONFLICT => Ok(Booking {
                status: response.status,
                appointment: parameter(&response.body, "appointment").map(|p| p["resource"].clone()).unwrap_or_default(),
                outcome: parameter(&response.body, "outcome").map(|p| p["resource"].clone()).unwrap_or_default(),
            }),
            status => Err(ClientError::Status {
                status,
                outcome: (response.body["resourceType"] == "OperationOutcome").then_some(response.body),
            }),
        }
    }

    /// Cancels an appointment (reads it, sets `cancelled`, writes it back guarded by If-Match).
    pub async fn cancel(&self, appointment_id: &str) -> ClientResult<Value> {
        let current = self.read("Appointment", appointment_id).await?;
        let mut appointment = current.body;
        appointment["status"] = json!("cancelled");
        Ok(self.update(&appointment, current.version).await?.body)
    }

    /// Moves an appointment onto other slots (held with `tokens`, or free), with their times.
    pub async fn postpone(&self, appointment_id: &str, slots: &[Value], tokens: &[&str]) -> ClientResult<Value> {
        let current = self.read("Appointment", appointment_id).await?;
        let mut appointment = current.body;
        let start = slots.iter().filter_map(|s| s["start"].as_str()).min();
        let end = slots.iter().filter_map(|s| s["end"].as_str()).max();
        appointment["slot"] = json!(
            slots
                .iter()
                .map(|s| json!({"reference": format!("Slot/{}", s["id"].as_str().unwrap_or_default())}))
                .collect::<Vec<_>>()
        );
        appointment["start"] = json!(start);
        appointment["end"] = json!(end);
        let (Some(resource_type), Some(id)) = (appointment["resourceType"].as_str(), appointment["id"].as_str()) else {
            return Err(ClientError::Unexpected("appointment without id".into()));
        };
        let mut request = self.request(Method::PUT, &format!("{resource_type}/{id}"));
        if let Some(version) = current.version {
            request = request.header("If-Match", format!("W/\"{version}\""));
        }
        if !tokens.is_empty() {
            request = request.header("X-Hold-Token", tokens.join(","));
        }
        Ok(self.expect_success(request, Some(&appointment)).await?.body)
    }
}
