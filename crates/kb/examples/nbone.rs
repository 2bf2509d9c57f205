//! Developer tool: the findings read in one text and the knowledge base's naive-Bayes top five.
//! `cargo run -p kb --example nbone -- "text"`, or `-- -` for one text a line from stdin.
use domain::{CaseInput, Sex};

fn show(kb: &kb::KnowledgeBase, text: &str) {
    let d = textfeat::read_demographics(text);
    let input = CaseInput {
        text: text.to_string(),
        age: d.age,
        sex: d.sex.unwrap_or(Sex::Unknown),
        findings: Vec::new(),
        vitals: Default::default(),
    };
    let case = kb.prepare(input);
    let read: Vec<String> = case
        .evidence
        .iter()
        .map(|&(f, p)| format!("{}{}", if p { "+" } else { "-" }, kb.findings[f].id))
        .collect();
    let post = kb::posterior(&case.prior);
    let mut ranked: Vec<(usize, f32)> = post.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> =
        ranked.iter().take(5).map(|&(c, p)| format!("{} {:.3}", kb.conditions[c].id, p)).collect();
    println!("{text}\n  read: {}\n  top5: {}", read.join(" "), top.join(" | "));
}

fn main() {
    let text = std::env::args().nth(1).unwrap_or_default();
    let kb = kb::load_dir(kb::default_dir()).unwrap();
    if text == "-" {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if !line.trim().is_empty() {
                show(&kb, &line);
            }
        }
    } else {
        show(&kb, &text);
    }
}
