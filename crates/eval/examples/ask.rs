//! Developer tool: the whole pipeline on one text a line from standard input (age and sex as
//! the service reads them from the text): the findings read, the top five conditions with their
//! ICD-10 codes, and the level. `cargo run -p eval --example ask < texts.txt`
use domain::{CaseInput, Sex};
use std::sync::Arc;

fn main() {
    let kb = Arc::new(kb::load_dir(kb::default_dir()).expect("kb"));
    let device = ml::select_device(ml::DeviceChoice::Cpu).expect("device");
    let models =
        triage::Models::load(kb.clone(), &triage::ModelDirs::default(), &device).expect("models");
    let runner = triage::Runner::of(Arc::new(models));
    for line in std::io::stdin().lines().map_while(Result::ok) {
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let d = textfeat::read_demographics(text);
        let input = CaseInput {
            text: text.to_string(),
            age: d.age,
            sex: d.sex.unwrap_or(Sex::Unknown),
            findings: Vec::new(),
            vitals: Default::default(),
        };
        let t = runner.run(&input, 5, 0);
        let read: Vec<String> = t
            .findings
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|f| format!("{}{}", if f.present { "+" } else { "-" }, kb.findings[f.finding].id))
            .collect();
        let top: Vec<String> = t
            .conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:.2}",
                    kb.conditions[r.condition].id, kb.conditions[r.condition].icd10, r.probability
                )
            })
            .collect();
        println!(
            "{text}\n  read: {}\n  top5: {}\n  level: {}",
            read.join(" "),
            top.join(" | "),
            t.decision.level.as_str()
        );
    }
}
