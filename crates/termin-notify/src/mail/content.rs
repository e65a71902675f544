//! What an appointment e-mail says, in German or English, as plain text and HTML. Only what
//! the recipient needs: the service, the time, the place, the practice's contact and how to
//! cancel — never the reason for the visit, notes or other clinical text.

use jiff::Timestamp;
use jiff::tz::TimeZone;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    German,
    English,
}

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Patient,
    Practice,
}

/// What happened to the appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailKind {
    Booked,
    Pending,
    Confirmed,
    Cancelled { by: Party },
    Postponed { by: Party, previous_start: Option<Timestamp> },
    Reminder,
}

/// Whom a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Patient,
    Practice,
}

impl MailKind {
    /// Whether `audience` is told: the patient of what the practice did (and of bookings and
    /// reminders), the practice of bookings and of every cancellation and move.
    pub fn concerns(&self, audience: Audience) -> bool {
        match (audience, self) {
            (Audience::Patient, MailKind::Cancelled { by, .. } | MailKind::Postponed { by, .. }) => *by == Party::Practice,
            (Audience::Patient, _) => true,
            (Audience::Practice, MailKind::Confirmed | MailKind::Reminder) => false,
            (Audience::Practice, _) => true,
        }
    }
}

/// The practice as the message names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Practice {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// The facts of an appointment a message is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentFacts {
    pub id: String,
    /// The appointment's version the message describes (the iCalendar SEQUENCE).
    pub version: u64,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub service: Option<String>,
    pub place: Option<String>,
    pub practice: Practice,
}

/// A message's subject and bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    pub subject: String,
    pub plain: String,
    pub html: String,
}

const WEEKDAYS_DE: [&str; 7] = ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"];
const WEEKDAYS_EN: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS_EN: [&str; 12] = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
];

/// "Montag, 14.12.2026, 09:00–09:30 Uhr" or "Monday, 14 December 2026, 09:00–09:30", in the
/// practice's time zone.
pub fn when(language: Language, start: Timestamp, end: Option<Timestamp>, zone: &TimeZone) -> String {
    let start = start.to_zoned_datetime(zone.clone());
    let weekday = usize::from(start.weekday().to_monday_zero_offset().unsigned_abs());
    let until = end.map(|end| end.to_zoned_datetime(zone.clone())).map(|end| format!("–{:02}:{:02}", end.hour(), end.minute()));
    let until = until.unwrap_or_default();
    match language {
        Language::German => format!(
            "{}, {:02}.{:02}.{}, {:02}:{:02}{until} Uhr",
            WEEKDAYS_DE[weekday],
            start.day(),
            start.month(),
            start.year(),
            start.hour(),
            start.minute()
        ),
        Language::English => format!(
            "{}, {} {} {}, {:02}:{:02}{until}",
            WEEKDAYS_EN[weekday],
            start.day(),
            MONTHS_EN[usize::from(start.month().unsigned_abs()) - 1],
            start.year(),
            start.hour(),
            start.minute()
        ),
    }
}

/// Composes the message of `kind` for `audience`.
pub fn compose(kind: &MailKind, audience: Audience, language: Language, facts: &AppointmentFacts, zone: &TimeZone) -> Texts {
    let de = language == Language::German;
    let service = facts.service.clone().unwrap_or_else(|| if de { "Termin" } else { "Appointment" }.to_owned());
    let time = facts.start.map(|start| when(language, start, facts.end, zone));
    let headline = headline(kind, audience, language, zone);
    let subject = match &time {
        Some(time) => format!("{}: {service}, {time}", subject_word(kind, audience, language)),
        None => format!("{}: {service}", subject_word(kind, audience, language)),
    };
    let mut rows: Vec<(&str, String)> = vec![(if de { "Leistung" } else { "Service" }, service.clone())];
    if let Some(time) = time {
        rows.push((if de { "Zeit" } else { "Time" }, time));
    }
    if let Some(place) = &facts.place {
        rows.push((if de { "Ort" } else { "Place" }, place.clone()));
    }
    let contact = practice_contact(&facts.practice, language);
    if !contact.is_empty() {
        rows.push((if de { "Ordination" } else { "Practice" }, contact));
    }
    if audience == Audience::Practice {
        rows.push((if de { "Termin" } else { "Appointment" }, format!("Appointment/{}", facts.id)));
    }
    let closing = closing(kind, audience, language, &facts.practice);
    let greeting = if de { "Guten Tag," } else { "Hello," };
    let mut plain = format!("{greeting}\n\n{headline}\n\n");
    for (label, value) in &rows {
        plain.push_str(&format!("{label}: {value}\n"));
    }
    if let Some(closing) = &closing {
        plain.push_str(&format!("\n{closing}\n"));
    }
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n<p>{}</p>\n<p>{}</p>\n<table>\n",
        if de { "de" } else { "en" },
        escape(&subject),
        escape(greeting),
        escape(&headline)
    );
    for (label, value) in &rows {
        html.push_str(&format!("<tr><th align=\"left\">{}</th><td>{}</td></tr>\n", escape(label), escape(value)));
    }
    html.push_str("</table>\n");
    if let Some(closing) = &closing {
        html.push_str(&format!("<p>{}</p>\n", escape(closing)));
    }
    html.push_str("</body></html>\n");
    Texts { subject, plain, html }
}

