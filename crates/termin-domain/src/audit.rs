//! The audit trail: one R5 `AuditEvent` per access to patient data, shaped after the IHE Basic
//! Audit Log Patterns (RESTful activity, patient-centric). Writes record their event in their
//! own unit of work; reads and denied attempts go through [`AuditTrail`], a bounded queue that a
//! background writer empties in batches and drains at shutdown. An event is cheap to make and
//! to store because a read makes one: it is serialized straight to its JSON, and stored as a
//! compact row of the audit trail's own table ([`AuditEntry`]: the columns its searches need and
//! one link row per patient, other resource and agent it names), not as a generic resource
//! with history and search index rows.

use crate::DomainError;
use crate::caller::Caller;
use crate::compartment::patients_of;
use crate::model::parse_object;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use termin_fhir::ResourceType;
use termin_fhir::instant::format_instant;
use termin_search::SearchParameters;
use termin_store::{
    AUDIT_CODE_SYSTEM, AUDIT_OUTCOME_SYSTEM, AuditEntry, AuditLink, AuditRole, COMPARTMENT_TYPES, Principal,
    ResourceStore, ResourceVersion,
};
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
        AuditRecord {
            action,
            interaction: interaction.into(),
            patients: Vec::new(),
            resources: Vec::new(),
            denied: None,
        }
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
        let patients = match body {
            // A Patient is its own patient, by id: no need to read its body.
            _ if resource_type == ResourceType::Patient => vec![id.to_owned()],
            Some(body) => patients_of(resource_type, id, body),
            None => Vec::new(),
        };
        for patient in patients {
            if !self.patients.contains(&patient) {
                self.patients.push(patient);
            }
        }
    }

    pub(crate) fn reached_version(&mut self, version: &ResourceVersion) {
        // Only a patient compartment type's body can name patients: the others (a page of
        // Slots) are not parsed, nor is a Patient's (it is its own patient).
        let body =
            if COMPARTMENT_TYPES.contains(&version.resource_type) && version.resource_type != ResourceType::Patient {
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
                let resource_type = r.split_once('/').and_then(|(t, _)| t.parse::<ResourceType>().ok());
                resource_type.is_some_and(|t| t != ResourceType::AuditEvent && COMPARTMENT_TYPES.contains(&t))
            })
    }
}

const EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const INTERACTION: &str = AUDIT_CODE_SYSTEM;
const OUTCOME: &str = AUDIT_OUTCOME_SYSTEM;
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const BALP_ENTITY_TYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";

// The AuditEvent's elements as borrowed data, serialized straight to its JSON text: no
// intermediate `serde_json::Value` tree is built and dropped for every event.

#[derive(Serialize)]
struct Coding<'a> {
    system: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
}

#[derive(Serialize)]
struct Concept<'a> {
    coding: [Coding<'a>; 1],
}

fn concept<'a>(system: &'a str, code: &'a str, display: Option<&'a str>) -> Concept<'a> {
    Concept { coding: [Coding { system, code, display }] }
}

#[derive(Serialize)]
struct Identifier<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<Concept<'a>>,
    value: &'a str,
}

#[derive(Serialize, Default)]
struct Reference<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<Identifier<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Agent<'a> {
    #[serde(rename = "type")]
    kind: Concept<'a>,
    who: Reference<'a>,
    requestor: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    network_string: Option<&'a str>,
}

#[derive(Serialize)]
struct Entity<'a> {
    what: Reference<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Concept<'a>>,
}

#[derive(Serialize)]
struct Text {
    text: String,
}

#[derive(Serialize)]
struct Outcome<'a> {
    code: Coding<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<[Text; 1]>,
}

