//! The audit trail: one R5 `AuditEvent` per access to patient data, shaped after the IHE Basic
//! Audit Log Patterns (RESTful activity, patient-centric). Writes record their event in their
//! own unit of work; reads and denied attempts go through [`AuditTrail`], a bounded queue that a
//! background writer empties in batches and drains at shutdown.

use crate::caller::Caller;
use crate::compartment::patients_of;
use crate::model::parse_object;
use crate::version::new_version;
use crate::DomainError;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use termin_fhir::ResourceType;
use termin_fhir::instant::format_instant;
use termin_search::SearchParameters;
use termin_store::{COMPARTMENT_TYPES, Principal, ResourceStore, ResourceVersion};
use tokio::sync::{mpsc, oneshot};

/// The `AuditEvent.action` codes (create, read, update, delete, execute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Create,
    Read,
    Update,
    Delete,
    Execute,
}

impl AuditAction {
    fn code(self) -> &'static str {
        match self {
            AuditAction::Create => "C",
            AuditAction::Read => "R",
            AuditAction::Update => "U",
            AuditAction::Delete => "D",
            AuditAction::Execute => "E",
        }
    }
}

/// One access to record: what was done (a `restful-interaction` code or an operation such as
/// `$book`), to which resources, whether it was allowed.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub action: AuditAction,
    pub interaction: String,
    /// `Patient` ids whose data was reached.
    pub patients: Vec<String>,
    /// `Type/id` of the resources reached.
    pub resources: Vec<String>,
    /// The HTTP status of a refused request (401, 403); `None` when it succeeded.
    pub denied: Option<u16>,
}

impl AuditRecord {
    pub fn new(action: AuditAction, interaction: impl Into<String>) -> Self {
        AuditRecord { action, interaction: interaction.into(), patients: Vec::new(), resources: Vec::new(), denied: None }
    }

    /// Adds a resource reached and, when it is in a patient compartment, its patients. Reading
    /// the audit trail itself is not recorded (it would record its own records).
    pub(crate) fn reached(&mut self, resource_type: ResourceType, id: &str, body: Option<&Map<String, Value>>) {
        if resource_type == ResourceType::AuditEvent {
            return;
        }
        let label = format!("{resource_type}/{id}");
        if !self.resources.contains(&label) {
            self.resources.push(label);
        }
        for patient in body.map(|b| patients_of(resource_type, id, b)).unwrap_or_default() {
            if !self.patients.contains(&patient) {
                self.patients.push(patient);
            }
        }
    }

    pub(crate) fn reached_version(&mut self, version: &ResourceVersion) {
        // Only a patient compartment type's body can name patients: the others (a page of
        // Slots) are not parsed.
        let body = if COMPARTMENT_TYPES.contains(&version.resource_type) {
            version.body.as_deref().and_then(parse_object)
        } else {
            None
        };
        self.reached(version.resource_type, &version.id, body.as_ref());
    }

