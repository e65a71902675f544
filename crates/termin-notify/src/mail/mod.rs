//! E-mail to people: the patient (`Patient.telecom` email) and the practice's notification
//! address hear of appointments booked, pending, confirmed, cancelled and moved, and the
//! patient is reminded a configured time before; German unless `Patient.communication`
//! prefers English; plain text and HTML with an `.ics` attachment; sent over SMTP.
//!
//! How sending keeps its promises (each node runs one [`Mailer`]):
//! - Messages are made from the outbox: the node holding the lease on the outbox cursor
//!   renders the messages of each event and queues them, keyed by event and recipient, in the
//!   same transaction that advances the cursor; queueing one again is a no-op. Reminders are
//!   keyed by appointment and start time.
//! - A node sends a queued message only while it holds that message's lease, and records the
//!   outcome (sent, retry at, gave up) right after the SMTP server answered. A crash between
//!   the server's acceptance and that record leaves the message queued: after the lease ends
//!   it is sent again — at most the one message a node had in flight when it died.
//! - A temporary failure (4xx, connection trouble) is retried with exponential backoff until
//!   the message is `give_up_after` old; a permanent one (5xx) is recorded and not retried.

pub mod content;
pub mod ics;

use content::{AppointmentFacts, Audience, Language, MailKind, Party, Practice};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use termin_domain::{Caller, Domain, DomainError};
use termin_fhir::ResourceType;
use termin_search::{Handling, SearchOptions};
use termin_store::{ClaimedMail, DomainEvent, MailOutcome, MailStore, OutgoingMail, ResourceStore};

/// The `Organization.contact.purpose` that marks the practice's address for appointment
/// messages (its `telecom` of system `email`).
pub const CONTACT_PURPOSE_SYSTEM: &str = "https://termin.at/fhir/CodeSystem/contact-purpose";
pub const CONTACT_PURPOSE_CODE: &str = "appointment-notifications";

/// Outbox events made into messages per step; Appointments looked at per reminder page.
const OUTBOX_PAGE: usize = 500;
const REMINDER_PAGE: usize = 100;

/// How the connection to an `smtp://` server is secured (`smtps://` is TLS from the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    Required,
    Opportunistic,
    Never,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtp://user:pass@host:port` or `smtps://...`.
    pub smtp_url: String,
    pub starttls: StartTls,
    /// The sender (`From`), a mailbox such as `Praxis <termine@example.org>`.
    pub from: String,
    /// The FHIR base; its host makes UIDs and Message-IDs unique.
    pub base_url: String,
    pub interval: Duration,
    /// The longest an SMTP conversation may take.
    pub timeout: Duration,
    pub retry_base: Duration,
    pub max_backoff: Duration,
    /// Temporary failures are retried until a message is this old.
    pub give_up_after: Duration,
    /// `None`: no reminders.
    pub reminder_before: Option<Duration>,
    /// Times in messages are told in this zone.
    pub time_zone: TimeZone,
}

pub struct Mailer {
    domain: Arc<Domain>,
    store: Arc<dyn ResourceStore>,
    mails: Arc<dyn MailStore>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The server's host name in UIDs and Message-IDs.
    host: String,
    config: MailConfig,
    /// This node's name on leases.
    owner: String,
}

/// The addresses one message set goes to.
struct Recipients {
    patient: Option<(Address, Language)>,
    practice: Option<Address>,
}