#[derive(Serialize)]
struct Source<'a> {
    observer: Reference<'a>,
    #[serde(rename = "type")]
    kind: [Concept<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    version_id: &'a str,
    last_updated: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    resource_type: &'a str,
    id: &'a str,
    meta: Meta<'a>,
    category: [Concept<'a>; 1],
    code: Concept<'a>,
    action: &'a str,
    recorded: &'a str,
    outcome: Outcome<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patient: Option<Reference<'a>>,
    agent: Vec<Agent<'a>>,
    source: Source<'a>,
    entity: Vec<Entity<'a>>,
}

/// The agents of the IHE pattern: the user (token subject, `fhirUser`) as requestor, and the
/// client application (client id, network address). Without a token the user is `anonymous`.
fn agents(caller: &Caller) -> Vec<Agent<'_>> {
    let network_string = caller.client_address();
    let user_type = || concept(PARTICIPATION, "IRCP", Some("information recipient"));
    let app_type = || concept(DICOM, "110150", Some("Application"));
    let named = |display| Reference { display: Some(display), ..Reference::default() };
    match &caller.context().principal {
        Principal::Token(principal) => {
            let who = Reference {
                reference: principal.fhir_user.as_deref(),
                identifier: Some(Identifier { kind: None, value: &principal.subject }),
                display: None,
            };
            let user = |network_string| Agent { kind: user_type(), who, requestor: true, network_string };
            match &principal.client_id {
                Some(client) => {
                    let who = Reference {
                        identifier: Some(Identifier { kind: None, value: client }),
                        ..Reference::default()
                    };
                    vec![user(None), Agent { kind: app_type(), who, requestor: false, network_string }]
                }
                None => vec![user(network_string)],
            }
        }
        Principal::Anonymous => {
            vec![Agent { kind: user_type(), who: named("anonymous"), requestor: true, network_string }]
        }
        Principal::System => vec![Agent { kind: app_type(), who: named("Termin"), requestor: true, network_string }],
    }
}

/// The `Type/id` of a reference's last two path segments (a `fhirUser` may be absolute).
fn typed_id(reference: &str) -> Option<(String, String)> {
    let mut segments = reference.rsplit('/');
    let id = segments.next().filter(|id| !id.is_empty())?;
    let resource_type = segments.next().filter(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))?;
    Some((resource_type.to_owned(), id.to_owned()))
}

/// The link rows of an event: its patients, the other resources it names, and its agents'
/// references and identifiers (what `patient`, `entity` and `agent` search).
fn links(event: &Event<'_>) -> Vec<AuditLink> {
    let mut links = Vec::new();
    let mut link = |role, target: Option<(String, String)>| {
        if let Some((target_type, target_id)) = target {
            let link = AuditLink { role, target_type: Some(target_type), target_id };
            if !links.contains(&link) {
                links.push(link);
            }
        }
    };
    for entity in &event.entity {
        let role = match entity.role.as_ref().map(|r| r.coding[0].code) {
            Some("1") => AuditRole::Patient,
            _ => AuditRole::Entity,
        };
        link(role, entity.what.reference.and_then(typed_id));
    }
    for agent in &event.agent {
        link(AuditRole::Agent, agent.who.reference.and_then(typed_id));
    }
    for agent in &event.agent {
        if let Some(identifier) = &agent.who.identifier {
            let link = AuditLink { role: AuditRole::Agent, target_type: None, target_id: identifier.value.to_owned() };
            if !links.contains(&link) {
                links.push(link);
            }
        }
    }
    links
}

