//! FHIR XML over HTTP: the IG's XML request examples posted as XML and answered in XML (the
//! `$findHSP` one in find_hsp.rs, on its world), the
//! interactions in XML (create, read, update, search, history, capabilities), exact decimals
//! and narratives through the server, and errors in the format asked for.

mod scheduling_support;
mod support;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use scheduling_support::*;
use serde_json::{Value, json};
use support::*;

const FHIR_XML: &str = "application/fhir+xml";

/// POSTs an XML body, asking for XML back.
async fn post_xml(s: &TestServer, path: &str, xml: &str) -> Resp {
    s.send(s.request(Method::POST, path).header(CONTENT_TYPE, FHIR_XML).header(ACCEPT, FHIR_XML).body(xml.to_owned()))
        .await
}

fn xml_outcome(r: &Resp, status: u16) -> Value {
    assert_eq!(r.code(), status, "{}: {}", r.what(), r.text());
    let outcome = r.fhir_xml();
    assert_outcome(&outcome, &r.what());
    outcome
}

#[tokio::test]
async fn the_ig_xml_request_examples_are_answered_in_xml() {
    let s = TestServer::start_with(ServerOptions::new().validation()).await;
    load_ig_examples_with_future_slots(&s).await;
    let slot = "HL7ATSchedulingSlotExample01-free";

    let held = post_xml(&s, "Slot/$hold", &ig_xml("Slot-operationHold-request.xml")).await.expect_status(200);
    assert!(held.text().starts_with("<Parameters xmlns=\"http://hl7.org/fhir\">"), "{}", held.text());
    let held = held.fhir_xml();
    assert_eq!(param_resource(&held, "slot")["status"], "busy-tentative", "{held}");
    assert_eq!(param_resource(&held, "outcome")["issue"][0]["code"], "success");

    // The release example, with its `code` for `valueCode` and `Slt/`, read as leniently as in JSON.
    let released = post_xml(&s, "Slot/$hold", &ig_xml("Slot-operationHoldRelease-request.xml")).await.expect_status(200);
    assert_eq!(param_resource(&released.fhir_xml(), "slot")["status"], "free");
    assert_eq!(slot_status(&s, slot).await, "free");

    // The book example names times the Slot does not have: refused in XML, naming them.
    post_xml(&s, "Slot/$hold", &ig_xml("Slot-operationHold-request.xml")).await.expect_status(200);
    let refused = post_xml(&s, "Appointment/$book", &ig_xml("Appointment-operationBook-request.xml")).await;
    let outcome = xml_outcome(&refused, 422);
    assert!(diagnostics(&outcome).contains("Appointment.start is 2025-06-01T09:00:00+02:00"), "{outcome}");
    // With the Slot's times it books; the Appointment comes back in XML.
    let fitted = ig_xml("Appointment-operationBook-request.xml")
        .replace("2025-06-01T09:00:00+02:00", "2030-09-16T08:00:00Z")
        .replace("2025-06-01T09:30:00+02:00", "2030-09-16T09:00:00Z")
        .replace("<minutesDuration value=\"30\"/>", "<minutesDuration value=\"60\"/>");
    let booked = post_xml(&s, "Appointment/$book", &fitted).await.expect_status(201).fhir_xml();
    let appointment = param_resource(&booked, "appointment");
    assert_eq!(appointment["status"], "booked", "{booked}");
    assert_eq!(appointment["minutesDuration"], 60);
    assert_eq!(appointment["participant"][1]["actor"]["display"], "Melanie Musterärztin");
    assert_eq!(slot_status(&s, slot).await, "busy");

}

/// A Location in XML with what XML has to carry exactly: decimals with their precision, a
/// narrative, a primitive's extension and id, repeated primitives.
const LOCATION_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- written by hand for the test -->
<Location xmlns="http://hl7.org/fhir">
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>Praxis <b>am Ring</b> &amp; Co</p></div>
  </text>
  <status value="active"/>
  <name value="Praxis am Ring">
    <extension url="http://example.org/fhir/StructureDefinition/pronunciation">
      <valueString value="PRAK-sis"/>
    </extension>
  </name>
  <alias value="Ring"/>
  <alias id="a2" value="Am Ring"/>
  <address>
    <line value="Universitätsring 1"/>
    <city value="Wien"/>
    <postalCode value="1010"/>
  </address>
  <position>
    <longitude value="16.36000"/>
    <latitude value="48.2100"/>
    <altitude value="1.7E2"/>
  </position>
</Location>
"#;