impl Mailer {
    /// Sets up sending; messages are made for the outbox events from the first start on
    /// (the cursor is placed before the server takes requests).
    pub async fn new(
        domain: Arc<Domain>,
        store: Arc<dyn ResourceStore>,
        mails: Arc<dyn MailStore>,
        config: MailConfig,
    ) -> Result<Self, String> {
        let from: Mailbox = config.from.parse().map_err(|e| format!("smtp_from {:?} is not an e-mail address: {e}", config.from))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp_url(&config.smtp_url, config.starttls)?)
            .map_err(|e| format!("smtp_url: {e}"))?
            .timeout(Some(config.timeout))
            .build();
        let host = reqwest::Url::parse(&config.base_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned());
        let owner = format!("node-{}", uuid::Uuid::new_v4());
        // A claim that ends at once: it only places the cursor when there is none.
        let now = Timestamp::now();
        mails.claim_mail_cursor(&owner, now, now).await.map_err(|e| format!("e-mail: {e}"))?;
        Ok(Mailer { domain, store, mails, transport, from, host, config, owner })
    }

    /// Makes and sends messages until the process ends.
    pub async fn run(self) {
        let mut ticks = tokio::time::interval(self.config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = self.make_messages().await {
                tracing::warn!(error = %e, "making e-mail messages failed; will retry");
            }
            if let Err(e) = self.send_due().await {
                tracing::warn!(error = %e, "sending e-mail failed; will retry");
            }
        }
    }

    /// A lease covers one SMTP conversation (or one step of making messages) with room to
    /// spare; after a crash the work waits this long for another node.
    fn lease_until(&self, now: Timestamp) -> Timestamp {
        let span = SignedDuration::try_from(self.config.timeout * 2).unwrap_or(SignedDuration::from_secs(20));
        now.checked_add(span + SignedDuration::from_secs(5)).unwrap_or(now)
    }

    /// While this node holds the outbox cursor: queues the messages of new outbox events,
    /// then the reminders that are due.
    async fn make_messages(&self) -> Result<(), String> {
        let now = Timestamp::now();
        let Some(mut through) = self.mails.claim_mail_cursor(&self.owner, now, self.lease_until(now)).await.map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        loop {
            let events = self.store.events(through, OUTBOX_PAGE).await.map_err(|e| e.to_string())?;
            let Some(&(last, _)) = events.last() else { break };
            let mut mails = Vec::new();
            for (seq, event) in &events {
                mails.extend(self.messages_of_event(*seq, event).await.map_err(|e| e.to_string())?);
            }
            if !self.mails.queue_mail(&self.owner, Some(last), &mails, Timestamp::now()).await.map_err(|e| e.to_string())? {
                return Ok(()); // the lease was lost
            }
            through = last;
            if events.len() < OUTBOX_PAGE {
                break;
            }
        }
        if let Some(before) = self.config.reminder_before {
            self.queue_reminders(before).await?;
        }
        Ok(())
    }

    async fn messages_of_event(&self, seq: u64, event: &DomainEvent) -> Result<Vec<OutgoingMail>, DomainError> {
        if event.resource_type != ResourceType::Appointment {
            return Ok(Vec::new());
        }
        let detail: Value = serde_json::from_str(&event.detail).unwrap_or(Value::Null);
        // Older events do not say who made the change: the practice, as before patients could.
        let by = match detail.get("by").and_then(Value::as_str) {
            Some("patient") => Party::Patient,
            _ => Party::Practice,
        };
        let ctx = Caller::system("mail");
        let kind = match (event.kind.as_str(), detail.get("status").and_then(Value::as_str)) {
            ("appointment-created", Some("booked")) => MailKind::Booked,
            ("appointment-created", Some("pending")) => MailKind::Pending,
            ("appointment-confirmed", _) => MailKind::Confirmed,
            ("appointment-cancelled", _) => MailKind::Cancelled { by },
            ("appointment-postponed", _) => {
                let previous = match event.version.checked_sub(1).filter(|v| *v > 0) {
                    Some(version) => self.body(&ctx, ResourceType::Appointment, &event.resource_id, Some(version)).await?,
                    None => None,
                };
                MailKind::Postponed { by, previous_start: previous.as_ref().and_then(|p| instant(p, "start")) }
            }
            _ => return Ok(Vec::new()),
        };
        let Some(appointment) = self.body(&ctx, ResourceType::Appointment, &event.resource_id, Some(event.version)).await? else {
            return Ok(Vec::new());
        };
        self.messages(&format!("outbox:{seq}"), &kind, &appointment, event.version).await
    }

    /// Queues a reminder for each booked Appointment starting within `before` that has none.
    async fn queue_reminders(&self, before: Duration) -> Result<(), String> {
        let now = Timestamp::now();
        let horizon = now.checked_add(SignedDuration::try_from(before).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let format = |at: Timestamp| at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let pairs = [
            ("status".to_owned(), "booked".to_owned()),
            ("date".to_owned(), format!("ge{}", format(now))),
            ("date".to_owned(), format!("le{}", format(horizon))),
        ];
        let options = SearchOptions {
            server_base: Some(&self.config.base_url),
            now,
            default_count: REMINDER_PAGE,
            max_count: REMINDER_PAGE,
            handling: Handling::Strict,
        };
        let mut request = self
            .domain
            .search_parameters()
            .parse_search(ResourceType::Appointment, &pairs, &options)
            .map_err(|e| format!("reminder search: {e:?}"))?
            .request;
        let ctx = Caller::system("mail");
        loop {
            let page = self.domain.resources.search(&ctx, &request).await.map_err(|e| e.to_string())?;
            let due: Vec<(String, u64, Map<String, Value>)> = page
                .matches
                .iter()
                .filter_map(|found| {
                    let body: Map<String, Value> = serde_json::from_str(found.body.as_deref()?).ok()?;
                    let start = instant(&body, "start")?;
                    Some((format!("reminder:{}:{}", found.id, start.as_microsecond()), found.version, body))
                })
                .collect();
            let keys: Vec<String> = due.iter().map(|(key, _, _)| key.clone()).collect();
            let known = self.mails.known_mail_events(&keys).await.map_err(|e| e.to_string())?;
            let mut mails = Vec::new();
            for (key, version, body) in due.iter().filter(|(key, _, _)| !known.contains(key)) {
                mails.extend(self.messages(key, &MailKind::Reminder, body, *version).await.map_err(|e| e.to_string())?);
            }
            if !mails.is_empty() {
                self.mails.queue_mail(&self.owner, None, &mails, Timestamp::now()).await.map_err(|e| e.to_string())?;
            }
            match page.next {
                Some(next) => request.page = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// The messages of one event about `appointment` (as of `version`) to those it concerns.
    async fn messages(&self, key: &str, kind: &MailKind, appointment: &Map<String, Value>, version: u64) -> Result<Vec<OutgoingMail>, DomainError> {
        let ctx = Caller::system("mail");
        let patient = match kind.concerns(Audience::Patient) {
            true => self.patient_address(&ctx, appointment).await?,
            false => None,
        };
        if patient.is_none() && !kind.concerns(Audience::Practice) {
            return Ok(Vec::new());
        }
        let (facts, practice) = self.facts(&ctx, appointment, version).await?;
        let recipients = Recipients { patient, practice: practice.filter(|_| kind.concerns(Audience::Practice)) };
        let mut out = Vec::new();
        if let Some((address, language)) = recipients.patient {
            out.extend(self.render(key, kind, Audience::Patient, language, &facts, address));
        }
        if let Some(address) = recipients.practice {
            out.extend(self.render(key, kind, Audience::Practice, Language::German, &facts, address));
        }
        Ok(out)
    }

    fn render(
        &self,
        key: &str,
        kind: &MailKind,
        audience: Audience,
        language: Language,
        facts: &AppointmentFacts,
        to: Address,
    ) -> Option<OutgoingMail> {
        let texts = content::compose(kind, audience, language, facts, &self.config.time_zone);
        let method = if matches!(kind, MailKind::Cancelled { .. }) { ics::Method::Cancel } else { ics::Method::Request };
        let summary = facts.service.clone().unwrap_or_else(|| texts.subject.clone());
        let from = self.from.email.to_string();
        let attendee = to.to_string();
        let parties = ics::Parties { organizer: (facts.practice.name.as_deref(), &from), attendee: &attendee };
        let calendar = ics::calendar(method, facts, &summary, &parties, &self.host, Timestamp::now());
        let calendar_type = ContentType::parse(&format!("text/calendar; charset=utf-8; method={}", method.as_str())).ok()?;
        let built = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.clone()))
            .subject(texts.subject)
            .message_id(Some(format!("<{}@{}>", uuid::Uuid::new_v4(), self.host)))
            .multipart(
                MultiPart::mixed()
                    .multipart(MultiPart::alternative_plain_html(texts.plain, texts.html))
                    .singlepart(Attachment::new("termin.ics".to_owned()).body(calendar, calendar_type)),
            );
        match built {
            Ok(message) => Some(OutgoingMail {
                event_key: key.to_owned(),
                recipient: attendee,
                message: String::from_utf8_lossy(&message.formatted()).into_owned(),
            }),
            Err(e) => {
                tracing::warn!(event = %key, error = %e, "an e-mail message could not be built; it is left out");
                None
            }
        }
    }

    /// Sends the due messages one at a time, each under its own lease.
    async fn send_due(&self) -> Result<(), String> {
        loop {
            let now = Timestamp::now();
            let Some(claimed) = self.mails.claim_mail(&self.owner, now, self.lease_until(now)).await.map_err(|e| e.to_string())? else {
                return Ok(());
            };
            let outcome = self.send(&claimed).await;
            self.mails
                .record_mail(&claimed.mail.event_key, &claimed.mail.recipient, &self.owner, &outcome, Timestamp::now())
                .await
                .map_err(|e| e.to_string())?;
        }
    }

    async fn send(&self, claimed: &ClaimedMail) -> MailOutcome {
        let envelope = claimed
            .mail
            .recipient
            .parse::<Address>()
            .map_err(|e| e.to_string())
            .and_then(|to| lettre::address::Envelope::new(Some(self.from.email.clone()), vec![to]).map_err(|e| e.to_string()));
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err(error) => return MailOutcome::GaveUp { error },
        };
        // lettre's timeout bounds each SMTP command; the whole conversation must end within the
        // lease too, or another node could send the message meanwhile.
        let conversation = self.config.timeout * 2;
        let attempt = tokio::time::timeout(conversation, self.transport.send_raw(&envelope, claimed.mail.message.as_bytes())).await;
        let outcome = match attempt {
            Ok(Ok(_)) => MailOutcome::Sent,
            Ok(Err(e)) if e.is_permanent() => MailOutcome::GaveUp { error: e.to_string() },
            Ok(Err(e)) => self.retry(claimed, e.to_string()),
            Err(_) => self.retry(claimed, format!("the SMTP conversation took longer than {conversation:?}")),
        };
        let (counter, detail) = match &outcome {
            MailOutcome::Sent => ("termin_mail_sent_total", None),
            MailOutcome::Retry { error, .. } => ("termin_mail_retries_total", Some(error)),
            MailOutcome::GaveUp { error } => ("termin_mail_failed_total", Some(error)),
        };
        metrics::counter!(counter).increment(1);
        if let Some(error) = detail {
            tracing::info!(event = %claimed.mail.event_key, error = %error, "e-mail not sent");
        }
        outcome
    }

    /// A temporary failure: retried with backoff while the message is younger than `give_up_after`.
    fn retry(&self, claimed: &ClaimedMail, error: String) -> MailOutcome {
        let now = Timestamp::now();
        let age = now.duration_since(claimed.queued_at);
        let backoff = SignedDuration::try_from(self.backoff(claimed.attempts + 1)).unwrap_or(SignedDuration::from_secs(60));
        match SignedDuration::try_from(self.config.give_up_after) {
            Ok(limit) if age < limit => MailOutcome::Retry { at: now.checked_add(backoff).unwrap_or(now), error },
            _ => MailOutcome::GaveUp { error: format!("still failing after {:?}: {error}", self.config.give_up_after) },
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        self.config.retry_base.saturating_mul(factor).min(self.config.max_backoff)
    }

    /// The patient's e-mail address and language.
    async fn patient_address(&self, ctx: &Caller, appointment: &Map<String, Value>) -> Result<Option<(Address, Language)>, DomainError> {
        let reference = appointment
            .get("subject")
            .and_then(reference_of)
            .filter(|(t, _)| *t == ResourceType::Patient)
            .or_else(|| actors(appointment).into_iter().find(|(t, _)| *t == ResourceType::Patient));
        let Some((_, id)) = reference else { return Ok(None) };
        let Some(patient) = self.body(ctx, ResourceType::Patient, &id, None).await? else { return Ok(None) };
        Ok(email(&patient).map(|address| (address, language(&patient))))
    }

    /// The facts of the message and the practice's notification address: the practice is the
    /// Organization behind the Appointment's actors or its Schedules' actors.
    async fn facts(&self, ctx: &Caller, appointment: &Map<String, Value>, version: u64) -> Result<(AppointmentFacts, Option<Address>), DomainError> {
        let mut actors = actors(appointment);
        for slot in termin_domain::subscriptions::slot_ids(appointment) {
            if let Some(slot) = self.body(ctx, ResourceType::Slot, &slot, None).await?
                && let Some((_, schedule)) = slot.get("schedule").and_then(reference_of)
                && let Some(schedule) = self.body(ctx, ResourceType::Schedule, &schedule, None).await?
            {
                actors.extend(schedule.get("actor").and_then(Value::as_array).into_iter().flatten().filter_map(reference_of));
            }
        }
        let mut service = service_text(appointment);
        let mut place = None;
        let mut organization = None;
        for (resource_type, id) in &actors {
            match resource_type {
                ResourceType::HealthcareService => {
                    if let Some(hcs) = self.body(ctx, *resource_type, id, None).await? {
                        service = service.or_else(|| text_of(&hcs, "name"));
                        organization = organization.or_else(|| hcs.get("providedBy").and_then(reference_of).map(|(_, id)| id));
                        if place.is_none()
                            && let Some((_, location)) = hcs.get("location").and_then(Value::as_array).and_then(|l| l.first()).and_then(reference_of)
                        {
                            place = self.place(ctx, &location).await?;
                        }
                    }
                }
                ResourceType::PractitionerRole => {
                    if let Some(role) = self.body(ctx, *resource_type, id, None).await? {
                        organization = organization.or_else(|| role.get("organization").and_then(reference_of).map(|(_, id)| id));
                    }
                }
                ResourceType::Organization => organization = organization.or_else(|| Some(id.clone())),
                ResourceType::Location if place.is_none() => place = self.place(ctx, id).await?,
                _ => {}
            }
        }
        if organization.is_none()
            && let Some((_, practitioner)) = actors.iter().find(|(t, _)| *t == ResourceType::Practitioner)
        {
            organization = self.organization_of_practitioner(ctx, practitioner).await?;
        }
        let (practice, notify) = match organization {
            Some(id) => match self.body(ctx, ResourceType::Organization, &id, None).await? {
                Some(org) => practice(&org),
                None => (Practice::default(), None),
            },
            None => (Practice::default(), None),
        };
        let facts = AppointmentFacts {
            id: appointment.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            version,
            start: instant(appointment, "start"),
            end: instant(appointment, "end"),
            service,
            place,
            practice,
        };
        Ok((facts, notify))
    }

    async fn organization_of_practitioner(&self, ctx: &Caller, practitioner: &str) -> Result<Option<String>, DomainError> {
        let options = SearchOptions {
            server_base: Some(&self.config.base_url),
            now: Timestamp::now(),
            default_count: 1,
            max_count: 1,
            handling: Handling::Strict,
        };
        let pairs = [("practitioner".to_owned(), format!("Practitioner/{practitioner}"))];
        let Ok(parsed) = self.domain.search_parameters().parse_search(ResourceType::PractitionerRole, &pairs, &options) else {
            return Ok(None);
        };
        let page = self.domain.resources.search(ctx, &parsed.request).await?;
        Ok(page
            .matches
            .first()
            .and_then(|role| role.body.as_deref())
            .and_then(|body| serde_json::from_str::<Map<String, Value>>(body).ok())
            .and_then(|role| role.get("organization").and_then(reference_of).map(|(_, id)| id)))
    }

    /// A Location as a line: its name and address.
    async fn place(&self, ctx: &Caller, id: &str) -> Result<Option<String>, DomainError> {
        let Some(location) = self.body(ctx, ResourceType::Location, id, None).await? else { return Ok(None) };
        let address = location.get("address").and_then(|a| {
            text_of(a.as_object()?, "text").or_else(|| {
                let lines = a.get("line").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
                let parts: Vec<&str> = lines.chain(["postalCode", "city"].iter().filter_map(|k| a.get(*k).and_then(Value::as_str))).collect();
                (!parts.is_empty()).then(|| parts.join(", "))
            })
        });
        let parts: Vec<String> = [text_of(&location, "name"), address].into_iter().flatten().collect();
        Ok((!parts.is_empty()).then(|| parts.join(", ")))
    }

    async fn body(&self, ctx: &Caller, resource_type: ResourceType, id: &str, version: Option<u64>) -> Result<Option<Map<String, Value>>, DomainError> {
        crate::read_body(&self.domain.resources, ctx, resource_type, id, version).await
    }
}

/// The URL lettre is given: `tls=` says how an `smtp://` connection is secured.
fn smtp_url(url: &str, starttls: StartTls) -> Result<String, String> {
    if url.starts_with("smtps://") {
        return Ok(url.to_owned());
    }
    if !url.starts_with("smtp://") {
        return Err("smtp_url must start with smtp:// or smtps://".to_owned());
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(match starttls {
        StartTls::Required => format!("{url}{separator}tls=required"),
        StartTls::Opportunistic => format!("{url}{separator}tls=opportunistic"),
        StartTls::Never => url.to_owned(),
    })
}

fn instant(body: &Map<String, Value>, element: &str) -> Option<Timestamp> {
    body.get(element).and_then(Value::as_str).and_then(|t| t.parse().ok())
}

fn text_of(body: &Map<String, Value>, element: &str) -> Option<String> {
    body.get(element).and_then(Value::as_str).map(str::to_owned).filter(|t| !t.trim().is_empty())
}

/// A local reference's type and id (absolute references under any base included).
fn reference_of(value: &Value) -> Option<(ResourceType, String)> {
    let reference = value.get("reference").and_then(Value::as_str)?;
    let mut segments = reference.rsplit('/');
    let id = segments.next()?;
    let resource_type = segments.next()?.parse().ok()?;
    Some((resource_type, id.to_owned()))
}

fn actors(appointment: &Map<String, Value>) -> Vec<(ResourceType, String)> {
    appointment
        .get("participant")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("actor").and_then(reference_of))
        .collect()
}

/// `Appointment.serviceType`: its text or its first coding's display.
fn service_text(appointment: &Map<String, Value>) -> Option<String> {
    let concept = appointment.get("serviceType")?.as_array()?.first()?.get("concept")?;
    concept.get("text").and_then(Value::as_str).map(str::to_owned).or_else(|| {
        concept.get("coding")?.as_array()?.iter().find_map(|c| c.get("display").and_then(Value::as_str).map(str::to_owned))
    })
}

/// The first current e-mail address in `telecom`.
fn email(resource: &Map<String, Value>) -> Option<Address> {
    emails(resource.get("telecom")).into_iter().next()
}

fn emails(telecom: Option<&Value>) -> Vec<Address> {
    telecom
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("system").and_then(Value::as_str) == Some("email") && t.get("use").and_then(Value::as_str) != Some("old"))
        .filter_map(|t| t.get("value").and_then(Value::as_str)?.trim().trim_start_matches("mailto:").parse().ok())
        .collect()
}