/// The `AuditEvent` of `record`, made by `caller` at `now`, as the audit trail stores it. Its id
/// is time-ordered (UUID version 7), so events are appended at the end of the table's key.
pub(crate) fn audit_event(
    search: &SearchParameters,
    caller: &Caller,
    record: &AuditRecord,
    now: Timestamp,
) -> Result<AuditEntry, DomainError> {
    let id = uuid::Uuid::now_v7().to_string();
    let recorded = format_instant(now);
    let patients: Vec<String> = record.patients.iter().map(|p| format!("Patient/{p}")).collect();
    let mut entity: Vec<Entity<'_>> = patients
        .iter()
        .map(|reference| Entity {
            what: Reference { reference: Some(reference), ..Reference::default() },
            role: Some(concept(OBJECT_ROLE, "1", Some("Patient"))),
        })
        .collect();
    entity.extend(record.resources.iter().filter(|r| !patients.contains(r)).map(|r| Entity {
        what: Reference { reference: Some(r), ..Reference::default() },
        role: Some(concept(OBJECT_ROLE, "4", Some("Domain Resource"))),
    }));
    let request_id = &caller.context().request_id;
    if !request_id.is_empty() {
        let kind = Some(concept(BALP_ENTITY_TYPE, "XrequestId", Some("X-Request-Id")));
        let what = Reference { identifier: Some(Identifier { kind, value: request_id }), ..Reference::default() };
        entity.push(Entity { what, role: None });
    }
    let outcome = match record.denied {
        None => Outcome { code: Coding { system: OUTCOME, code: "0", display: Some("Success") }, detail: None },
        Some(status) => Outcome {
            code: Coding { system: OUTCOME, code: "4", display: Some("Minor failure") },
            detail: Some([Text { text: format!("HTTP {status}") }]),
        },
    };
    let event = Event {
        resource_type: "AuditEvent",
        id: &id,
        meta: Meta { version_id: "1", last_updated: &recorded },
        category: [concept(EVENT_TYPE, "rest", Some("RESTful Operation"))],
        code: concept(INTERACTION, &record.interaction, None),
        action: record.action.code(),
        recorded: &recorded,
        outcome,
        patient: match patients.as_slice() {
            [patient] => Some(Reference { reference: Some(patient), ..Reference::default() }),
            _ => None,
        },
        agent: agents(caller),
        source: Source {
            observer: Reference { display: Some("Termin"), ..Reference::default() },
            kind: [concept(SOURCE_TYPE, "4", Some("Application Server"))],
        },
        entity,
    };
    let body = serde_json::to_string(&event).map_err(|e| DomainError::Internal(e.to_string()))?;
    // The instants `date` compares the event with, as for any recorded instant.
    let range = search.date_index("date", &recorded).map(|d| (d.low, d.high));
    let Some((Some(low), Some(high))) = range else {
        return Err(DomainError::Internal(format!("the recorded instant {recorded} has no range")));
    };
    let links = links(&event);
    Ok(AuditEntry {
        recorded: now,
        recorded_range: (low.as_microsecond(), high.as_microsecond()),
        action: record.action.code().to_owned(),
        outcome: event.outcome.code.code.to_owned(),
        code: record.interaction.clone(),
        links,
        body,
        id,
    })
}

enum Message {
    Event(Box<AuditEntry>),
    /// Write everything queued before it, then answer.
    Drain(oneshot::Sender<()>),
}

/// Events the background writer stores in one transaction at most.
const BATCH: usize = 256;
/// Events that may wait for the writer; a full queue makes recording wait (nothing is dropped).
const QUEUE: usize = 8192;
/// How long the writer waits for more events after the first of a batch: one transaction per
/// event would cost more than the event itself (a read's audit overhead, docs/benchmarks.md),
/// and an event is searchable this much later at most (a drain does not wait).
const LINGER: Duration = Duration::from_millis(20);

/// The queue of read and denial events (see the module documentation).
#[derive(Clone)]
pub struct AuditTrail {
    sender: mpsc::Sender<Message>,
}

