//! `Appointment/$book`: book a `proposed` Appointment on the slots it names.

use crate::audit::AuditAction;
use crate::access;
use crate::caller::{Caller, PublicBooking};
use crate::rules::guard::slot_unavailability;
use crate::rules::offer::{Declared, Offer, check_offered, concept_codings, most_specific, service_references, service_type_codings};
use crate::rules::sequence::{NamedSlot, check_sequence, slot_positions};
use crate::model;
use crate::rules::{BOOKING_REQUESTS_URL, MANUAL_CONFIRMATION_URL};
use crate::unit_of_work::UnitOfWork;
use super::SchedulingService;
use crate::DomainError;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};
use termin_store::{
    Comparison, Condition, Filter, IndexKind, RangeEnd, RangePoint, RangeTest, ReferenceMatch, ResourceVersion,
    SearchRequest, SortKey, SortParam, SystemMatch, TokenMatch,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingStatus {
    Booked,
    /// Stored, waiting for staff to confirm (`booked`) or reject (`cancelled`).
    Pending,
    /// An earlier booking with the same Appointment.identifier, returned again.
    AlreadyBooked,
    /// Not stored: a slot was taken; the appointment is returned as `cancelled`.
    Rejected,
}

#[derive(Debug, Clone)]
pub struct BookingOutcome {
    pub status: BookingStatus,
    pub appointment: Map<String, Value>,
    /// The stored version, for every status but `Rejected`.
    pub version: Option<ResourceVersion>,
    pub outcome: OperationOutcome,
    /// The access secret of an anonymous booking under `--public-booking` (stored and pending
    /// ones): handed out once, kept only as its digest.
    pub access_secret: Option<String>,
    /// For a `Rejected` booking: free slots of the same Schedule to offer instead, nearest to
    /// the wanted start first.
    pub alternatives: Vec<AlternativeSlot>,
}

/// A free Slot offered instead of a taken one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternativeSlot {
    pub id: String,
    /// The Slot's `start` as stored.
    pub start: String,
}

/// How many free alternative slots a rejection suggests.
const ALTERNATIVES: usize = 5;

fn precondition_failed(code: IssueCode, message: String, path: &str) -> DomainError {
    DomainError::unprocessable(Issue::error(code, message).at(path))
}

fn token(system: Option<&str>, value: &str) -> Condition {
    Condition::TokenAny {
        param: "identifier".into(),
        alternatives: vec![TokenMatch {
            system: system.map_or(SystemMatch::Any, |s| SystemMatch::Exactly(s.to_owned())),
            code: Some(value.to_owned()),
        }],
    }
}

/// Whether a `$book` request repeats an earlier booking with its identifier: the same subject
/// Patient (both resolved to references) and the same slots.
fn is_repeat(request: &Map<String, Value>, earlier: &Map<String, Value>) -> bool {
    let subject = |a: &Map<String, Value>| {
        a.get("subject")
            .and_then(|s| s.get("reference"))
            .and_then(Value::as_str)
            .and_then(|r| model::reference_id(r, ResourceType::Patient))
    };
    let slots = |a: &Map<String, Value>| {
        let mut ids = model::slot_ids(a);
        ids.sort();
        ids
    };
    subject(request).is_some() && subject(request) == subject(earlier) && slots(request) == slots(earlier)
}

/// The `valueBoolean` of the resource's extension `url`, if it has one.
fn flag(resource: &Map<String, Value>, url: &str) -> Option<bool> {
    crate::model::extension(resource, url)
        .and_then(|e| e.get("valueBoolean"))
        .and_then(Value::as_bool)
}

fn has_manual_confirmation(resource: &Map<String, Value>) -> bool {
    flag(resource, MANUAL_CONFIRMATION_URL) == Some(true)
}

/// Whether the Appointment names slots at all; one that does not is a booking request.
fn names_slots(appointment: &Map<String, Value>) -> bool {
    appointment.get("slot").and_then(Value::as_array).is_some_and(|slots| !slots.is_empty())
}

