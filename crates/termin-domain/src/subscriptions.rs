//! R5 topic-based Subscriptions: the SubscriptionTopics Termin serves, the rules a Subscription
//! must keep to be stored, and which outbox events notify which Subscription. Delivery itself
//! (channels, retries, event numbers) belongs to `termin-notify`.
//!
//! Topics: one per step of the appointment lifecycle (booked, pending, confirmed, cancelled,
//! postponed, updated) with the Appointment as focus, and `slot-availability` with the Slot as
//! focus whenever a Slot turns free or taken (held, booked, released, expired, cancelled).

use crate::compartment;
use crate::caller::Caller;
use crate::model::{self, reference_id};
use crate::unit_of_work::UnitOfWork;
use crate::DomainError;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};
use termin_store::{DomainEvent, Permission, Principal, RequestContext};

/// `Subscription.channelType` system.
const CHANNEL_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/subscription-channel-type";
const R5_SEARCH_PARAMETER: &str = "http://hl7.org/fhir/SearchParameter";

/// A filter a topic offers (`SubscriptionTopic.canFilterBy`).
#[derive(Debug)]
pub struct TopicFilter {
    pub parameter: &'static str,
    pub description: &'static str,
    /// The R5 search parameter it means (its id), when there is one.
    pub definition: Option<&'static str>,
}

/// A SubscriptionTopic Termin serves, at `[base]/SubscriptionTopic/[id]`.
#[derive(Debug)]
pub struct Topic {
    pub id: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The focus of its notifications.
    pub resource: ResourceType,
    /// `resourceTrigger.fhirPathCriteria` (documentation of when it fires).
    pub criteria: &'static str,
    pub filters: &'static [TopicFilter],
}

const APPOINTMENT_FILTERS: &[TopicFilter] = &[
    TopicFilter {
        parameter: "patient",
        description: "The Patient taking part (Patient/[id])",
        definition: Some("Appointment-patient"),
    },
    TopicFilter {
        parameter: "actor",
        description: "Any participant (Practitioner/[id], PractitionerRole/[id], Patient/[id], ...)",
        definition: Some("Appointment-actor"),
    },
    TopicFilter {
        parameter: "status",
        description: "The Appointment's status after the change",
        definition: Some("Appointment-status"),
    },
    TopicFilter {
        parameter: "service-type-reference",
        description: "The HealthcareService booked (HealthcareService/[id])",
        definition: Some("Appointment-service-type-reference"),
    },
    TopicFilter {
        parameter: "schedule",
        description: "The Schedule of the Appointment's Slots (Schedule/[id])",
        definition: None,
    },
];

const SLOT_FILTERS: &[TopicFilter] = &[
    TopicFilter {
        parameter: "schedule",
        description: "The Slot's Schedule (Schedule/[id])",
        definition: Some("Slot-schedule"),
    },
    TopicFilter {
        parameter: "service-type-reference",
        description: "The HealthcareService the Slot is for (HealthcareService/[id])",
        definition: Some("Slot-service-type-reference"),
    },
    TopicFilter {
        parameter: "status",
        description: "The Slot's status after the change (free, busy-tentative, busy)",
        definition: Some("Slot-status"),
    },
];

