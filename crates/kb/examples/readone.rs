//! Developer tool: what the reader reads in one text. `cargo run -p kb --example readone -- "text"`, or `-- -` for one text a line
fn main() {
    let text = std::env::args().nth(1).unwrap_or_default();
    let kb = kb::load_dir(kb::default_dir()).unwrap();
    // "-": one text a line from standard input; prints the lines with a finding read present.
    if text == "-" {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            let r = kb.reader().read(&line, &textfeat::tokenize(&line));
            let present: Vec<&str> =
                r.present().map(|f| kb.findings[f.finding as usize].id.as_str()).collect();
            if !present.is_empty() {
                println!("{line} -> {present:?}");
            }
        }
        return;
    }
    let r = kb.reader().read(&text, &textfeat::tokenize(&text));
    for f in &r.findings {
        println!(
            "{} {:?} {:?} {:.2} {:?}",
            kb.findings[f.finding as usize].id,
            f.assertion,
            f.via,
            f.confidence,
            text.get(f.start as usize..f.end as usize)
        );
    }
}
