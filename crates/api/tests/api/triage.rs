use crate::helpers::*;
use serde_json::{Value, json};

const LEVELS: [&str; 5] =
    ["emergency_ambulance", "emergency", "consultation_24", "consultation", "self_care"];

#[actix_rt::test]
async fn triage_answers_with_the_api_shape_and_is_kept() {
    let app = spawn_app().await;
    let r = app.post_json(&json!({"text": "I'm 34 and I've had a pounding headache and a stiff neck since yesterday, no rash", "options": {"max_conditions": 5}})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(LEVELS.contains(&body["triage"]["level"].as_str().unwrap()), "{body}");
    assert_eq!(body["inferred"]["age"], json!(34.0));
    assert_eq!(body["degraded"], json!(false));
    let conditions = body["conditions"].as_array().unwrap();
    assert!(!conditions.is_empty() && conditions.len() <= 5);
    let mut last = 1.0;
    let mut sum = 0.0;
    for c in conditions {
        assert!(c["icd10"].as_str().is_some_and(|s| !s.is_empty()));
        let p = c["probability"].as_f64().unwrap();
        assert!(p <= last + 1e-9);
        last = p;
        sum += p;
        assert!(c["supporting"].is_array() && c["opposing"].is_array());
    }
    assert!(sum <= 1.0 + 1e-6);
    for agent in
        ["symptom_classifier", "condition_matcher", "treatment_retriever", "emergency_detector"]
    {
        assert_eq!(body["agents"][agent]["status"], "ok", "{agent}");
        assert!(body["agents"][agent]["model"].as_str().is_some());
    }
    let findings = body["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["id"] == "headache" && f["present"] == true), "{findings:?}");
    // The explanations name only findings this request asserted: what raised a condition is
    // present, what lowered it is present or denied.
    let said = |id: &Value, present: Option<bool>| {
        findings.iter().any(|f| &f["id"] == id && present.is_none_or(|p| f["present"] == p))
    };
    for c in conditions {
        for id in c["supporting"].as_array().unwrap() {
            assert!(said(id, Some(true)), "{id} supports {} but was not said present", c["id"]);
        }
        for id in c["opposing"].as_array().unwrap() {
            assert!(said(id, None), "{id} opposes {} but was not said", c["id"]);
        }
    }
    assert!(
        conditions.iter().any(|c| c["supporting"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "neck_stiffness")),
        "{conditions:?}"
    );
    assert!(findings.iter().any(|f| f["id"] == "rash" && f["present"] == false), "{findings:?}");
    // A stiff neck with a headache is a red flag for meningitis when there is fever; here the
    // level must at least send the person to a clinician.
    assert_ne!(body["triage"]["level"], "self_care");
    assert!(body["disclaimer"].as_str().unwrap().contains("not a diagnosis"));

    let id = body["id"].as_str().unwrap();
    let again = app.get(&format!("/v1/triage/{id}")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), body);
}

#[actix_rt::test]
async fn structured_findings_and_vitals_alone_are_enough() {
    let app = spawn_app().await;
    let r = app.post_json(&json!({"age": 70, "sex": "male", "findings": [{"id": "chest_pain", "present": true}, {"id": "sweating"}], "vitals": {"spo2": 95, "heart_rate": 110}})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["triage"]["level"], "emergency_ambulance", "{body}");
    assert!(
        body["triage"]["red_flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("chest_pain"))
    );
    assert!(
        body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["source"] == "vitals" && f["id"] == "tachycardia")
    );
}

#[actix_rt::test]
async fn unknown_report_is_404_in_the_error_shape() {
    let app = spawn_app().await;
    for path in
        ["/v1/triage/00000000-0000-4000-8000-000000000000", "/v1/triage/not-a-uuid", "/v1/nothing"]
    {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

#[actix_rt::test]
async fn vocabularies_health_and_readiness() {
    let app = spawn_app().await;
    let s: Value = app.get("/v1/symptoms").await.json().await.unwrap();
    assert!(s["symptoms"].as_array().unwrap().len() >= 400);
    let c: Value = app.get("/v1/conditions").await.json().await.unwrap();
    let c = c["conditions"].as_array().unwrap();
    assert!(c.len() >= 250 && c.iter().all(|x| x["icd10"].is_string()));
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["store"]["kind"], "memory");
    assert_eq!(ready["agents"]["emergency_detector"]["breaker"], "closed");
}
