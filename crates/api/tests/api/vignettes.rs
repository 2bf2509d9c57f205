//! The hand-written vignettes through the API (data-driven): every one answers 200 in the API
//! shape, and together they stay above the same floors as the evaluation.

use crate::helpers::*;
use serde_json::{Value, json};

#[actix_rt::test]
async fn hand_written_vignettes_through_the_api() {
    let app = spawn_app().await;
    let vs = eval::load_vignettes(&eval::default_vignettes_path(), &kb()).expect("vignettes");
    let (mut right_level, mut top10, mut emergencies, mut missed) = (0, 0, 0, 0);
    for v in &vs {
        let mut req = json!({"text": v.text, "options": {"max_conditions": 10}});
        if let Some(a) = v.age {
            req["age"] = json!(a);
        }
        if let Some(s) = v.sex {
            req["sex"] = json!(s.as_str());
        }
        let r = app.post_json(&req).await;
        assert_eq!(r.status(), 200, "{}", v.id);
        let body: Value = r.json().await.unwrap();
        let level = body["triage"]["level"].as_str().unwrap();
        right_level += usize::from(level == v.gold_level.as_str());
        let codes: Vec<&str> = body["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["icd10"].as_str().unwrap())
            .collect();
        top10 += usize::from(codes.iter().any(|c| v.gold_icd10.iter().any(|g| g == c)));
        if v.gold_level.is_emergency() {
            emergencies += 1;
            missed += usize::from(!matches!(level, "emergency_ambulance" | "emergency"));
        }
    }
    let n = vs.len() as f64;
    let (acc, t10, under) =
        (right_level as f64 / n, top10 as f64 / n, missed as f64 / emergencies as f64);
    println!(
        "vignettes via API: triage accuracy {acc:.3}, top-10 {t10:.3}, under-triaged emergencies {under:.3}"
    );
    assert!(acc >= 0.44, "{acc}");
    assert!(t10 >= 0.78, "{t10}");
    assert!(under <= 0.16, "{under}");
}
