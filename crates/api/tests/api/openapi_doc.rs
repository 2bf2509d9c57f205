//! `/openapi.json` documents every route the service serves, and real answers fit the
//! documented schemas; `/docs` is the Swagger UI.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Follows `$ref`s into `components`.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        schema =
            doc["components"]["schemas"].get(name).unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    schema
}

/// Checks `v` against `schema` structurally: types, enums, required fields, and no field the
/// schema does not document. Appends what is wrong to `errs`.
fn check(doc: &Value, schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let fits = options.iter().any(|s| {
                let mut e = Vec::new();
                check(doc, s, v, path, &mut e);
                e.is_empty()
            });
            if !fits {
                errs.push(format!("{path}: fits none of {key}"));
            }
            return;
        }
    }
    for s in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        check(doc, s, v, path, errs);
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type {t}"),
        };
        let fits = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            other => panic!("unknown type {other}"),
        });
        if !fits {
            errs.push(format!("{path}: {v} is not {t}"));
            return;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(v)
    {
        errs.push(format!("{path}: {v} is not one of {values:?}"));
    }
    match v {
        Value::Object(o) => {
            for r in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let r = r.as_str().unwrap();
                if !o.contains_key(r) {
                    errs.push(format!("{path}: required `{r}` missing"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, x) in o {
                let here = format!("{path}.{k}");
                match (props.and_then(|p| p.get(k)), schema.get("additionalProperties")) {
                    (Some(s), _) => check(doc, s, x, &here, errs),
                    (None, Some(s)) if s.is_object() => check(doc, s, x, &here, errs),
                    // A free-form object documents no fields; anything else must be documented.
                    (None, None) if props.is_none() => {}
                    _ => errs.push(format!("{here}: not documented")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, x) in items.iter().enumerate() {
                    check(doc, s, x, &format!("{path}[{i}]"), errs);
                }
            }
        }
        _ => {}
    }
}

fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let r = &doc["paths"][path][method]["responses"][status.to_string()];
    let content = r["content"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} {status} is not documented with a body"));
    &content.values().next().unwrap()["schema"]
}

fn assert_fits(doc: &Value, method: &str, path: &str, status: u16, v: &Value) {
    let mut errs = Vec::new();
    check(doc, response_schema(doc, method, path, status), v, "$", &mut errs);
    assert!(errs.is_empty(), "{method} {path} {status}:\n{}\n{v}", errs.join("\n"));
}

async fn document(app: &TestApp) -> Value {
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    r.json().await.unwrap()
}

#[actix_rt::test]
async fn the_document_is_openapi_3_and_lists_every_route_served() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    // It reads back as an OpenAPI document, and every reference resolves.
    let _: utoipa::openapi::OpenApi =
        serde_json::from_value(doc.clone()).expect("an OpenAPI document");
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        resolve(&doc, &json!({"$ref": r.split('"').next().unwrap()}));
    }

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    // The Swagger UI's own files are reached through `/docs`, which is documented.
    let served: BTreeSet<(String, String)> = api::routes()
        .into_iter()
        .filter(|(_, p)| !p.starts_with("/docs/"))
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(undocumented.is_empty(), "served but not documented: {undocumented:?}");
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(unserved.is_empty(), "documented but not served: {unserved:?}");
    assert!(documented.contains(&("GET".into(), "/v1/events".into())));

    // Every documented error response is the one error shape.
    for (m, p) in &documented {
        for (status, r) in doc["paths"][p][m.to_lowercase()]["responses"].as_object().unwrap() {
            // `/readyz` answers 503 with its readiness body, so a balancer can read why.
            if (status.starts_with('4') || status.starts_with('5'))
                && !(p == "/readyz" && status == "503")
            {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{m} {p} {status}"
                );
            }
        }
    }
}

