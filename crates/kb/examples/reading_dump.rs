//! Prints every finding the shared reader reads in every text of the reading benchmark
//! (`vignettes/reading/*.toml`), in a stable order, one line each: a golden file to diff when
//! changing how the reader works rather than what it reads.
//!
//! Run: `cargo run -p kb --example reading_dump > golden.txt`.

use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct File {
    text: Vec<Text>,
}

#[derive(Deserialize)]
struct Text {
    id: String,
    text: String,
}

fn main() {
    let kb = kb::load_dir(kb::default_dir()).expect("knowledge base");
    let plain = kb.reader().without_semantic();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vignettes/reading");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("reading benchmark")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for f in files {
        let file: File =
            toml::from_str(&std::fs::read_to_string(&f).expect("read")).expect("parse");
        for t in file.text {
            // Twice with the semantic layer (the second time through its filled cache of words
            // seen), once with the phrases alone.
            for (pass, reader) in [("cold", kb.reader()), ("warm", kb.reader()), ("plain", &plain)]
            {
                let reading = reader.read(&t.text, &textfeat::tokenize(&t.text));
                println!("{} {pass} {}", t.id, reading.findings.len());
                for r in &reading.findings {
                    let a = r.assertion;
                    println!(
                        "  {} {:?} {:?} {:?} {:?} {}..{} {:?}",
                        kb.findings[r.finding as usize].id,
                        a.polarity,
                        a.subject,
                        a.time,
                        r.confidence,
                        r.start,
                        r.end,
                        r.via
                    );
                }
            }
        }
    }
}