pub const TOPICS: &[Topic] = &[
    Topic {
        id: "appointment-booked",
        title: "Appointment booked",
        description: "An Appointment was created as booked (by $book or a create).",
        resource: ResourceType::Appointment,
        criteria: "%previous.exists().not() and %current.status = 'booked'",
        filters: APPOINTMENT_FILTERS,
    },
    Topic {
        id: "appointment-pending",
        title: "Appointment pending",
        description: "An Appointment was created as pending: it awaits confirmation by the practice.",
        resource: ResourceType::Appointment,
        criteria: "%previous.exists().not() and %current.status = 'pending'",
        filters: APPOINTMENT_FILTERS,
    },
    Topic {
        id: "appointment-confirmed",
        title: "Appointment confirmed",
        description: "A pending Appointment was confirmed (pending to booked).",
        resource: ResourceType::Appointment,
        criteria: "%previous.status = 'pending' and %current.status = 'booked'",
        filters: APPOINTMENT_FILTERS,
    },
    Topic {
        id: "appointment-cancelled",
        title: "Appointment cancelled",
        description: "An Appointment was cancelled (cancelled or entered-in-error); cancellationReason and the \
            Appointment's history say by whom.",
        resource: ResourceType::Appointment,
        criteria: "%previous.status.where($this in ('cancelled' | 'entered-in-error')).empty() and \
            %current.status in ('cancelled' | 'entered-in-error')",
        filters: APPOINTMENT_FILTERS,
    },
    Topic {
        id: "appointment-postponed",
        title: "Appointment postponed",
        description: "An Appointment moved to another time or other Slots; the focus is the new version, its \
            previous version (_history) has the old time.",
        resource: ResourceType::Appointment,
        criteria: "%previous.start != %current.start or %previous.end != %current.end or %previous.slot != %current.slot",
        filters: APPOINTMENT_FILTERS,
    },
    Topic {
        id: "appointment-updated",
        title: "Appointment updated",
        description: "Any other change of an Appointment (participants, comments, arrival, ...).",
        resource: ResourceType::Appointment,
        criteria: "%previous.exists() and %current.exists()",
        filters: APPOINTMENT_FILTERS,
    },
    Topic {
        id: "slot-availability",
        title: "Slot availability",
        description: "A Slot turned free (released, hold expired, appointment cancelled or moved) or taken \
            (held or booked): enough to keep a cache of a Schedule's free Slots.",
        resource: ResourceType::Slot,
        criteria: "%previous.status != %current.status",
        filters: SLOT_FILTERS,
    },
];

pub fn topic(id: &str) -> Option<&'static Topic> {
    TOPICS.iter().find(|t| t.id == id)
}

/// The topic a `Subscription.topic` canonical names: `[base]/SubscriptionTopic/[id]`.
pub fn topic_of_url(url: &str) -> Option<&'static Topic> {
    let (prefix, id) = url.rsplit_once('/')?;
    (prefix.ends_with("/SubscriptionTopic") && (url.starts_with("http://") || url.starts_with("https://")))
        .then(|| topic(id))
        .flatten()
}

impl Topic {
    pub fn url(&self, base: &str) -> String {
        format!("{base}/SubscriptionTopic/{}", self.id)
    }

    /// The SubscriptionTopic resource, with its canonical URL under `base`.
    pub fn resource(&self, base: &str) -> Value {
        let resource = self.resource.as_str();
        let filters: Vec<Value> = self
            .filters
            .iter()
            .map(|f| {
                let mut filter = json!({
                    "description": f.description,
                    "resource": resource,
                    "filterParameter": f.parameter,
                    "comparator": ["eq"],
                });
                if let Some(definition) = f.definition {
                    filter["filterDefinition"] = json!(format!("{R5_SEARCH_PARAMETER}/{definition}"));
                }
                filter
            })
            .collect();
        json!({
            "resourceType": "SubscriptionTopic",
            "id": self.id,
            "url": self.url(base),
            "version": "1",
            "name": self.id.replace('-', "_"),
            "title": self.title,
            "status": "active",
            "description": self.description,
            "resourceTrigger": [{
                "description": self.description,
                "resource": format!("http://hl7.org/fhir/StructureDefinition/{resource}"),
                "supportedInteraction": ["create", "update"],
                "fhirPathCriteria": self.criteria,
            }],
            "canFilterBy": filters,
            "notificationShape": [{"resource": resource}],
        })
    }
}

/// `Subscription.content`: how much of the focus a notification carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Empty,
    IdOnly,
    FullResource,
}

impl Content {
    pub fn parse(code: &str) -> Option<Content> {
        match code {
            "empty" => Some(Content::Empty),
            "id-only" => Some(Content::IdOnly),
            "full-resource" => Some(Content::FullResource),
            _ => None,
        }
    }
}

/// `Subscription.filterBy`: the focus must have `value` for `parameter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFilter {
    pub parameter: String,
    pub value: String,
}

/// What a stored Subscription asks for, read from its JSON.
#[derive(Debug, Clone)]
pub struct SubscriptionSpec {
    pub status: String,
    pub topic: &'static Topic,
    pub filters: Vec<SubscriptionFilter>,
    /// `rest-hook` or `websocket`.
    pub channel: String,
    pub endpoint: Option<String>,
    /// `Subscription.parameter`: HTTP headers of a rest-hook POST.
    pub headers: Vec<(String, String)>,
    pub content: Content,
    pub heartbeat_seconds: Option<u64>,
    pub timeout_seconds: Option<u64>,
    pub max_count: Option<u64>,
    pub end: Option<Timestamp>,
}