#[actix_rt::test]
async fn real_answers_fit_the_documented_schemas() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    // A full request: every documented request field is accepted.
    let r = app
        .post_json(&json!({"text": "my 4 yo has had a temp of 39 since yesterday and won't eat", "sex": "male", "findings": [{"id": "fever", "present": true}, {"id": "rash", "present": false}], "vitals": {"temperature_c": 39.2, "heart_rate": 130}, "options": {"max_conditions": 3, "explain": true}}))
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_fits(&doc, "post", "/v1/triage", 200, &answer);
    // Inferred age, no explanations.
    let r = app.post_json(&json!({"text": "a 48-year-old woman with a sore throat", "options": {"explain": false}})).await;
    let other: Value = r.json().await.unwrap();
    assert_fits(&doc, "post", "/v1/triage", 200, &other);
    assert!(
        other["inferred"]["age"].is_number() && other["conditions"][0].get("supporting").is_none(),
        "{other}"
    );

    let stored: Value = app
        .get(&format!("/v1/triage/{}", answer["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_fits(&doc, "get", "/v1/triage/{id}", 200, &stored);
    for path in ["/v1/symptoms", "/v1/conditions", "/healthz", "/readyz"] {
        let v: Value = app.get(path).await.json().await.unwrap();
        assert_fits(&doc, "get", path, 200, &v);
    }
    let bad: Value =
        app.post_json(&json!({"findings": [{"id": "not_a_symptom"}]})).await.json().await.unwrap();
    assert_fits(&doc, "post", "/v1/triage", 422, &bad);
    let missing: Value =
        app.get("/v1/triage/00000000-0000-4000-8000-000000000000").await.json().await.unwrap();
    assert_fits(&doc, "get", "/v1/triage/{id}", 404, &missing);

    // The checker itself catches a missing required field, a wrong type and an undocumented one.
    let mut broken = answer.clone();
    broken.as_object_mut().unwrap().remove("degraded");
    broken["triage"]["level"] = json!("soon");
    broken["agents"]["extra"] = json!(1);
    let mut errs = Vec::new();
    check(&doc, response_schema(&doc, "post", "/v1/triage", 200), &broken, "$", &mut errs);
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[actix_rt::test]
async fn a_degraded_answer_fits_the_schema_too() {
    let app = spawn_with(test_settings(), with_failing(triage::AgentKind::ConditionMatcher)).await;
    let doc = document(&app).await;
    let answer: Value =
        app.post_json(&json!({"text": "a cough for three days"})).await.json().await.unwrap();
    assert_eq!(answer["differential_unavailable"], true);
    assert_fits(&doc, "post", "/v1/triage", 200, &answer);
}

#[actix_rt::test]
async fn docs_serve_the_swagger_ui_reading_this_document() {
    let app = spawn_app().await;
    let r = app.get("/docs").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), "/docs/");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let init = app.get("/docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
}

/// The document states the limits the service enforces: an empty request, a text over 4,000
/// characters and a vital sign out of its range are outside the schema as they are 422s.
#[actix_rt::test]
async fn the_request_schema_states_what_the_service_refuses() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let request = &doc["components"]["schemas"]["TriageRequest"];
    assert_eq!(request["properties"]["text"]["maxLength"], 4000, "{request}");
    let any = request["anyOf"].as_array().expect("anyOf: text or findings");
    assert_eq!(any.len(), 2);
    assert_eq!(any[0]["required"][0], "text");
    assert_eq!(any[1]["properties"]["findings"]["minItems"], 1);
    let vitals = resolve(&doc, &request["properties"]["vitals"]);
    let vitals = if vitals.get("properties").is_some() {
        vitals
    } else {
        vitals["oneOf"]
            .as_array()
            .and_then(|o| {
                o.iter().find(|s| s.get("$ref").is_some() || s.get("properties").is_some())
            })
            .map(|s| resolve(&doc, s))
            .expect("vitals schema")
    };
    assert_eq!(vitals["properties"]["spo2"]["minimum"], 50, "{vitals}");
    assert_eq!(vitals["properties"]["spo2"]["maximum"], 100, "{vitals}");
    // A structured finding is one of the knowledge base's, as `unknown_finding` refuses others.
    let ids = doc["components"]["schemas"]["FindingIn"]["properties"]["id"]["enum"]
        .as_array()
        .expect("finding ids are an enum");
    assert_eq!(ids.len(), kb().findings.len());
    assert!(ids.iter().any(|id| id == "crushing_chest_pain"), "{ids:?}");
}

/// Every code the service declares is in the document, and each route's error responses name
/// the codes of its handler, of its access and of every route.
#[actix_rt::test]
async fn every_error_code_is_documented_where_it_is_sent() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let listed: Vec<&str> =
        doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"]
            .as_array()
            .expect("ErrorDetail.code lists the codes")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
    let declared: Vec<&str> = api::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, declared);
    let named = |method: &str, path: &str, status: &str, code: &str| {
        let r = &doc["paths"][path][method]["responses"][status];
        let description = r["description"].as_str().unwrap_or_default();
        assert!(description.contains(&format!("`{code}`")), "{method} {path} {status}: {r}");
    };
    for (status, code) in [
        ("400", "malformed_json"),
        ("401", "missing_api_key"),
        ("403", "insufficient_scope"),
        ("408", "body_timeout"),
        ("413", "payload_too_large"),
        ("415", "unsupported_media_type"),
        ("422", "unknown_finding"),
        ("429", "rate_limited"),
        ("503", "overloaded"),
        ("503", "store_unavailable"),
        ("503", "auth_unavailable"),
        ("503", "too_many_connections"),
    ] {
        named("post", "/v1/triage", status, code);
    }
    named("get", "/v1/triage/{id}", "404", "not_found");
    named("get", "/v1/events", "400", "invalid_filter");
    named("get", "/v1/symptoms", "401", "invalid_api_key");
    named("get", "/healthz", "503", "handler_timeout");
    // A public route asks for no key, so it documents no refusal of one.
    assert!(doc["paths"]["/healthz"]["get"]["responses"]["401"].is_null());
    // Each 503 says when to come back.
    assert!(
        doc["paths"]["/v1/triage"]["post"]["responses"]["503"]["headers"]["Retry-After"]
            .is_object()
    );
}