/// English when the patient's preferred (else first) language is English; German otherwise.
fn language(patient: &Map<String, Value>) -> Language {
    let communication = patient.get("communication").and_then(Value::as_array).cloned().unwrap_or_default();
    let chosen = communication
        .iter()
        .find(|c| c.get("preferred").and_then(Value::as_bool) == Some(true))
        .or_else(|| communication.first());
    let code = chosen.and_then(|c| c.get("language")).and_then(|l| {
        l.get("coding").and_then(Value::as_array).and_then(|c| c.iter().find_map(|c| c.get("code").and_then(Value::as_str)))
    });
    match code {
        Some(code) if code.eq_ignore_ascii_case("en") || code.to_ascii_lowercase().starts_with("en-") => Language::English,
        _ => Language::German,
    }
}

/// The practice as messages name it (name, phone, general e-mail) and its notification
/// address: the `contact` whose purpose is [`CONTACT_PURPOSE_CODE`].
fn practice(org: &Map<String, Value>) -> (Practice, Option<Address>) {
    let contacts = org.get("contact").and_then(Value::as_array).cloned().unwrap_or_default();
    let notify = contacts
        .iter()
        .filter(|c| {
            c.get("purpose").and_then(|p| p.get("coding")).and_then(Value::as_array).is_some_and(|codings| {
                codings.iter().any(|coding| {
                    coding.get("system").and_then(Value::as_str) == Some(CONTACT_PURPOSE_SYSTEM)
                        && coding.get("code").and_then(Value::as_str) == Some(CONTACT_PURPOSE_CODE)
                })
            })
        })
        .find_map(|c| emails(c.get("telecom")).into_iter().next());
    let phone = org
        .get("telecom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|t| t.get("system").and_then(Value::as_str) == Some("phone"))
        .and_then(|t| t.get("value").and_then(Value::as_str))
        .map(str::to_owned);
    let practice = Practice { name: text_of(org, "name"), phone, email: email(org).map(|a| a.to_string()) };
    (practice, notify)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn english_only_when_the_patient_prefers_it() {
        let lang = |code: &str| json!({"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": code}]}});
        assert_eq!(language(&map(json!({}))), Language::German);
        assert_eq!(language(&map(json!({"communication": [lang("en-GB")]}))), Language::English);
        let mut preferred = lang("de");
        preferred["preferred"] = json!(true);
        assert_eq!(language(&map(json!({"communication": [lang("en"), preferred]}))), Language::German);
        assert_eq!(language(&map(json!({"communication": [lang("fr")]}))), Language::German);
    }

    #[test]
    fn the_practice_address_is_the_contact_with_the_notification_purpose() {
        let org = map(json!({
            "name": "Praxis am Ring",
            "telecom": [{"system": "phone", "value": "+43 1 234"}, {"system": "email", "value": "info@praxis.example"}],
            "contact": [
                {"telecom": [{"system": "email", "value": "billing@praxis.example"}]},
                {"purpose": {"coding": [{"system": CONTACT_PURPOSE_SYSTEM, "code": CONTACT_PURPOSE_CODE}]},
                 "telecom": [{"system": "email", "value": "termine@praxis.example"}]}
            ]
        }));
        let (practice, notify) = practice(&org);
        assert_eq!(notify.unwrap().to_string(), "termine@praxis.example");
        assert_eq!(practice.phone.as_deref(), Some("+43 1 234"));
        assert_eq!(practice.email.as_deref(), Some("info@praxis.example"));
    }

    #[test]
    fn starttls_is_asked_of_lettre_by_url() {
        assert_eq!(smtp_url("smtp://u:p@mail:587", StartTls::Required).unwrap(), "smtp://u:p@mail:587?tls=required");
        assert_eq!(smtp_url("smtp://mail:25", StartTls::Never).unwrap(), "smtp://mail:25");
        assert_eq!(smtp_url("smtps://mail", StartTls::Required).unwrap(), "smtps://mail");
        assert!(smtp_url("http://mail", StartTls::Never).is_err());
    }
}