    /// Whether the record concerns patient data (a compartment type was reached).
    pub(crate) fn concerns_patients(&self) -> bool {
        !self.patients.is_empty()
            || self.resources.iter().any(|r| {
                COMPARTMENT_TYPES.iter().any(|t| *t != ResourceType::AuditEvent && r.starts_with(&format!("{t}/")))
            })
    }
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// The agents of the IHE pattern: the user (token subject, `fhirUser`) as requestor, and the
/// client application (client id, network address). Without a token the user is `anonymous`.
fn agents(caller: &Caller) -> Vec<Value> {
    let network = caller.client_address().map(|address| json!(address));
    let user_type = json!({"coding": [coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP", "information recipient")]});
    let app_type = json!({"coding": [coding("http://dicom.nema.org/resources/ontology/DCM", "110150", "Application")]});
    let mut user = match &caller.context().principal {
        Principal::Token(principal) => {
            let mut who = json!({"identifier": {"value": principal.subject}});
            if let Some(fhir_user) = &principal.fhir_user {
                who["reference"] = json!(fhir_user);
            }
            let user = json!({"type": user_type, "who": who, "requestor": true});
            if let Some(client) = &principal.client_id {
                let mut app = json!({"type": app_type, "who": {"identifier": {"value": client}}, "requestor": false});
                if let Some(network) = &network {
                    app["networkString"] = network.clone();
                }
                return vec![user, app];
            }
            user
        }
        Principal::Anonymous => json!({"type": user_type, "who": {"display": "anonymous"}, "requestor": true}),
        Principal::System => json!({"type": app_type, "who": {"display": "Termin"}, "requestor": true}),
    };
    if let Some(network) = network {
        user["networkString"] = network;
    }
    vec![user]
}

/// The `AuditEvent` of `record`, made by `caller` at `now`.
pub(crate) fn audit_event(caller: &Caller, record: &AuditRecord, now: Timestamp) -> Map<String, Value> {
    let outcome = match record.denied {
        None => coding("http://terminology.hl7.org/CodeSystem/audit-event-outcome", "0", "Success"),
        Some(_) => coding("http://terminology.hl7.org/CodeSystem/audit-event-outcome", "4", "Minor failure"),
    };
    let mut entities: Vec<Value> = record
        .patients
        .iter()
        .map(|p| json!({"what": {"reference": format!("Patient/{p}")}, "role": {"coding": [coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient")]}}))
        .collect();
    entities.extend(
        record
            .resources
            .iter()
            .filter(|r| !record.patients.iter().any(|p| **r == format!("Patient/{p}")))
            .map(|r| json!({"what": {"reference": r}, "role": {"coding": [coding("http://terminology.hl7.org/CodeSystem/object-role", "4", "Domain Resource")]}})),
    );
    let request_id = &caller.context().request_id;
    if !request_id.is_empty() {
        entities.push(json!({"what": {"identifier": {
            "type": {"coding": [coding("https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "XrequestId", "X-Request-Id")]},
            "value": request_id,
        }}}));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "category": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation")]}],
        "code": {"coding": [{"system": "http://hl7.org/fhir/restful-interaction", "code": record.interaction}]},
        "action": record.action.code(),
        "recorded": format_instant(now),
        "outcome": {"code": outcome},
        "agent": agents(caller),
        "source": {
            "observer": {"display": "Termin"},
            "type": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")]}],
        },
        "entity": entities,
    });
    if let Some(status) = record.denied {
        event["outcome"]["detail"] = json!([{"text": format!("HTTP {status}")}]);
    }
    if let [patient] = record.patients.as_slice() {
        event["patient"] = json!({"reference": format!("Patient/{patient}")});
    }
    match event {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

enum Message {
    Event(Box<Map<String, Value>>),
    /// Write everything queued before it, then answer.
    Drain(oneshot::Sender<()>),
}

/// Events the background writer stores in one transaction at most.
const BATCH: usize = 256;
/// Events that may wait for the writer; a full queue makes recording wait (nothing is dropped).
const QUEUE: usize = 8192;

/// The queue of read and denial events (see the module documentation).
#[derive(Clone)]
pub struct AuditTrail {
    sender: mpsc::Sender<Message>,
}

impl AuditTrail {
    /// The queue and its background writer, which stores into `store`.
    pub fn start(store: Arc<dyn ResourceStore>, search: &'static SearchParameters) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, search, receiver));
        AuditTrail { sender }
    }

    pub(crate) async fn record(&self, body: Map<String, Value>) {
        if self.sender.send(Message::Event(Box::new(body))).await.is_err() {
            tracing::error!("the audit writer has stopped; an audit event was not stored");
        }
    }

    /// Waits until every event queued so far is stored (at shutdown).
    pub async fn drain(&self) {
        let (done, finished) = oneshot::channel();
        if self.sender.send(Message::Drain(done)).await.is_ok() {
            let _ = finished.await;
        }
    }
}

async fn write_batches(store: Arc<dyn ResourceStore>, search: &'static SearchParameters, mut receiver: mpsc::Receiver<Message>) {
    let mut messages = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut messages, BATCH).await > 0 {
        let mut events = Vec::new();
        let mut drained = Vec::new();
        for message in messages.drain(..) {
            match message {
                Message::Event(body) => events.push(*body),
                Message::Drain(done) => drained.push(done),
            }
        }
        // A store outage is retried: the events were acknowledged to nobody yet, but losing
        // them would leave accesses unrecorded.
        while let Err(e) = store_events(store.as_ref(), search, &events).await {
            tracing::error!(error = %e, events = events.len(), "storing audit events failed; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        for done in drained {
            let _ = done.send(());
        }
    }
}

async fn store_events(store: &dyn ResourceStore, search: &'static SearchParameters, events: &[Map<String, Value>]) -> Result<(), DomainError> {
    if events.is_empty() {
        return Ok(());
    }
    let caller = Caller::system("audit");
    let mut tx = store.begin_write(caller.context()).await?;
    for body in events {
        let now = body.get("recorded").and_then(Value::as_str).and_then(|t| t.parse().ok()).unwrap_or_else(Timestamp::now);
        let (new, _) = new_version(search, ResourceType::AuditEvent, &uuid::Uuid::new_v4().to_string(), body.clone(), None, now)?;
        tx.write(new).await?;
    }
    tx.commit().await?;
    Ok(())
}