#[tokio::test]
async fn create_read_update_search_and_history_in_xml() {
    let s = TestServer::start().await;
    let created = post_xml(&s, "Location", LOCATION_XML).await.expect_status(201);
    let location = created.fhir_xml();
    let id = id_of(&location);
    assert_eq!(location["alias"], json!(["Ring", "Am Ring"]));
    assert_eq!(location["_alias"], json!([null, {"id": "a2"}]));
    assert_eq!(location["_name"]["extension"][0]["valueString"], "PRAK-sis");
    assert_eq!(
        location["text"]["div"],
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Praxis <b>am Ring</b> &amp; Co</p></div>"
    );

    // Stored as JSON with the decimals' text as written in XML.
    let json_text = s.get(&format!("Location/{id}")).await.expect_status(200).text();
    for number in ["\"longitude\":16.36000", "\"latitude\":48.2100", "\"altitude\":1.7E2"] {
        assert!(json_text.contains(number), "{number} not in {json_text}");
    }
    let xml = s.get(&format!("Location/{id}?_format=xml")).await.expect_status(200);
    for exact in ["<longitude value=\"16.36000\"/>", "<latitude value=\"48.2100\"/>", "<altitude value=\"1.7E2\"/>"] {
        assert!(xml.text().contains(exact), "{exact} not in {}", xml.text());
    }
    // Elements in definition order, whatever the JSON order: position after address.
    let text = xml.text();
    assert!(text.find("<address>") < text.find("<position>") && text.find("<status ") < text.find("<name "), "{text}");

    // Update in XML, with the ETag of the version read.
    let mut changed = xml.fhir_xml();
    changed["name"] = json!("Praxis am Ring 2");
    let updated = s
        .send(
            s.request(Method::PUT, &format!("Location/{id}"))
                .header(CONTENT_TYPE, "application/xml")
                .header("If-Match", "W/\"1\"")
                .body(to_xml(&changed)),
        )
        .await
        .expect_status(200);
    assert_eq!(updated.fhir_xml()["name"], "Praxis am Ring 2", "the answer follows the request's format");
    assert_eq!(updated.etag_version(), "2");

    let bundle = s.get("Location?name=Praxis&_format=xml").await.expect_status(200);
    assert!(bundle.text().starts_with("<Bundle xmlns=\"http://hl7.org/fhir\">"), "{}", bundle.text());
    let bundle = bundle.fhir_xml();
    assert_eq!(bundle["total"], 1);
    assert_eq!(bundle["entry"][0]["resource"]["position"]["latitude"].to_string(), "48.2100");
    let history = s.get(&format!("Location/{id}/_history?_format=xml")).await.expect_status(200).fhir_xml();
    assert_eq!(history["entry"].as_array().map(Vec::len), Some(2), "{history}");

    let metadata = s.get("metadata?_format=xml").await.expect_status(200).fhir_xml();
    let formats = metadata["format"].as_array().unwrap();
    for format in ["application/fhir+json", "json", "application/fhir+xml", "xml"] {
        assert!(formats.iter().any(|f| f == format), "{format} not in {formats:?}");
    }

    // A pretty XML answer is indented and says the same.
    let pretty = s.get(&format!("Location/{id}?_format=xml&_pretty=true")).await.expect_status(200);
    assert!(pretty.text().contains("\n  <status value=\"active\"/>"), "{}", pretty.text());
    assert_eq!(pretty.fhir_xml(), s.get(&format!("Location/{id}?_format=xml")).await.fhir_xml());
}

#[tokio::test]
async fn bad_xml_is_400_in_xml_and_changes_nothing() {
    let s = TestServer::start().await;
    let cases = [
        ("<Location xmlns=\"http://hl7.org/fhir\"><status value=\"active\"/>", "ends inside Location"),
        ("<Location><status value=\"active\"/></Location>", "not in the FHIR namespace"),
        ("<Flower xmlns=\"http://hl7.org/fhir\"/>", "not a FHIR R5 resource type"),
        ("<!DOCTYPE x [<!ENTITY a \"b\">]><Location xmlns=\"http://hl7.org/fhir\"/>", "DTD"),
        ("<Location xmlns=\"http://hl7.org/fhir\"><status>active</status></Location>", "Text is not allowed"),
        ("<Location xmlns=\"http://hl7.org/fhir\"><status value=\"active\"/><status value=\"active\"/></Location>", "only once"),
        ("<Location xmlns=\"http://hl7.org/fhir\"><position><latitude value=\"north\"/></position></Location>", "not a valid decimal"),
        ("<Location xmlns=\"http://hl7.org/fhir\"><status value=\"active\" colour=\"red\"/></Location>", "Unknown attribute"),
    ];
    for (xml, reason) in cases {
        let outcome = xml_outcome(&post_xml(&s, "Location", xml).await, 400);
        assert!(diagnostics(&outcome).contains(reason), "{xml}: {outcome}");
    }
    assert_eq!(s.type_history_len("Location").await, 0);

    // Other errors come in XML when XML is asked for, and in JSON otherwise.
    let missing = s.send(s.request(Method::GET, "Location/nope").header(ACCEPT, FHIR_XML)).await;
    assert!(missing.text().starts_with("<OperationOutcome xmlns=\"http://hl7.org/fhir\">"), "{}", missing.text());
    xml_outcome(&missing, 404);
    xml_outcome(&s.get("Observation?_format=xml").await, 404);
    s.get("Location/nope").await.outcome(404);
    // Nothing acceptable: the 406 itself is JSON.
    s.send(s.request(Method::GET, "Location/nope").header(ACCEPT, "text/html")).await.outcome(406);
}

#[tokio::test]
async fn a_body_without_content_type_is_read_by_its_first_character() {
    let s = TestServer::start().await;
    let r = s.send(s.request(Method::POST, "Location").body(LOCATION_XML.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"))).await;
    assert_eq!(r.code(), 201, "{}", r.text());
    let r = s.send(s.request(Method::POST, "Location").body(r#"{"resourceType":"Location","name":"Json"}"#)).await;
    assert_eq!(r.code(), 201, "{}", r.text());
    r.assert_fhir_json();
}
