use super::*;
use jiff::civil::date;
use std::collections::HashSet;

fn options(scale: Scale, seed: u64) -> SeedOptions {
    SeedOptions::new(scale, seed, date(2027, 3, 22))
}

fn render(options: &SeedOptions) -> Vec<String> {
    generate(options)
        .map(|resource| Value::Object(resource).to_string())
        .collect()
}

#[test]
fn same_options_give_identical_output() {
    let first = render(&options(Scale::Small, 7));
    assert_eq!(first, render(&options(Scale::Small, 7)));
}

#[test]
fn another_seed_gives_other_output() {
    let one = render(&options(Scale::Tiny, 1));
    let other = render(&options(Scale::Tiny, 2));
    assert_ne!(one, other);
}

#[test]
fn slot_counts_are_near_each_scales_target() {
    for scale in Scale::ALL {
        for start in [date(2027, 3, 22), date(2026, 1, 5), date(2026, 7, 6)] {
            let slots = counts(&SeedOptions::new(scale, 42, start))
                .into_iter()
                .find(|(resource_type, _)| *resource_type == "Slot")
                .map(|(_, count)| count)
                .expect("slots are counted");
            let target = scale.target_slots();
            assert!(
                slots.abs_diff(target) * 5 <= target,
                "{scale} from {start}: {slots} slots, target {target} ± 20%"
            );
        }
    }
}

#[test]
fn counts_match_what_is_generated() {
    let options = options(Scale::Small, 3);
    let mut generated: Vec<(&str, usize)> = Vec::new();
    for resource in generate(&options) {
        let resource_type = resource["resourceType"]
            .as_str()
            .expect("every resource has a type");
        match generated.iter_mut().find(|(t, _)| *t == resource_type) {
            Some((_, count)) => *count += 1,
            None => generated.push((
                LOAD_ORDER
                    .into_iter()
                    .find(|t| *t == resource_type)
                    .expect("known type"),
                1,
            )),
        }
    }
    assert_eq!(generated, counts(&options));
}

#[test]
fn ids_are_unique_and_references_point_backwards() {
    for scale in [Scale::Tiny, Scale::Small] {
        let mut seen = HashSet::new();
        for resource in generate(&options(scale, 11)) {
            let mut references = Vec::new();
            collect_references(&Value::Object(resource.clone()), &mut references);
            for reference in references {
                assert!(
                    seen.contains(&reference),
                    "{} refers to {reference} before it is loaded",
                    resource["id"]
                );
            }
            let key = format!(
                "{}/{}",
                resource["resourceType"].as_str().unwrap(),
                resource["id"].as_str().unwrap()
            );
            assert!(seen.insert(key.clone()), "{key} twice");
        }
    }
}

fn collect_references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("reference") {
                into.push(reference.clone());
            }
            map.values().for_each(|v| collect_references(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, into)),
        _ => {}
    }
}

/// Every role's opening hours start at the same wall-clock time every day; 2027's spring
/// change is on Sunday 28 March, so 08:00 in Vienna is 07:00Z before it and 06:00Z after.
#[test]
fn local_opening_hours_survive_the_spring_change() {
    let change: jiff::Timestamp = "2027-03-28T01:00:00Z".parse().unwrap();
    let (mut before, mut after) = (0, 0);
    for slot in generate(&options(Scale::Small, 5)).filter(|r| r["resourceType"] == "Slot") {
        let text = slot["start"].as_str().unwrap();
        let instant: jiff::Timestamp = text.parse().unwrap();
        if !text.contains("T08:00:00") {
            continue;
        }
        if instant < change {
            assert!(
                text.ends_with("+01:00") && instant.to_string().ends_with("T07:00:00Z"),
                "{text} = {instant}"
            );
            before += 1;
        } else {
            assert!(
                text.ends_with("+02:00") && instant.to_string().ends_with("T06:00:00Z"),
                "{text} = {instant}"
            );
            after += 1;
        }
        assert!(
            !text.starts_with("2027-03-29"),
            "{text}: Easter Monday is a public holiday"
        );
    }
    assert!(
        before > 0 && after > 0,
        "08:00 slots before ({before}) and after ({after}) the change"
    );
}

#[test]
fn busy_slots_have_a_booked_appointment_at_the_same_time() {
    let resources: Vec<Map<String, Value>> = generate(&options(Scale::Small, 9)).collect();
    let mut appointments = 0;
    for pair in resources.windows(2) {
        let (slot, next) = (&pair[0], &pair[1]);
        if slot["resourceType"] != "Slot" || slot["status"] != "busy" {
            continue;
        }
        appointments += 1;
        assert_eq!(next["resourceType"], "Appointment");
        assert_eq!(next["status"], "booked");
        assert_eq!(
            next["slot"][0]["reference"],
            format!("Slot/{}", slot["id"].as_str().unwrap())
        );
        assert_eq!(
            (&next["start"], &next["end"]),
            (&slot["start"], &slot["end"])
        );
        let actors: Vec<&str> = next["participant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["actor"]["reference"].as_str().unwrap())
            .collect();
        assert!(
            actors[0].starts_with("Patient/") && actors[1].starts_with("PractitionerRole/"),
            "{actors:?}"
        );
    }
    let total = resources
        .iter()
        .filter(|r| r["resourceType"] == "Appointment")
        .count();
    assert_eq!(appointments, total);
    assert!(
        (300..700).contains(&total),
        "{total} appointments for about 10,000 slots"
    );
}

#[test]
fn patients_have_distinct_valid_social_security_numbers() {
    let mut seen = HashSet::new();
    for patient in generate(&options(Scale::Small, 4)).filter(|r| r["resourceType"] == "Patient") {
        let identifier = &patient["identifier"][0];
        assert_eq!(identifier["system"], "urn:oid:1.2.40.0.10.1.4.3.1");
        let number = identifier["value"].as_str().unwrap();
        let birth_date: jiff::civil::Date = patient["birthDate"].as_str().unwrap().parse().unwrap();
        let serial: u16 = number[..3].parse().unwrap();
        assert_eq!(svnr::svnr(serial, birth_date).as_deref(), Some(number));
        assert!(seen.insert(number.to_owned()), "{number} twice");
    }
    assert_eq!(seen.len(), 1_000);
}

#[test]
fn scale_names_parse() {
    for scale in Scale::ALL {
        assert_eq!(scale.as_str().parse::<Scale>(), Ok(scale));
    }
    assert_eq!("Medium".parse::<Scale>(), Ok(Scale::Medium));
    assert!("huge".parse::<Scale>().is_err());
}

/// Every Location has a position inside Austria (its bounding box), and a Vienna district's
/// lies within Vienna's.
#[test]
fn locations_are_positioned_in_austria() {
    let mut located = 0;
    for resource in generate(&options(Scale::Small, 7)).filter(|r| r["resourceType"] == "Location") {
        let (latitude, longitude) = (
            resource["position"]["latitude"].as_f64().expect("a latitude"),
            resource["position"]["longitude"].as_f64().expect("a longitude"),
        );
        assert!((46.3..=49.1).contains(&latitude) && (9.5..=17.2).contains(&longitude), "{resource:?}");
        if resource["address"]["city"] == "Wien" {
            assert!((48.1..=48.33).contains(&latitude) && (16.18..=16.58).contains(&longitude), "{resource:?}");
        }
        located += 1;
    }
    assert!(located > 0);
}