fn subject_word(kind: &MailKind, audience: Audience, language: Language) -> &'static str {
    let de = language == Language::German;
    match (kind, audience) {
        (MailKind::Booked, Audience::Patient) => if de { "Termin gebucht" } else { "Appointment booked" },
        (MailKind::Booked, Audience::Practice) => if de { "Neue Buchung" } else { "New booking" },
        (MailKind::Pending, Audience::Patient) => if de { "Terminanfrage erhalten" } else { "Appointment request received" },
        (MailKind::Pending, Audience::Practice) => if de { "Terminanfrage zu bestätigen" } else { "Appointment request to confirm" },
        (MailKind::Confirmed, _) => if de { "Termin bestätigt" } else { "Appointment confirmed" },
        (MailKind::Cancelled { .. }, _) => if de { "Termin abgesagt" } else { "Appointment cancelled" },
        (MailKind::Postponed { .. }, _) => if de { "Termin verschoben" } else { "Appointment moved" },
        (MailKind::Reminder, _) => if de { "Terminerinnerung" } else { "Appointment reminder" },
    }
}

fn headline(kind: &MailKind, audience: Audience, language: Language, zone: &TimeZone) -> String {
    let de = language == Language::German;
    let by = |party: &Party| match (party, de) {
        (Party::Patient, true) => "von der Patientin bzw. dem Patienten",
        (Party::Patient, false) => "by the patient",
        (Party::Practice, true) => "von der Ordination",
        (Party::Practice, false) => "by the practice",
    };
    match (kind, audience) {
        (MailKind::Booked, Audience::Patient) => {
            if de { "Ihr Termin ist gebucht." } else { "Your appointment is booked." }.to_owned()
        }
        (MailKind::Booked, Audience::Practice) => if de { "Ein Termin wurde gebucht." } else { "An appointment was booked." }.to_owned(),
        (MailKind::Pending, Audience::Patient) => if de {
            "Ihre Terminanfrage ist eingegangen. Die Ordination bestätigt sie; Sie erhalten dann eine weitere Nachricht."
        } else {
            "Your appointment request has been received. The practice will confirm it; you will then get another message."
        }
        .to_owned(),
        (MailKind::Pending, Audience::Practice) => if de {
            "Eine Terminanfrage wartet auf Ihre Bestätigung."
        } else {
            "An appointment request awaits your confirmation."
        }
        .to_owned(),
        (MailKind::Confirmed, _) => if de { "Ihr Termin ist bestätigt." } else { "Your appointment is confirmed." }.to_owned(),
        (MailKind::Cancelled { by: party }, _) => {
            if de { format!("Der Termin wurde {} abgesagt.", by(party)) } else { format!("The appointment was cancelled {}.", by(party)) }
        }
        (MailKind::Postponed { by: party, previous_start }, _) => {
            let before = previous_start.map(|start| when(language, start, None, zone));
            match (de, before) {
                (true, Some(before)) => format!("Der Termin wurde {} verschoben (bisher: {before}).", by(party)),
                (true, None) => format!("Der Termin wurde {} verschoben.", by(party)),
                (false, Some(before)) => format!("The appointment was moved {} (previously: {before}).", by(party)),
                (false, None) => format!("The appointment was moved {}.", by(party)),
            }
        }
        (MailKind::Reminder, _) => if de { "Wir erinnern Sie an Ihren Termin." } else { "This is a reminder of your appointment." }.to_owned(),
    }
}

