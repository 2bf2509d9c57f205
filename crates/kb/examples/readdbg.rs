//! Developer tool: per-text false and missed findings of the reader on the reading benchmark
//! (`vignettes/reading/`). Read the tune and test halves to find what to mend; the fresh half is
//! sealed (only measured): "all" leaves it out, and "fresh" prints only its summary line.
//! `cargo run --release -p kb --example readdbg -- <tune|test|all|fresh> [register] [v | tsv] [bar=<cosine>|bar=off]`
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Deserialize)]
struct T {
    id: String,
    register: String,
    text: String,
    #[serde(default)]
    present: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    uncertain: Vec<String>,
    #[serde(flatten)]
    _rest: toml::Table,
}
#[derive(Deserialize)]
struct F {
    text: Vec<T>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let half = args.get(1).map(String::as_str).unwrap_or("tune");
    let reg = args
        .get(2)
        .filter(|r| r.as_str() != "v" && r.as_str() != "tsv" && !r.starts_with("bar="))
        .cloned();
    let kb = kb::load_dir(kb::default_dir()).unwrap();
    // "bar=0.9" reads with another semantic bar, "bar=off" without the semantic layer.
    let reader = match args.iter().find_map(|a| a.strip_prefix("bar=")) {
        Some("off") => kb.reader().without_semantic(),
        Some(b) => kb.reader().with_semantic_bar(b.parse().expect("bar=<cosine>")),
        None => kb.reader().clone(),
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vignettes/reading");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let (mut tp, mut fp, mut fnn, mut atp, mut afp, mut afn) = (0, 0, 0, 0, 0, 0);
    for f in files {
        let file: F = toml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for t in file.text {
            let n: u32 = t.id.rsplit('-').next().unwrap().parse().unwrap();
            let h = if t.id.starts_with("fresh-") {
                "fresh"
            } else if n % 2 == 1 {
                "tune"
            } else {
                "test"
            };
            // The fresh half is sealed: "fresh" gives its summary line, never its texts.
            if (h == "fresh") != (half == "fresh") {
                continue;
            }
            if half != "all" && h != half {
                continue;
            }
            if reg.as_ref().is_some_and(|r| r != &t.register) {
                continue;
            }
            let tokens = textfeat::tokenize(&t.text);
            let r = reader.read(&t.text, &tokens);
            let id = |i: u32| kb.findings[i as usize].id.clone();
            let pres: BTreeSet<String> = r.present().map(|f| id(f.finding)).collect();
            let abs: BTreeSet<String> = r.absent().map(|f| id(f.finding)).collect();
            let gp: BTreeSet<String> = t.present.iter().cloned().collect();
            let ga: BTreeSet<String> = t.absent.iter().cloned().collect();
            let unc: BTreeSet<String> = t.uncertain.iter().cloned().collect();
            // Findings an annotated present finding implies are true but unlisted: not scored.
            let imp: BTreeSet<String> = t
                .present
                .iter()
                .filter_map(|p| kb.finding_idx(p))
                .flat_map(|f| kb.implied(f))
                .map(|g| kb.findings[g].id.clone())
                .collect();
            if half != "fresh" && args.iter().any(|a| a == "tsv") {
                let j = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
                println!("{}\t{}\t{}", t.id, j(&pres), j(&abs));
                continue;
            }
            let fpp: Vec<_> = pres
                .iter()
                .filter(|x| !gp.contains(*x) && !unc.contains(*x) && !imp.contains(*x))
                .collect();
            let fnp: Vec<_> = gp.iter().filter(|x| !pres.contains(*x)).collect();
            let fpa: Vec<_> =
                abs.iter().filter(|x| !ga.contains(*x) && !unc.contains(*x)).collect();
            let fna: Vec<_> = ga.iter().filter(|x| !abs.contains(*x)).collect();
            tp += gp.len() - fnp.len();
            fp += fpp.len();
            fnn += fnp.len();
            atp += ga.len() - fna.len();
            afp += fpa.len();
            afn += fna.len();
            if half == "fresh"
                || (fpp.is_empty() && fnp.is_empty() && fpa.is_empty() && fna.is_empty())
            {
                continue;
            }
            println!("== {} {}", t.id, t.text);
            if !fpp.is_empty() {
                println!("  FP+ {:?}", fpp);
            }
            if !fnp.is_empty() {
                println!("  FN+ {:?}", fnp);
            }
            if !fpa.is_empty() {
                println!("  FP- {:?}", fpa);
            }
            if !fna.is_empty() {
                println!("  FN- {:?}", fna);
            }
            if args.iter().any(|a| a == "v") {
                for f in &r.findings {
                    println!(
                        "    {} {:?} {:?} [{}..{}] {:?}",
                        id(f.finding),
                        f.assertion,
                        f.via,
                        f.start,
                        f.end,
                        &t.text.get(f.start as usize..f.end as usize)
                    );
                }
            }
        }
    }
    let p = |a: usize, b: usize| a as f64 / (a + b).max(1) as f64;
    println!(
        "present P {:.3} R {:.3}  absent P {:.3} R {:.3}  (tp {tp} fp {fp} fn {fnn}; absent tp {atp} fp {afp} fn {afn})",
        p(tp, fp),
        p(tp, fnn),
        p(atp, afp),
        p(atp, afn)
    );
}
