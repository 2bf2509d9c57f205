//! Developer tool: what the reader reads in one text. `cargo run -p kb --example readone -- "text"`
fn main() {
    let text = std::env::args().nth(1).unwrap_or_default();
    let kb = kb::load_dir(kb::default_dir()).unwrap();
    let r = kb.reader().read(&text, &textfeat::tokenize(&text));
    for f in &r.findings {
        println!("{} {:?} {:?} {:.2} {:?}", kb.findings[f.finding as usize].id, f.assertion, f.via, f.confidence, text.get(f.start as usize..f.end as usize));
    }
}
