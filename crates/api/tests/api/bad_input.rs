//! Bad input is a 4xx with a stable code and the field at fault; never a 5xx.

use crate::helpers::*;
use serde_json::{Value, json};

#[actix_rt::test]
async fn the_bad_input_table() {
    let app = spawn_app().await;
    let long_text = "a".repeat(4001);
    let huge = format!("{{\"text\": \"{}\"}}", "b".repeat(70 * 1024));
    // (body, content type, status, code, field)
    let cases: Vec<(String, &str, u16, &str, Option<&str>)> = vec![
        ("{\"text\": \"headache\"}".into(), "text/plain", 415, "unsupported_media_type", None),
        ("{\"text\": \"headache\"".into(), "application/json", 400, "malformed_json", None),
        ("not json at all".into(), "application/json", 400, "malformed_json", None),
        ("".into(), "application/json", 400, "malformed_json", None),
        (json!({"text": "x", "colour": "blue"}).to_string(), "application/json", 422, "unknown_field", Some("colour")),
        (json!({"text": "x", "vitals": {"bp": 120}}).to_string(), "application/json", 422, "unknown_field", Some("vitals.bp")),
        (json!({}).to_string(), "application/json", 422, "empty_request", Some("text")),
        (json!({"text": "   "}).to_string(), "application/json", 422, "empty_request", Some("text")),
        (json!({"text": long_text}).to_string(), "application/json", 422, "text_too_long", Some("text")),
        (json!({"text": "x", "age": 130}).to_string(), "application/json", 422, "age_out_of_range", Some("age")),
        (json!({"text": "x", "age": -1}).to_string(), "application/json", 422, "age_out_of_range", Some("age")),
        (json!({"text": "x", "age": "old"}).to_string(), "application/json", 422, "invalid_value", Some("age")),
        (json!({"text": "x", "sex": "robot"}).to_string(), "application/json", 422, "invalid_value", Some("sex")),
        (json!({"text": "x", "vitals": {"spo2": 140}}).to_string(), "application/json", 422, "vital_out_of_range", Some("vitals.spo2")),
        (json!({"text": "x", "vitals": {"temperature_c": 10}}).to_string(), "application/json", 422, "vital_out_of_range", Some("vitals.temperature_c")),
        (json!({"findings": [{"id": "fever"}, {"id": "not_a_symptom"}]}).to_string(), "application/json", 422, "unknown_finding", Some("findings[1].id")),
        (json!({"findings": [{"present": true}]}).to_string(), "application/json", 422, "invalid_value", Some("findings[0]")),
        (json!({"text": "x", "options": {"max_conditions": 0}}).to_string(), "application/json", 422, "invalid_value", Some("options.max_conditions")),
        (json!({"text": 42}).to_string(), "application/json", 422, "invalid_value", Some("text")),
        (huge, "application/json", 413, "payload_too_large", None),
    ];
    for (body, ctype, status, code, field) in cases {
        let r = app.client.post(format!("{}/v1/triage", app.base)).header("content-type", ctype).body(body.clone()).send().await.unwrap();
        let got = r.status().as_u16();
        let json: Value = r.json().await.unwrap_or(Value::Null);
        let short: String = body.chars().take(60).collect();
        assert_eq!(got, status, "{short}: {json}");
        assert_eq!(json["error"]["code"], code, "{short}: {json}");
        assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{short}: {json}");
        match field {
            Some(f) => assert_eq!(json["error"]["field"], f, "{short}: {json}"),
            None => assert!(json["error"]["field"].is_null(), "{short}: {json}"),
        }
    }
    // After all that, the service still answers.
    assert_eq!(app.post_json(&json!({"text": "sore throat"})).await.status(), 200);
}
