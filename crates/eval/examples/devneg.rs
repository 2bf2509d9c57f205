//! Every development-vignette negative that is not read as its annotation says: the phrase,
//! the findings it denies, and what was read (`!` marks absent). A developer's tool, for the
//! reading loop; measure only, never copy a phrase into the knowledge base.
//!
//! `cargo run --release -p eval --example devneg`

use eval::{default_absent_map_path, default_dev_path, load_absent_map, load_dev, phrase_key};

fn main() {
    let kb = kb::load_dir(kb::default_dir()).expect("knowledge base");
    let reader = kb.reader();
    let cases = load_dev(&default_dev_path()).expect("dev vignettes");
    let map = load_absent_map(&default_absent_map_path(), &kb).expect("absent map");
    let (mut n, mut ok) = (0, 0);
    for v in &cases {
        for p in v.absent_phrases() {
            let Some(gold) = map.get(&phrase_key(&p)) else { continue };
            let sentence = format!("{p}.");
            let read = reader.read(&sentence, &textfeat::tokenize(&sentence));
            let present = read.present().count();
            if gold.is_empty() && present == 0 {
                continue;
            }
            n += usize::from(!gold.is_empty());
            let all = gold.iter().all(|&g| read.absent().any(|f| f.finding as usize == g));
            if all && present == 0 {
                ok += 1;
                continue;
            }
            let gold: Vec<&str> = gold.iter().map(|&g| kb.findings[g].id.as_str()).collect();
            let got: Vec<String> = read
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "{}{}",
                        if f.is_absent() { "!" } else { "" },
                        kb.findings[f.finding as usize].id
                    )
                })
                .collect();
            println!("{p}\t{}\t{}", gold.join(" "), got.join(" "));
        }
    }
    eprintln!("{ok} of {n} read absent");
}