/// How the patient cancels: by contacting the practice.
fn closing(kind: &MailKind, audience: Audience, language: Language, practice: &Practice) -> Option<String> {
    if audience == Audience::Practice || matches!(kind, MailKind::Cancelled { .. }) {
        return None;
    }
    let contact = [practice.phone.as_deref(), practice.email.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(", ");
    Some(match (language, contact.is_empty()) {
        (Language::German, false) => {
            format!("Wenn Sie den Termin nicht wahrnehmen können, sagen Sie ihn bitte rechtzeitig bei der Ordination ab: {contact}.")
        }
        (Language::German, true) => {
            "Wenn Sie den Termin nicht wahrnehmen können, sagen Sie ihn bitte rechtzeitig bei der Ordination ab.".to_owned()
        }
        (Language::English, false) => format!("If you cannot attend, please cancel in good time with the practice: {contact}."),
        (Language::English, true) => "If you cannot attend, please cancel in good time with the practice.".to_owned(),
    })
}

fn practice_contact(practice: &Practice, language: Language) -> String {
    let phone = practice.phone.as_ref().map(|p| format!("{} {p}", if language == Language::German { "Tel." } else { "phone" }));
    [practice.name.clone(), phone, practice.email.clone()].into_iter().flatten().collect::<Vec<_>>().join(", ")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> AppointmentFacts {
        AppointmentFacts {
            id: "a1".into(),
            version: 1,
            start: Some("2026-12-14T08:00:00Z".parse().unwrap()),
            end: Some("2026-12-14T08:30:00Z".parse().unwrap()),
            service: Some("Physiotherapie <Einzel>".into()),
            place: Some("Praxis am Ring, Ringstraße 1, Wien".into()),
            practice: Practice { name: Some("Praxis am Ring".into()), phone: Some("+43 1 234".into()), email: None },
        }
    }

    fn vienna() -> TimeZone {
        TimeZone::get("Europe/Vienna").unwrap()
    }

    #[test]
    fn times_are_local_and_in_the_language() {
        let start = "2026-12-14T08:00:00Z".parse().unwrap();
        let end = Some("2026-12-14T08:30:00Z".parse().unwrap());
        assert_eq!(when(Language::German, start, end, &vienna()), "Montag, 14.12.2026, 09:00–09:30 Uhr");
        assert_eq!(when(Language::English, start, end, &vienna()), "Monday, 14 December 2026, 09:00–09:30");
    }

    #[test]
    fn messages_name_service_time_place_and_how_to_cancel() {
        let texts = compose(&MailKind::Booked, Audience::Patient, Language::German, &facts(), &vienna());
        assert_eq!(texts.subject, "Termin gebucht: Physiotherapie <Einzel>, Montag, 14.12.2026, 09:00–09:30 Uhr");
        assert!(texts.plain.contains("Ort: Praxis am Ring, Ringstraße 1, Wien"), "{}", texts.plain);
        assert!(texts.plain.contains("sagen Sie ihn bitte rechtzeitig bei der Ordination ab: +43 1 234."), "{}", texts.plain);
        assert!(texts.html.contains("Physiotherapie &lt;Einzel&gt;") && !texts.html.contains("<Einzel>"), "{}", texts.html);
        let moved = MailKind::Postponed { by: Party::Practice, previous_start: Some("2026-12-13T08:00:00Z".parse().unwrap()) };
        let texts = compose(&moved, Audience::Patient, Language::English, &facts(), &vienna());
        assert!(texts.plain.contains("moved by the practice (previously: Sunday, 13 December 2026, 09:00)"), "{}", texts.plain);
    }

    #[test]
    fn the_patient_hears_of_what_the_practice_did() {
        let by_patient = MailKind::Cancelled { by: Party::Patient };
        assert!(!by_patient.concerns(Audience::Patient));
        assert!(by_patient.concerns(Audience::Practice));
        assert!(MailKind::Cancelled { by: Party::Practice }.concerns(Audience::Patient));
        assert!(!MailKind::Reminder.concerns(Audience::Practice));
    }
}
