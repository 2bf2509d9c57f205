//! Prints, per development vignette, the rank of its gold code in the pipeline's top ten (or
//! "-"), one line each, for comparing two knowledge bases or builds case by case. Usage:
//! `devrank [KB_DIR] > ranks.txt`.
use std::sync::Arc;

fn main() {
    let dir = std::env::args().nth(1).map_or_else(kb::default_dir, Into::into);
    let kb = Arc::new(kb::load_dir(&dir).expect("kb"));
    let device = ml::select_device(ml::DeviceChoice::Cpu).expect("device");
    let models =
        triage::Models::load(kb.clone(), &triage::ModelDirs::default(), &device).expect("models");
    let runner = triage::Runner::of(Arc::new(models));
    let cases = eval::load_dev(&eval::default_dev_path()).expect("dev vignettes");
    for (i, v) in cases.iter().enumerate() {
        let item = v.item();
        let t = runner.run(&item.input, 10, 3);
        let codes: Vec<String> = t
            .conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|r| kb.conditions[r.condition].icd10.clone())
            .collect();
        let rank = v.gold_rank(&codes);
        println!(
            "{i} {} {}",
            rank.map_or("-".to_string(), |r| (r + 1).to_string()),
            codes.iter().take(3).cloned().collect::<Vec<_>>().join(",")
        );
    }
}