impl AuditTrail {
    /// The queue and its background writer, which stores into `store`.
    pub fn start(store: Arc<dyn ResourceStore>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, receiver));
        AuditTrail { sender }
    }

    pub(crate) async fn record(&self, event: AuditEntry) {
        if self.sender.send(Message::Event(Box::new(event))).await.is_err() {
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

async fn write_batches(store: Arc<dyn ResourceStore>, mut receiver: mpsc::Receiver<Message>) {
    let mut messages = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut messages, BATCH).await > 0 {
        let until = tokio::time::Instant::now() + LINGER;
        while messages.len() < BATCH && !messages.iter().any(|m| matches!(m, Message::Drain(_))) {
            let room = BATCH - messages.len();
            let more = receiver.recv_many(&mut messages, room);
            if !matches!(tokio::time::timeout_at(until, more).await, Ok(n) if n > 0) {
                break;
            }
        }
        let mut events = Vec::with_capacity(messages.len());
        let mut drained = Vec::new();
        for message in messages.drain(..) {
            match message {
                Message::Event(event) => events.push(*event),
                Message::Drain(done) => drained.push(done),
            }
        }
        // A store outage is retried: the events were acknowledged to nobody yet, but losing
        // them would leave accesses unrecorded.
        let events: Arc<[AuditEntry]> = events.into();
        while let Err(e) = store_events(store.as_ref(), &events).await {
            tracing::error!(error = %e, events = events.len(), "storing audit events failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        for done in drained {
            let _ = done.send(());
        }
    }
}

async fn store_events(store: &dyn ResourceStore, events: &Arc<[AuditEntry]>) -> Result<(), DomainError> {
    if events.is_empty() {
        return Ok(());
    }
    let caller = Caller::system("audit");
    let mut tx = store.begin_write(caller.context()).await?;
    tx.append_audit(events.clone()).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use termin_store::{RequestContext, TokenPrincipal};

    fn token_caller(client_id: Option<&str>, fhir_user: Option<&str>) -> Caller {
        let principal = TokenPrincipal {
            subject: "user-7".into(),
            client_id: client_id.map(str::to_owned),
            patient: None,
            fhir_user: fhir_user.map(str::to_owned),
        };
        let context = RequestContext {
            request_id: "req-1".into(),
            principal: Principal::Token(Box::new(principal)),
            scopes: Vec::new(),
        };
        Caller::new(context).with_client_address("192.0.2.7")
    }

    /// The compact row's columns and links say what the event says, for every shape of event
    /// the server writes.
    #[test]
    fn the_compact_row_names_what_the_event_names() {
        let search = termin_search::registry();
        let mut read = AuditRecord::new(AuditAction::Read, "read");
        read.reached(ResourceType::Patient, "pat-1", None);
        let caller = token_caller(Some("app"), Some("https://example.org/fhir/PractitionerRole/r1"));
        let event = audit_event(search, &caller, &read, Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!((event.action.as_str(), event.outcome.as_str(), event.code.as_str()), ("R", "0", "read"));
        assert_eq!(event.recorded_range, (0, 1000), "an instant of milliseconds covers one");
        let link = |role, target_type: Option<&str>, target_id: &str| AuditLink {
            role,
            target_type: target_type.map(str::to_owned),
            target_id: target_id.to_owned(),
        };
        assert_eq!(
            event.links,
            [
                link(AuditRole::Patient, Some("Patient"), "pat-1"),
                link(AuditRole::Agent, Some("PractitionerRole"), "r1"),
                link(AuditRole::Agent, None, "user-7"),
                link(AuditRole::Agent, None, "app"),
            ]
        );

        let mut search_record = AuditRecord::new(AuditAction::Read, "search-type");
        search_record.patients.extend(["pat-1".to_owned(), "pat-2".to_owned()]);
        search_record.resources.extend(["Appointment/a1".to_owned(), "Patient/pat-1".to_owned()]);
        search_record.denied = Some(403);
        let anonymous = Caller::anonymous("req-2").with_client_address("198.51.100.1");
        let event = audit_event(search, &anonymous, &search_record, Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(event.outcome, "4");
        assert_eq!(
            event.links,
            [
                link(AuditRole::Patient, Some("Patient"), "pat-1"),
                link(AuditRole::Patient, Some("Patient"), "pat-2"),
                link(AuditRole::Entity, Some("Appointment"), "a1"),
            ]
        );
        let body: Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!(body["id"], event.id.as_str());
        assert!(body.get("patient").is_none(), "two patients: only entities name them");
    }

    /// The event as a resource: the IHE shape the API serves and the tests read.
    #[test]
    fn an_event_names_agent_patient_entities_and_request() {
        let mut record = AuditRecord::new(AuditAction::Read, "read");
        record.reached(ResourceType::Patient, "pat-1", None);
        let caller = token_caller(Some("app"), Some("Practitioner/prac-1"));
        let event = audit_event(termin_search::registry(), &caller, &record, Timestamp::UNIX_EPOCH).unwrap();
        let body: Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!(body["resourceType"], "AuditEvent");
        assert_eq!(body["id"], event.id.as_str());
        assert_eq!(body["meta"]["versionId"], "1");
        assert_eq!(body["action"], "R");
        assert_eq!(body["code"]["coding"][0]["code"], "read");
        assert_eq!(body["outcome"]["code"]["code"], "0");
        assert_eq!(body["patient"]["reference"], "Patient/pat-1");
        assert_eq!(body["agent"][0]["who"]["identifier"]["value"], "user-7");
        assert_eq!(body["agent"][0]["who"]["reference"], "Practitioner/prac-1");
        assert_eq!(body["agent"][1]["who"]["identifier"]["value"], "app");
        assert_eq!(body["agent"][1]["networkString"], "192.0.2.7");
        assert_eq!(body["entity"][0]["what"]["reference"], "Patient/pat-1");
        assert_eq!(body["entity"][0]["role"]["coding"][0]["code"], "1");
        assert_eq!(body["entity"][1]["what"]["identifier"]["value"], "req-1");
        assert_eq!(body["entity"].as_array().map(Vec::len), Some(2));
    }
}