fn id_of(resource: &Map<String, Value>) -> String {
    resource.get("id").and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// Names HealthcareServices (their ids) for messages.
fn service_names(services: &[Map<String, Value>]) -> String {
    services.iter().map(|s| format!("HealthcareService/{}", id_of(s))).collect::<Vec<_>>().join(", ")
}

/// Gives an identifier-only Reference (`{"identifier": …}`) the literal reference of the one
/// `target` resource with that identifier (the IG prefers business identifiers).
async fn resolve_identifier(tx: &mut UnitOfWork, reference: &mut Value, target: ResourceType, path: &str) -> Result<(), DomainError> {
    let Some(reference) = reference.as_object_mut() else {
        return Ok(());
    };
    if reference.contains_key("reference") {
        return Ok(());
    }
    let Some(identifier) = reference.get("identifier") else {
        return match target {
            ResourceType::Slot => Err(precondition_failed(
                IssueCode::Required,
                format!("{path} names no Slot: give its reference or its identifier"),
                path,
            )),
            _ => Ok(()),
        };
    };
    let Some(value) = identifier.get("value").and_then(Value::as_str) else {
        return Err(precondition_failed(
            IssueCode::Required,
            format!("{path}.identifier needs a value"),
            &format!("{path}.identifier"),
        ));
    };
    let system = identifier.get("system").and_then(Value::as_str);
    let ids = tx.find_ids(target, &[token(system, value)], 2).await?;
    let shown = format!("{}|{value}", system.unwrap_or_default());
    match ids.as_slice() {
        [id] => {
            reference.insert("reference".into(), json!(format!("{target}/{id}")));
            Ok(())
        }
        [] => Err(precondition_failed(
            IssueCode::NotFound,
            format!("No {target} with identifier {shown} is known to this server"),
            &format!("{path}.identifier"),
        )),
        _ => Err(precondition_failed(
            IssueCode::MultipleMatches,
            format!("More than one {target} has identifier {shown}"),
            &format!("{path}.identifier"),
        )),
    }
}

/// `Appointment.slot` and `serviceType.reference` given by identifier gain their references.
async fn resolve_identifiers(tx: &mut UnitOfWork, appointment: &mut Map<String, Value>) -> Result<(), DomainError> {
    if let Some(slots) = appointment.get_mut("slot").and_then(Value::as_array_mut) {
        for (index, slot) in slots.iter_mut().enumerate() {
            resolve_identifier(tx, slot, ResourceType::Slot, &format!("Appointment.slot[{index}]")).await?;
        }
    }
    if let Some(service_types) = appointment.get_mut("serviceType").and_then(Value::as_array_mut) {
        for (index, service_type) in service_types.iter_mut().enumerate() {
            if let Some(reference) = service_type.get_mut("reference") {
                let path = format!("Appointment.serviceType[{index}].reference");
                resolve_identifier(tx, reference, ResourceType::HealthcareService, &path).await?;
            }
        }
    }
    Ok(())
}

/// What the booked slots offer: the Slots' own service types and specialties, else their
/// Schedule's, else those of the HealthcareServices the Slots or Schedule name (when they
/// name none, those the Appointment names).
async fn offer_of(
    tx: &mut UnitOfWork,
    slots: &[(String, Map<String, Value>)],
    appointment_services: &[Map<String, Value>],
) -> Result<Offer, DomainError> {
    let schedule = match slots.first().and_then(|(_, slot)| model::schedule_id(slot)) {
        Some(id) => tx.read_live(ResourceType::Schedule, &id).await?.map(|(_, body)| (id, body)),
        None => None,
    };
    let mut services: Vec<String> = Vec::new();
    let named = slots.iter().map(|(_, slot)| slot).chain(schedule.iter().map(|(_, body)| body));
    for id in named.flat_map(service_references) {
        if !services.contains(&id) {
            services.push(id);
        }
    }
    let mut declaring = Vec::new();
    for id in &services {
        if let Some((_, body)) = tx.read_live(ResourceType::HealthcareService, id).await? {
            declaring.push(body);
        }
    }
    if services.is_empty() {
        declaring = appointment_services.to_vec();
    }
    let slot_names = slots.iter().map(|(id, _)| format!("Slot/{id}")).collect::<Vec<_>>().join(", ");
    let schedule_name = schedule.as_ref().map(|(id, _)| format!("Schedule/{id}")).unwrap_or_default();
    let declarations = |slot_codings: Vec<(Option<String>, String)>, schedule_codings, service_codings| {
        most_specific([
            Declared { by: slot_names.clone(), codings: slot_codings },
            Declared { by: schedule_name.clone(), codings: schedule_codings },
            Declared { by: service_names(&declaring), codings: service_codings },
        ])
    };
    let service_types = declarations(
        slots.iter().flat_map(|(_, slot)| service_type_codings(slot)).collect(),
        schedule.as_ref().map(|(_, s)| service_type_codings(s)).unwrap_or_default(),
        declaring.iter().flat_map(|s| concept_codings(s, "type")).collect(),
    );
    let specialties = declarations(
        slots.iter().flat_map(|(_, slot)| concept_codings(slot, "specialty")).collect(),
        schedule.as_ref().map(|(_, s)| concept_codings(s, "specialty")).unwrap_or_default(),
        declaring.iter().flat_map(|s| concept_codings(s, "specialty")).collect(),
    );
    Ok(Offer { service_types, specialties, services })
}

impl SchedulingService {
    pub async fn book(&self, ctx: &Caller, appointment: Map<String, Value>) -> Result<BookingOutcome, DomainError> {
        if appointment.get("resourceType").and_then(Value::as_str) != Some("Appointment") {
            return Err(DomainError::invalid(
                Issue::error(IssueCode::Invalid, "appointment-resource must be an Appointment").at("Appointment"),
            ));
        }
        let (mut appointment, warnings) = self.kernel.conform(ResourceType::Appointment, appointment).await?;
        // An anonymous booking's way back: only the digest is stored (the scheduling rules keep
        // it on every later write).
        let secret = match ctx.public_booking() {
            Some(PublicBooking::Book) => {
                let (secret, digest) = access::new_secret()
                    .map_err(|e| DomainError::Internal(format!("no random bytes for an access secret: {e}")))?;
                access::set_digest(&mut appointment, Some(&digest));
                Some(secret)
            }
            _ => None,
        };
        let mut booking = self.book_conformant(ctx, appointment).await?;
        booking.outcome.issues.extend(warnings);
        if matches!(booking.status, BookingStatus::Booked | BookingStatus::Pending) {
            booking.access_secret = secret;
        } else if secret.is_some() {
            // Nothing was stored: the digest of a secret never handed out means nothing.
            access::set_digest(&mut booking.appointment, None);
        }
        Ok(booking)
    }

    async fn book_conformant(&self, ctx: &Caller, mut appointment: Map<String, Value>) -> Result<BookingOutcome, DomainError> {
        if model::status(&appointment) != Some("proposed") {
            return Err(precondition_failed(
                IssueCode::BusinessRule,
                "$book takes an Appointment with status proposed".into(),
                "Appointment.status",
            ));
        }
        let now = self.kernel.clock().now();
        let mut tx = self.kernel.begin(ctx).await?;
        tx.audit_as(AuditAction::Execute, "$book");
        self.resolve_subject(&mut tx, &mut appointment).await?;
        resolve_identifiers(&mut tx, &mut appointment).await?;
        // Before an earlier booking with the same identifier is looked up and returned.
        crate::compartment::check_write(ctx.context(), ResourceType::Appointment, "", None, Some(&appointment))?;
        if let Some(earlier) = self.earlier_booking(&mut tx, &appointment).await? {
            let (version, body) = earlier;
            // An anonymous caller gets no earlier booking back: it would need that booking's
            // secret, and its repeat would otherwise show anyone the Appointment.
            if !is_repeat(&appointment, &body) || ctx.public_booking().is_some() {
                // Say nothing about the other booking: it may be another patient's.
                return Err(DomainError::conflict(
                    Issue::error(
                        IssueCode::Duplicate,
                        "Appointment.identifier is already used by another booking (another patient or other \
                         slots); a repeated $book must name the same subject and slots, a new booking needs a \
                         new identifier",
                    )
                    .at("Appointment.identifier"),
                ));
            }
            return Ok(BookingOutcome {
                status: BookingStatus::AlreadyBooked,
                appointment: body,
                outcome: OperationOutcome::success(format!(
                    "Appointment/{} with this identifier was booked before; returning that booking",
                    version.id
                )),
                version: Some(version),
                access_secret: None,
                alternatives: Vec::new(),
            });
        }
        let service = self.check_services(&mut tx, &appointment).await?;
        if !names_slots(&appointment) {
            return self.store_booking_request(ctx, tx, appointment, &service).await;
        }
        let slots = self.check_slots(&mut tx, ctx, now, &mut appointment).await?;
        check_offered(&appointment, &offer_of(&mut tx, &slots, &service).await?)?;
        for (index, (slot_id, slot)) in slots.iter().enumerate() {
            if let Some(reason) = slot_unavailability(&mut tx, ctx, now, slot_id, None).await? {
                drop(tx);
                let mut issues = vec![Issue::error(IssueCode::Conflict, reason).at(format!("Appointment.slot[{index}]"))];
                let blocked: Vec<&String> = slots.iter().map(|(id, _)| id).collect();
                let alternatives = self.free_alternatives(ctx, slot, &blocked).await?;
                if !alternatives.is_empty() {
                    let named: Vec<String> = alternatives.iter().map(|a| format!("Slot/{} ({})", a.id, a.start)).collect();
                    issues.push(Issue::information(format!(
                        "Free alternatives on the same schedule: {}",
                        named.join(", ")
                    )));
                }
                let mut rejected = appointment;
                rejected.insert("status".into(), json!("cancelled"));
                rejected.insert("cancellationDate".into(), json!(termin_fhir::instant::format_instant(now)));
                return Ok(BookingOutcome {
                    status: BookingStatus::Rejected,
                    appointment: rejected,
                    version: None,
                    outcome: OperationOutcome::new(issues),
                    access_secret: None,
                    alternatives,
                });
            }
        }
        let mut confirmation_needed = service.iter().any(has_manual_confirmation);
        for (_, slot) in &slots {
            if let Some(schedule_id) = model::schedule_id(slot)
                && let Some((_, schedule)) = tx.read_live(ResourceType::Schedule, &schedule_id).await?
            {
                confirmation_needed |= has_manual_confirmation(&schedule);
            }
        }
        let status = if confirmation_needed { BookingStatus::Pending } else { BookingStatus::Booked };
        appointment.insert(
            "status".into(),
            json!(if confirmation_needed { "pending" } else { "booked" }),
        );
        let id = uuid::Uuid::new_v4().to_string();
        let written = self.kernel.write_in(ctx, tx, ResourceType::Appointment, &id, appointment, None).await?;
        let body = model::parse_object(written.version.body.as_deref().unwrap_or_default())
            .ok_or_else(|| DomainError::Internal("booked appointment has no body".into()))?;
        let message = if confirmation_needed {
            "The appointment is pending: staff will confirm or decline it; its slots are reserved meanwhile"
        } else {
            "The appointment was booked successfully"
        };
        Ok(BookingOutcome {
            status,
            appointment: body,
            version: Some(written.version),
            outcome: OperationOutcome::success(message),
            access_secret: None,
            alternatives: Vec::new(),
        })
    }

    /// A `$book` without slots: a booking request to the HealthcareService(s) it names, stored
    /// `pending` for staff to give it a slot (a PUT adding `slot`, as for a postponement) or to
    /// decline it (`cancelled`). A service with the extension [`BOOKING_REQUESTS_URL`] `false`
    /// refuses requests.
    async fn store_booking_request(
        &self,
        ctx: &Caller,
        tx: UnitOfWork,
        mut appointment: Map<String, Value>,
        services: &[Map<String, Value>],
    ) -> Result<BookingOutcome, DomainError> {
        if services.is_empty() {
            return Err(precondition_failed(
                IssueCode::Required,
                "A $book without Appointment.slot is a booking request: name the HealthcareService it asks for in \
                 Appointment.serviceType.reference (by reference or identifier) so that staff can give it a slot, \
                 or book a free Slot in Appointment.slot"
                    .into(),
                "Appointment.slot",
            ));
        }
        if let Some(refusing) = services.iter().find(|s| flag(s, BOOKING_REQUESTS_URL) == Some(false)) {
            return Err(precondition_failed(
                IssueCode::BusinessRule,
                format!(
                    "HealthcareService/{} takes no booking requests without a slot: choose a free Slot of it \
                     (Slot search or $findHSP, then $hold) and name it in Appointment.slot",
                    id_of(refusing)
                ),
                "Appointment.slot",
            ));
        }
        let offer = Offer {
            service_types: Declared {
                by: service_names(services),
                codings: services.iter().flat_map(|s| concept_codings(s, "type")).collect(),
            },
            specialties: Declared {
                by: service_names(services),
                codings: services.iter().flat_map(|s| concept_codings(s, "specialty")).collect(),
            },
            services: Vec::new(),
        };
        check_offered(&appointment, &offer)?;
        appointment.insert("status".into(), json!("pending"));
        let id = uuid::Uuid::new_v4().to_string();
        let written = self.kernel.write_in(ctx, tx, ResourceType::Appointment, &id, appointment, None).await?;
        let body = model::parse_object(written.version.body.as_deref().unwrap_or_default())
            .ok_or_else(|| DomainError::Internal("stored booking request has no body".into()))?;
        Ok(BookingOutcome {
            status: BookingStatus::Pending,
            appointment: body,
            version: Some(written.version),
            outcome: OperationOutcome::success(format!(
                "The booking request is pending: staff of {} will give it a slot (it then reads booked) or \
                 decline it (cancelled)",
                service_names(services)
            )),
            access_secret: None,
            alternatives: Vec::new(),
        })
    }

    /// Up to [`ALTERNATIVES`] free slots of the blocked slot's Schedule, nearest to its start
    /// first.
    async fn free_alternatives(
        &self,
        ctx: &Caller,
        blocked_slot: &Map<String, Value>,
        exclude: &[&String],
    ) -> Result<Vec<AlternativeSlot>, DomainError> {
        let (Some(schedule_id), Some(wanted)) = (model::schedule_id(blocked_slot), model::instant(blocked_slot, "start")) else {
            return Ok(Vec::new());
        };
        let now = self.kernel.clock().now();
        let mut candidates: Vec<(SignedDuration, String, String)> = Vec::new();
        for (comparison, descending) in [(Comparison::GreaterOrEqual, false), (Comparison::Less, true)] {
            let request = SearchRequest {
                resource_type: ResourceType::Slot,
                filter: Filter {
                    conditions: vec![
                        Condition::ReferenceAny {
                            param: "schedule".into(),
                            alternatives: vec![ReferenceMatch::Local {
                                target_type: Some("Schedule".into()),
                                id: schedule_id.clone(),
                                version: None,
                            }],
                        },
                        Condition::TokenAny {
                            param: "status".into(),
                            alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("free".into()) }],
                        },
                        Condition::RangeAny {
                            param: "start".into(),
                            kind: IndexKind::Date,
                            alternatives: vec![RangeTest::Bound {
                                end: RangeEnd::Low,
                                comparison,
                                point: RangePoint::Instant(Some(wanted)),
                            }],
                        },
                    ],
                    now,
                    server_base: None,
                },
                sort: vec![SortKey { param: SortParam::Indexed { param: "start".into(), kind: IndexKind::Date }, descending }],
                count: ALTERNATIVES + exclude.len(),
                page: None,
                total: false,
                includes: Vec::new(),
                revincludes: Vec::new(),
            };
            for slot in self.kernel.search(ctx, &request).await?.matches {
                if exclude.contains(&&slot.id) || candidates.iter().any(|(_, id, _)| *id == slot.id) {
                    continue;
                }
                let Some(body) = slot.body.as_deref().and_then(model::parse_object) else { continue };
                let Some(start) = model::instant(&body, "start") else { continue };
                let distance = if start >= wanted { start.duration_since(wanted) } else { wanted.duration_since(start) };
                let text = body.get("start").and_then(Value::as_str).unwrap_or_default().to_owned();
                candidates.push((distance, slot.id, text));
            }
        }
        candidates.sort();
        Ok(candidates
            .into_iter()
            .take(ALTERNATIVES)
            .map(|(_, id, start)| AlternativeSlot { id, start })
            .collect())
    }

    /// An active Appointment with one of the request's identifiers (idempotent retries).
    async fn earlier_booking(
        &self,
        tx: &mut UnitOfWork,
        appointment: &Map<String, Value>,
    ) -> Result<Option<(ResourceVersion, Map<String, Value>)>, DomainError> {
        for identifier in appointment.get("identifier").and_then(Value::as_array).into_iter().flatten() {
            let Some(value) = identifier.get("value").and_then(Value::as_str) else {
                continue;
            };
            let system = identifier.get("system").and_then(Value::as_str);
            for id in tx.find_ids(ResourceType::Appointment, &[token(system, value)], 10).await? {
                if let Some((version, body)) = tx.read_live(ResourceType::Appointment, &id).await?
                    && model::occupies_slots(&body)
                {
                    return Ok(Some((version, body)));
                }
            }
        }
        Ok(None)
    }

    /// The subject Patient must exist here, named by literal reference or by identifier
    /// (e.g. the social security number); an identifier-only subject gains the reference.
    async fn resolve_subject(&self, tx: &mut UnitOfWork, appointment: &mut Map<String, Value>) -> Result<(), DomainError> {
        let Some(subject) = appointment.get_mut("subject").and_then(Value::as_object_mut) else {
            return Err(precondition_failed(
                IssueCode::Required,
                "The Appointment needs a subject: the Patient it is for".into(),
                "Appointment.subject",
            ));
        };
        let reference = subject.get("reference").and_then(Value::as_str);
        let is_group = subject.get("type").and_then(Value::as_str) == Some("Group")
            || reference.is_some_and(|r| r.starts_with("Group/") || r.contains("/Group/"));
        if is_group {
            // The profile allows a Group subject, but Termin serves no Group resources: a group
            // session is one Slot per participant, each booked for that participant's Patient.
            return Err(precondition_failed(
                IssueCode::NotSupported,
                "Appointment.subject is a Group: this server books appointments for one Patient each \
                 (it serves no Group resources); book a slot for each member of the group with the member's \
                 Patient as subject"
                    .into(),
                "Appointment.subject",
            ));
        }
        if let Some(reference) = reference {
            let id = model::reference_id(reference, ResourceType::Patient).ok_or_else(|| {
                precondition_failed(
                    IssueCode::Value,
                    format!("subject {reference:?} is not a reference to a Patient"),
                    "Appointment.subject.reference",
                )
            })?;
            return match tx.read_live(ResourceType::Patient, &id).await? {
                Some(_) => Ok(()),
                None => Err(precondition_failed(
                    IssueCode::NotFound,
                    format!("Patient/{id} is not known to this server; create the Patient first"),
                    "Appointment.subject",
                )),
            };
        }
        let Some(value) = subject.get("identifier").and_then(|i| i.get("value")).and_then(Value::as_str) else {
            return Err(precondition_failed(
                IssueCode::Required,
                "The subject needs a reference or an identifier of the Patient".into(),
                "Appointment.subject",
            ));
        };
        let system = subject.get("identifier").and_then(|i| i.get("system")).and_then(Value::as_str);
        let ids = tx.find_ids(ResourceType::Patient, &[token(system, value)], 2).await?;
        match ids.as_slice() {
            [id] => {
                subject.insert("reference".into(), json!(format!("Patient/{id}")));
                Ok(())
            }
            [] => Err(precondition_failed(
                IssueCode::NotFound,
                format!("No Patient with identifier {}|{value} is known to this server", system.unwrap_or_default()),
                "Appointment.subject.identifier",
            )),
            _ => Err(precondition_failed(
                IssueCode::MultipleMatches,
                format!("More than one Patient has identifier {}|{value}", system.unwrap_or_default()),
                "Appointment.subject.identifier",
            )),
        }
    }

    /// Every HealthcareService in `serviceType.reference` exists and is active.
    async fn check_services(&self, tx: &mut UnitOfWork, appointment: &Map<String, Value>) -> Result<Vec<Map<String, Value>>, DomainError> {
        let mut services = Vec::new();
        let service_types = appointment.get("serviceType").and_then(Value::as_array).into_iter().flatten();
        for (index, service_type) in service_types.enumerate() {
            let Some(reference) = service_type.get("reference").and_then(|r| r.get("reference")).and_then(Value::as_str) else {
                continue;
            };
            let path = format!("Appointment.serviceType[{index}].reference");
            let id = model::reference_id(reference, ResourceType::HealthcareService).ok_or_else(|| {
                precondition_failed(IssueCode::Value, format!("{reference:?} is not a HealthcareService reference"), &path)
            })?;
            match tx.read_live(ResourceType::HealthcareService, &id).await? {
                Some((_, service)) if model::is_active(&service) => services.push(service),
                Some(_) => {
                    return Err(precondition_failed(
                        IssueCode::BusinessRule,
                        format!("HealthcareService/{id} is not active"),
                        &path,
                    ));
                }
                None => {
                    return Err(precondition_failed(
                        IssueCode::NotFound,
                        format!("HealthcareService/{id} is not known to this server"),
                        &path,
                    ));
                }
            }
        }
        Ok(services)
    }

    /// Every slot exists and belongs to an active Schedule, the slots form one sequence
    /// ([`check_sequence`]; started slots only for staff), and the Appointment's start and end
    /// agree with the slots (they are filled in from the slots when absent).
    async fn check_slots(
        &self,
        tx: &mut UnitOfWork,
        ctx: &Caller,
        now: Timestamp,
        appointment: &mut Map<String, Value>,
    ) -> Result<Vec<(String, Map<String, Value>)>, DomainError> {
        let ids = slot_positions(appointment)?;
        if ids.is_empty() {
            return Err(precondition_failed(
                IssueCode::Required,
                "Appointment.slot names no Slot: give Slot references (Slot/[id]) or Slot identifiers".into(),
                "Appointment.slot",
            ));
        }
        let mut slots = Vec::with_capacity(ids.len());
        let mut earliest: Option<(Timestamp, Value)> = None;
        let mut latest: Option<(Timestamp, Value)> = None;
        for (position, id) in &ids {
            let path = format!("Appointment.slot[{position}]");
            let Some((_, slot)) = tx.read_live(ResourceType::Slot, id).await? else {
                return Err(precondition_failed(IssueCode::NotFound, format!("Slot/{id} is not known to this server"), &path));
            };
            let schedule = match model::schedule_id(&slot) {
                Some(schedule_id) => tx.read_live(ResourceType::Schedule, &schedule_id).await?,
                None => None,
            };
            if !schedule.as_ref().is_some_and(|(_, s)| model::is_active(s)) {
                return Err(precondition_failed(
                    IssueCode::BusinessRule,
                    format!("Slot/{id} does not belong to an active Schedule"),
                    &path,
                ));
            }
            let (Some(start), Some(end)) = (model::instant(&slot, "start"), model::instant(&slot, "end")) else {
                return Err(DomainError::Internal(format!("Slot/{id} has no valid start/end")));
            };
            if earliest.as_ref().is_none_or(|(t, _)| start < *t) {
                earliest = Some((start, slot["start"].clone()));
            }
            if latest.as_ref().is_none_or(|(t, _)| end > *t) {
                latest = Some((end, slot["end"].clone()));
            }
            slots.push((id.clone(), slot));
        }
        let named: Vec<NamedSlot<'_>> = ids
            .iter()
            .zip(&slots)
            .map(|((position, id), (_, body))| NamedSlot { position: *position, id, body })
            .collect();
        let not_started: Vec<&str> =
            if ctx.acts_for_patient() { ids.iter().map(|(_, id)| id.as_str()).collect() } else { Vec::new() };
        check_sequence(&named, &not_started, now)?;
        let (Some((start, start_text)), Some((end, end_text))) = (earliest, latest) else {
            return Ok(slots);
        };
        let one = slots.len() == 1;
        let booked = format!(
            "the booked {} {}",
            if one { "slot" } else { "slots" },
            slots.iter().map(|(id, _)| format!("Slot/{id}")).collect::<Vec<_>>().join(", ")
        );
        let span = format!(
            "from {} to {}",
            start_text.as_str().unwrap_or_default(),
            end_text.as_str().unwrap_or_default()
        );
        let minutes = (end - start).as_mins();
        let mut disagreements = Vec::new();
        for (element, expected, text) in [("start", start, start_text), ("end", end, end_text)] {
            match appointment.get(element) {
                None => {
                    appointment.insert(element.into(), text);
                }
                Some(_) if model::instant(appointment, element) == Some(expected) => {}
                Some(given) => disagreements.push(
                    Issue::error(
                        IssueCode::BusinessRule,
                        format!(
                            "Appointment.{element} is {} but {booked} {}{} at {} (they run {span}): give the \
                             slots' times, or leave start and end out to have them taken from the slots",
                            given.as_str().unwrap_or_default(),
                            element,
                            if one { "s" } else { "" },
                            text.as_str().unwrap_or_default()
                        ),
                    )
                    .at(format!("Appointment.{element}")),
                ),
            }
        }
        if let Some(given) = appointment.get("minutesDuration").and_then(Value::as_i64)
            && given != minutes
            && !disagreements.is_empty()
        {
            disagreements.push(
                Issue::error(
                    IssueCode::BusinessRule,
                    format!("Appointment.minutesDuration is {given} but {booked} last {minutes} minutes ({span})"),
                )
                .at("Appointment.minutesDuration"),
            );
        }
        if !disagreements.is_empty() {
            return Err(DomainError::Unprocessable(OperationOutcome::new(disagreements)));
        }
        Ok(slots)
    }
}