fn bad(expression: &str, message: impl Into<String>) -> Issue {
    Issue::error(IssueCode::Invalid, message).at(expression)
}

/// An HTTP header name: an RFC 9110 token.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header value: visible ASCII and spaces (no line breaks).
fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}

fn unsigned(body: &Map<String, Value>, name: &str, issues: &mut Vec<Issue>) -> Option<u64> {
    let value = body.get(name)?;
    let number = value.as_u64();
    if number.is_none() {
        issues.push(bad(&format!("Subscription.{name}"), format!("{name} must be a non-negative integer")));
    }
    number
}

impl SubscriptionSpec {
    /// Reads a Subscription; every problem found becomes one issue.
    pub fn parse(body: &Map<String, Value>) -> Result<SubscriptionSpec, OperationOutcome> {
        let mut issues = Vec::new();
        let text = |name: &str| body.get(name).and_then(Value::as_str);
        let status = text("status").unwrap_or("requested").to_owned();
        let topic = match text("topic") {
            None => {
                issues.push(Issue::error(IssueCode::Required, "topic is required").at("Subscription.topic"));
                None
            }
            Some(url) => {
                let found = topic_of_url(url);
                if found.is_none() {
                    issues.push(bad(
                        "Subscription.topic",
                        format!(
                            "{url:?} is not a SubscriptionTopic of this server; topics are [base]/SubscriptionTopic/[id] \
                             with id one of {}",
                            TOPICS.iter().map(|t| t.id).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                found
            }
        };
        let mut filters = Vec::new();
        for (i, filter) in body.get("filterBy").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("Subscription.filterBy[{i}]");
            let parameter = filter.get("filterParameter").and_then(Value::as_str).unwrap_or_default();
            let value = filter.get("value").and_then(Value::as_str).unwrap_or_default();
            if let Some(topic) = topic {
                if !topic.filters.iter().any(|f| f.parameter == parameter) {
                    issues.push(bad(
                        &format!("{at}.filterParameter"),
                        format!(
                            "topic {} cannot filter by {parameter:?}; it offers {}",
                            topic.id,
                            topic.filters.iter().map(|f| f.parameter).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                if let Some(resource) = filter.get("resourceType").and_then(Value::as_str) {
                    let short = resource.rsplit('/').next().unwrap_or(resource);
                    if short != topic.resource.as_str() {
                        issues.push(bad(
                            &format!("{at}.resourceType"),
                            format!("topic {} filters {} resources, not {resource}", topic.id, topic.resource),
                        ));
                    }
                }
            }
            if filter.get("comparator").and_then(Value::as_str).is_some_and(|c| c != "eq") {
                issues.push(bad(&format!("{at}.comparator"), "only the comparator eq is supported"));
            }
            if filter.get("modifier").is_some() {
                issues.push(bad(&format!("{at}.modifier"), "filter modifiers are not supported"));
            }
            if value.trim().is_empty() {
                issues.push(bad(&format!("{at}.value"), "a filter needs a value"));
            }
            filters.push(SubscriptionFilter { parameter: parameter.to_owned(), value: value.trim().to_owned() });
        }
        let channel_type = body.get("channelType");
        let channel = channel_type.and_then(|c| c.get("code")).and_then(Value::as_str).unwrap_or_default().to_owned();
        let system = channel_type.and_then(|c| c.get("system")).and_then(Value::as_str);
        if !matches!(channel.as_str(), "rest-hook" | "websocket") || system.is_some_and(|s| s != CHANNEL_SYSTEM) {
            issues.push(
                Issue::error(
                    IssueCode::NotSupported,
                    format!("channelType must be {CHANNEL_SYSTEM}#rest-hook or #websocket (the channels this server delivers on)"),
                )
                .at("Subscription.channelType"),
            );
        }
        let endpoint = text("endpoint").map(str::to_owned);
        match endpoint.as_deref() {
            // A websocket client connects to the server; an endpoint would go unused.
            _ if channel == "websocket" => {}
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {}
            Some(_) => issues.push(bad("Subscription.endpoint", "a rest-hook endpoint must be an http(s) URL")),
            None => {
                issues.push(Issue::error(IssueCode::Required, "a rest-hook Subscription needs an endpoint").at("Subscription.endpoint"))
            }
        }
        let mut headers = Vec::new();
        for (i, parameter) in body.get("parameter").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let name = parameter.get("name").and_then(Value::as_str).unwrap_or_default();
            let value = parameter.get("value").and_then(Value::as_str).unwrap_or_default();
            if !is_header_name(name) || !is_header_value(value) {
                issues.push(bad(
                    &format!("Subscription.parameter[{i}]"),
                    "a parameter is sent as an HTTP header: its name must be a header name and its value one line of text",
                ));
            }
            headers.push((name.to_owned(), value.to_owned()));
        }
        let content = match text("content") {
            None => Content::IdOnly,
            Some(code) => Content::parse(code).unwrap_or_else(|| {
                issues.push(bad("Subscription.content", "content must be empty, id-only or full-resource"));
                Content::IdOnly
            }),
        };
        if text("contentType").is_some_and(|t| t != "application/fhir+json" && t != "application/json") {
            issues.push(Issue::error(IssueCode::NotSupported, "contentType must be application/fhir+json").at("Subscription.contentType"));
        }
        let heartbeat_seconds = unsigned(body, "heartbeatPeriod", &mut issues);
        let timeout_seconds = unsigned(body, "timeout", &mut issues);
        let max_count = unsigned(body, "maxCount", &mut issues);
        if max_count == Some(0) {
            issues.push(bad("Subscription.maxCount", "maxCount must be at least 1"));
        }
        let end = text("end").and_then(|t| t.parse().ok());
        match topic {
            Some(topic) if issues.is_empty() => Ok(SubscriptionSpec {
                status,
                topic,
                filters,
                channel,
                endpoint,
                headers,
                content,
                heartbeat_seconds,
                timeout_seconds,
                max_count,
                end,
            }),
            _ => Err(OperationOutcome::new(issues)),
        }
    }

    /// Whether the focus, described by its `facts`, passes every filter.
    pub fn matches(&self, facts: &Facts) -> bool {
        self.filters.iter().all(|filter| {
            let wanted = normalized(&filter.value);
            facts.values.iter().any(|(parameter, value)| *parameter == filter.parameter && *value == wanted)
        })
    }
}

/// A reference as `Type/id` (absolute URLs and versions cut off); other values unchanged.
fn normalized(value: &str) -> String {
    let path = value.split("/_history/").next().unwrap_or(value);
    let mut parts = path.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(type_name)) if type_name.parse::<ResourceType>().is_ok() || type_name.chars().next().is_some_and(char::is_uppercase) => {
            format!("{type_name}/{id}")
        }
        _ => value.to_owned(),
    }
}

/// The filter values a focus has: (filter parameter, normalized value).
#[derive(Debug, Default)]
pub struct Facts {
    values: Vec<(&'static str, String)>,
}

impl Facts {
    fn add(&mut self, parameter: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.values.push((parameter, normalized(value)));
        }
    }

    /// An Appointment's facts; `schedules` are the Schedule references of its Slots.
    pub fn of_appointment(appointment: &Map<String, Value>, schedules: &[String]) -> Facts {
        let mut facts = Facts::default();
        facts.add("status", model::status(appointment));
        let reference = |v: &Value| v.get("reference").and_then(Value::as_str).map(str::to_owned);
        let subject = appointment.get("subject").and_then(reference);
        let actors: Vec<String> = appointment
            .get("participant")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("actor").and_then(reference))
            .collect();
        for actor in subject.iter().chain(&actors) {
            if reference_id(actor, ResourceType::Patient).is_some() {
                facts.add("patient", Some(actor));
            }
        }
        for actor in &actors {
            facts.add("actor", Some(actor));
        }
        for service in appointment.get("serviceType").and_then(Value::as_array).into_iter().flatten() {
            facts.add("service-type-reference", service.get("reference").and_then(reference).as_deref());
        }
        for schedule in schedules {
            facts.add("schedule", Some(schedule));
        }
        facts
    }

    pub fn of_slot(slot: &Map<String, Value>) -> Facts {
        let mut facts = Facts::default();
        facts.add("status", model::status(slot));
        facts.add("schedule", slot.get("schedule").and_then(|s| s.get("reference")).and_then(Value::as_str));
        for service in slot.get("serviceType").and_then(Value::as_array).into_iter().flatten() {
            facts.add("service-type-reference", service.get("reference").and_then(|r| r.get("reference")).and_then(Value::as_str));
        }
        facts
    }
}

/// The Slots an Appointment names (for the `schedule` filter).
pub fn slot_ids(appointment: &Map<String, Value>) -> Vec<String> {
    model::slot_ids(appointment)
}

/// What an outbox event means to a topic: its focus (`version` `None`: the current one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub topic: &'static str,
    pub focus_type: ResourceType,
    pub focus_id: String,
    pub focus_version: Option<u64>,
}

/// The topics an outbox event fires, each with its focus.
pub fn triggers(event: &DomainEvent) -> Vec<Trigger> {
    let detail: Value = serde_json::from_str(&event.detail).unwrap_or(Value::Null);
    let this = |topic: &'static str| Trigger {
        topic,
        focus_type: event.resource_type,
        focus_id: event.resource_id.clone(),
        focus_version: Some(event.version),
    };
    let mut fired = Vec::new();
    match (event.resource_type, event.kind.as_str()) {
        (ResourceType::Appointment, kind) => {
            match (kind, detail.get("status").and_then(Value::as_str)) {
                ("appointment-created", Some("booked")) => fired.push(this("appointment-booked")),
                ("appointment-created", Some("pending")) => fired.push(this("appointment-pending")),
                ("appointment-confirmed", _) => fired.push(this("appointment-confirmed")),
                ("appointment-cancelled", _) => fired.push(this("appointment-cancelled")),
                ("appointment-postponed", _) => fired.push(this("appointment-postponed")),
                ("appointment-updated", _) => fired.push(this("appointment-updated")),
                _ => {}
            }
            // Slots a booking takes record no event of their own (the ones it frees do).
            for slot in detail.get("slotsTaken").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                fired.push(Trigger {
                    topic: "slot-availability",
                    focus_type: ResourceType::Slot,
                    focus_id: slot.to_owned(),
                    focus_version: None,
                });
            }
        }
        (ResourceType::Slot, "slot-held" | "slot-released" | "slot-freed" | "slot-hold-expired") => {
            fired.push(this("slot-availability"))
        }
        _ => {}
    }
    fired
}

