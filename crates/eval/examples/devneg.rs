//! Every development-vignette negative that is not read as its annotation says: the phrase,
//! the findings it denies, and what was read (`!` marks absent). A developer's tool, for the
//! reading loop; measure only, never copy a phrase into the knowledge base.
//!
//! `cargo run --release -p eval --example devneg`

use eval::{default_absent_map_path, default_dev_path, load_absent_map, load_dev, score_absent};

fn main() {
    let kb = kb::load_dir(kb::default_dir()).expect("knowledge base");
    let cases = load_dev(&default_dev_path()).expect("dev vignettes");
    let map = load_absent_map(&default_absent_map_path(), &kb).expect("absent map");
    let s = score_absent(&kb, kb.reader(), &cases, &map);
    for (phrase, denied, read) in &s.misses {
        println!("{phrase}\t{denied}\t{read}");
    }
    eprintln!("{} of {} read absent", s.read_absent, s.in_kb);
}
