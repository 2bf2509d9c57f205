//! Dumps, per evaluation item, what the triage decision is made from (detector probabilities,
//! the differential summed by usual urgency, the red-flag level), one JSON line each, for
//! studying the merge offline. Usage: `level_dump > levels.jsonl`.
use std::sync::Arc;

fn main() {
    let kb = Arc::new(kb::load_dir(kb::default_dir()).expect("kb"));
    let device = ml::select_device(ml::DeviceChoice::Cpu).expect("device");
    let models =
        triage::Models::load(kb.clone(), &triage::ModelDirs::default(), &device).expect("models");
    let runner = triage::Runner::of(Arc::new(models));
    let vs = eval::load_vignettes(&eval::default_vignettes_path(), &kb).expect("vignettes");
    let test = synth::splits(&kb, 20261123, 0, 0, 6000).test;
    let mut items: Vec<(String, eval::Item)> =
        vs.iter().map(|v| (v.id.clone(), eval::Item::from_vignette(v))).collect();
    items.extend(
        test.iter().enumerate().map(|(i, c)| (format!("s{i}"), eval::Item::from_case(&kb, c))),
    );
    for (id, item) in &items {
        // Every condition the merge weighs (the matcher's top `triage::MAX_CONDITIONS`).
        let t = runner.run(&item.input, triage::MAX_CONDITIONS, 0);
        let conditions = t.conditions.as_deref().expect("matcher");
        let mut diff = [0f32; 5];
        for r in conditions {
            diff[kb.conditions[r.condition].urgency.index()] += r.probability;
        }
        let case = kb.prepare(item.input.clone());
        let mut nb = [0f32; 5];
        for (p, c) in kb::posterior(&case.prior).iter().zip(&kb.conditions) {
            nb[c.urgency.index()] += p;
        }
        let e = t.emergency.as_ref().expect("detector");
        let rule = e.red_flags.iter().map(|&r| kb.rules[r].level.index()).min();
        println!(
            "{}",
            serde_json::json!({"id": id, "gold": item.gold_level.index(), "det": e.probabilities, "diff": diff, "nb": nb, "rule": rule,
                "top": conditions.first().map(|r| (kb.conditions[r.condition].urgency.index(), r.probability)), "level": t.decision.level.index()})
        );
    }
}