/// Applies the Subscription rules to a write: a stored Subscription names a topic of this
/// server with filters it offers and a channel Termin delivers on; a patient's client
/// subscribes only to its own appointments; the server owns `status` (a client may set
/// `off`, or `requested` to start again). Records the change in the outbox, where delivery
/// learns of new Subscriptions.
pub(crate) async fn guard_subscription(
    tx: &mut UnitOfWork,
    ctx: &Caller,
    now: Timestamp,
    id: &str,
    version: u64,
    previous: Option<&Map<String, Value>>,
    new: Option<&mut Map<String, Value>>,
) -> Result<(), DomainError> {
    let kind = match (previous, &new) {
        (_, None) => "subscription-deleted",
        (None, Some(_)) => "subscription-created",
        (Some(_), Some(_)) => "subscription-updated",
    };
    if let Some(new) = new {
        let spec = SubscriptionSpec::parse(new).map_err(DomainError::Unprocessable)?;
        check_access(ctx.context(), &spec)?;
        if ctx.context().principal != Principal::System {
            let status = match (spec.status.as_str(), previous.and_then(model::status)) {
                ("off", _) => "off",
                ("requested", _) | (_, None | Some("off")) => "requested",
                (_, Some(kept)) => kept,
            };
            new.insert("status".into(), json!(status));
        }
    }
    crate::rules::record_event(tx, kind, ResourceType::Subscription, id, version, now, json!({})).await
}

