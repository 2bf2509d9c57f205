//! A floor on the committed models' accuracy on the hand-written vignettes: fails if a change
//! to the knowledge base, the generator or the models makes them worse. The floors sit a little
//! under what was measured (the README's Figures; docs/eval/report.md); raise them as models improve.

use std::sync::Arc;

/// The knowledge base and the four committed models, on the CPU, in the sequential runner.
fn committed_runner() -> (Arc<kb::KnowledgeBase>, triage::Runner) {
    let kb = Arc::new(kb::load_dir(kb::default_dir()).expect("knowledge base"));
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let models = triage::Models::load(kb.clone(), &triage::ModelDirs::default(), &device)
        .expect("committed models load");
    (kb, triage::Runner::of(Arc::new(models)))
}

#[test]
fn hand_written_vignettes_stay_above_the_floor() {
    let (kb, runner) = committed_runner();
    let vs = eval::load_vignettes(&eval::default_vignettes_path(), &kb).expect("vignettes load");
    assert!(vs.len() >= 120, "{} vignettes", vs.len());
    assert!(vs.iter().filter(|v| v.gold_level.is_emergency()).count() >= 30);
    let items: Vec<eval::Item> = vs.iter().map(eval::Item::from_vignette).collect();
    let r = eval::evaluate(&runner, "vignettes", &items);
    println!("{}", r.markdown());
    assert!(r.top1 >= FLOOR_TOP1, "top-1 {:.3} < {FLOOR_TOP1}", r.top1);
    assert!(r.top3 >= FLOOR_TOP3, "top-3 {:.3} < {FLOOR_TOP3}", r.top3);
    assert!(r.top10 >= FLOOR_TOP10, "top-10 {:.3} < {FLOOR_TOP10}", r.top10);
    assert!(
        r.triage_accuracy >= FLOOR_TRIAGE,
        "triage accuracy {:.3} < {FLOOR_TRIAGE}",
        r.triage_accuracy
    );
    assert!(
        r.under_triaged_emergencies <= CEILING_UNDER_TRIAGED_EMERGENCIES,
        "under-triaged emergencies {:.3} > {CEILING_UNDER_TRIAGED_EMERGENCIES}",
        r.under_triaged_emergencies
    );
    assert!(
        r.over_triage <= CEILING_OVER_TRIAGE,
        "over-triage {:.3} > {CEILING_OVER_TRIAGE}",
        r.over_triage
    );
}

// Measured with the committed models (docs/eval/report.md): top-1 0.828, top-3 0.939, top-10
// 0.972, triage accuracy 0.750, under-triaged emergencies 0 of 79, over-triage 0.150. The
// triage floor is the reasoning issue's bar (0.75), not a margin under the figure.
const FLOOR_TOP1: f64 = 0.80;
const FLOOR_TOP3: f64 = 0.92;
const FLOOR_TOP10: f64 = 0.95;
const FLOOR_TRIAGE: f64 = 0.75;
const CEILING_UNDER_TRIAGED_EMERGENCIES: f64 = 0.0;
const CEILING_OVER_TRIAGE: f64 = 0.20;

/// The development vignettes live beside the repository (`../shared/data/dev-vignettes/`,
/// measured on, never trained on). Where they are present, the differential must stay above
/// its floor; where they are not (a clone without the shared folder), the test says so and
/// checks nothing else.
#[test]
fn development_vignettes_stay_above_the_floor() {
    let path = eval::default_dev_path();
    if !path.exists() {
        eprintln!("development vignettes not found at {}: not measured", path.display());
        return;
    }
    let (kb, runner) = committed_runner();
    let cases = eval::load_dev(&path).expect("development vignettes load");
    let map = eval::load_absent_map(&eval::default_absent_map_path(), &kb).expect("absent map");
    let dev = eval::dev_section(&runner, &cases, &map);
    println!("{}", dev.markdown);
    let (d, baseline) = (&dev.pipeline, &dev.baseline);
    assert!(d.top1 >= DEV_FLOOR_TOP1, "top-1 {:.3} < {DEV_FLOOR_TOP1}", d.top1);
    assert!(d.top3 >= DEV_FLOOR_TOP3, "top-3 {:.3} < {DEV_FLOOR_TOP3}", d.top3);
    assert!(d.top10 >= DEV_FLOOR_TOP10, "top-10 {:.3} < {DEV_FLOOR_TOP10}", d.top10);
    assert!(d.reach >= DEV_FLOOR_REACH, "reach {:.3} < {DEV_FLOOR_REACH}", d.reach);
    // The learned differential must earn its place against the knowledge base read plainly.
    assert!(
        d.top3 + 1e-9 >= baseline.top3 + 0.05,
        "top-3 {:.3} is not 5 points above the naive-Bayes baseline's {:.3}",
        d.top3,
        baseline.top3
    );
}

// Measured with the committed models: top-1 0.485, top-3 0.650, top-10 0.830, reach 0.985;
// the naive-Bayes baseline 0.430, 0.600, 0.775.
const DEV_FLOOR_TOP1: f64 = 0.46;
const DEV_FLOOR_TOP3: f64 = 0.64;
const DEV_FLOOR_TOP10: f64 = 0.80;
const DEV_FLOOR_REACH: f64 = 0.95;

/// A cold, a sore throat or a stye with no warning sign is for self-care: triage that sends
/// everyone to a doctor is not triage.
#[test]
fn plain_self_limiting_problems_reach_self_care() {
    let (_, runner) = committed_runner();
    for (text, age) in [
        (
            "Runny nose, sneezing and a bit of a sore throat for two days. No fever, eating and drinking fine.",
            30.0,
        ),
        (
            "Sore throat since yesterday, it hurts a bit to swallow but I can eat and drink. No fever, no rash.",
            25.0,
        ),
        (
            "Small red painful lump on the edge of my eyelid, like a spot. My vision is fine and the eye is not red.",
            35.0,
        ),
    ] {
        let input = domain::CaseInput {
            text: text.into(),
            age: Some(age),
            sex: domain::Sex::Unknown,
            findings: Vec::new(),
            vitals: Default::default(),
        };
        let t = runner.run(&input, 5, 3);
        assert_eq!(t.decision.level, domain::TriageLevel::SelfCare, "{text}: {:?}", t.decision);
    }
}