/// The patients a Subscription's filters name (`patient`, or `actor` referring to a Patient),
/// by id: the patient compartment it belongs to.
pub(crate) fn filtered_patients(subscription: &Map<String, Value>) -> Vec<String> {
    subscription
        .get("filterBy")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| matches!(f.get("filterParameter").and_then(Value::as_str), Some("patient" | "actor")))
        .filter_map(|f| f.get("value").and_then(Value::as_str))
        .filter_map(|value| reference_id(value, ResourceType::Patient))
        .collect()
}

/// A caller confined to one patient's appointments subscribes to appointment topics only with
/// a `patient` filter naming that patient, and to no other patient's.
fn check_access(ctx: &RequestContext, spec: &SubscriptionSpec) -> Result<(), DomainError> {
    if spec.topic.resource != ResourceType::Appointment {
        return Ok(());
    }
    let Some(patient) = compartment::confined_to(ctx, ResourceType::Appointment, Permission::Read)? else {
        return Ok(());
    };
    let own = format!("Patient/{patient}");
    let patients: Vec<String> = spec
        .filters
        .iter()
        .filter(|f| f.parameter == "patient" || (f.parameter == "actor" && f.value.contains("Patient/")))
        .map(|f| normalized(&f.value))
        .collect();
    if patients.is_empty() || patients.iter().any(|p| *p != own) {
        return Err(DomainError::forbidden(format!(
            "This access token may subscribe only to the appointments of {own}: add the filter patient={own}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn subscription(topic: &str, filters: Value) -> Map<String, Value> {
        object(json!({
            "resourceType": "Subscription",
            "status": "requested",
            "topic": format!("http://localhost/fhir/SubscriptionTopic/{topic}"),
            "filterBy": filters,
            "channelType": {"system": CHANNEL_SYSTEM, "code": "rest-hook"},
            "endpoint": "http://receiver.example/hook",
            "parameter": [{"name": "Authorization", "value": "Bearer secret"}],
            "content": "full-resource",
        }))
    }

    #[test]
    fn reads_a_valid_subscription() {
        let spec = SubscriptionSpec::parse(&subscription(
            "appointment-booked",
            json!([{"filterParameter": "patient", "value": "Patient/p1"}]),
        ))
        .unwrap();
        assert_eq!(spec.topic.id, "appointment-booked");
        assert_eq!(spec.content, Content::FullResource);
        assert_eq!(spec.headers, [("Authorization".to_owned(), "Bearer secret".to_owned())]);
    }

    #[test]
    fn rejects_unknown_topics_filters_and_channels() {
        let unknown = SubscriptionSpec::parse(&subscription("nope", json!([]))).unwrap_err();
        assert_eq!(unknown.issues[0].expression, ["Subscription.topic"]);
        let filter = SubscriptionSpec::parse(&subscription(
            "slot-availability",
            json!([{"filterParameter": "patient", "value": "Patient/p1"}, {"filterParameter": "schedule", "comparator": "gt", "value": "x"}]),
        ))
        .unwrap_err();
        assert_eq!(filter.issues.len(), 2);
        let mut websocket = subscription("appointment-booked", json!([]));
        websocket.insert("channelType".into(), json!({"code": "websocket"}));
        websocket.remove("endpoint");
        assert_eq!(SubscriptionSpec::parse(&websocket).unwrap().channel, "websocket");
        let mut email = subscription("appointment-booked", json!([]));
        email.insert("channelType".into(), json!({"code": "email"}));
        assert!(SubscriptionSpec::parse(&email).is_err());
        let mut header = subscription("appointment-booked", json!([]));
        header.insert("parameter".into(), json!([{"name": "X-Bad", "value": "a\r\nInjected: 1"}]));
        assert!(SubscriptionSpec::parse(&header).is_err());
    }

    #[test]
    fn filters_match_references_in_any_form() {
        let spec = SubscriptionSpec::parse(&subscription(
            "appointment-booked",
            json!([{"filterParameter": "patient", "value": "http://localhost/fhir/Patient/p1"}, {"filterParameter": "status", "value": "booked"}]),
        ))
        .unwrap();
        let appointment = object(json!({
            "status": "booked",
            "participant": [{"actor": {"reference": "Patient/p1"}}, {"actor": {"reference": "PractitionerRole/r"}}],
        }));
        assert!(spec.matches(&Facts::of_appointment(&appointment, &[])));
        let other = object(json!({"status": "booked", "participant": [{"actor": {"reference": "Patient/p2"}}]}));
        assert!(!spec.matches(&Facts::of_appointment(&other, &[])));
    }

    #[test]
    fn events_fire_their_topics() {
        let event = |kind: &str, resource_type, detail: Value| DomainEvent {
            kind: kind.into(),
            resource_type,
            resource_id: "a".into(),
            version: 2,
            occurred_at: Timestamp::UNIX_EPOCH,
            detail: detail.to_string(),
        };
        let booked = triggers(&event(
            "appointment-created",
            ResourceType::Appointment,
            json!({"status": "booked", "slotsTaken": ["s1"]}),
        ));
        assert_eq!(booked.iter().map(|t| t.topic).collect::<Vec<_>>(), ["appointment-booked", "slot-availability"]);
        assert_eq!(booked[1].focus_id, "s1");
        assert_eq!(triggers(&event("slot-freed", ResourceType::Slot, json!({})))[0].topic, "slot-availability");
        assert!(triggers(&event("subscription-created", ResourceType::Subscription, json!({}))).is_empty());
    }
}
