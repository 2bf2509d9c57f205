//! `triagent-train`: trains the four agent models from the knowledge base and a seed and
//! writes each one's `config.json`, `weights.bpk` and `MODEL_CARD.md` (by default into the
//! committed `agents/NAME/model/`). Its own binary, so that the service binary never
//! compiles training code: only this crate turns on `triage`'s `train` feature.

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mimalloc::MiMalloc;
use ml::train::{Progress, TrainConfig};
use std::path::{Path, PathBuf};
use std::time::Instant;
use triage::models::{care, conditions, emergency, symptoms};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Train agent models from the knowledge base and a seed; writes agents/NAME/model/. Training
/// always runs on the CPU.
#[derive(Parser, Debug)]
#[command(name = "triagent-train", version)]
struct Cli {
    /// Knowledge-base folder.
    #[arg(long, default_value_os_t = kb::default_dir())]
    kb: PathBuf,
    /// `all` or one of symptom-classifier, condition-matcher, treatment-retriever, emergency-detector.
    #[arg(long, default_value = "all")]
    agent: String,
    #[arg(long, default_value_t = 20261123)]
    seed: u64,
    /// Synthetic training cases (validation and test are a tenth each). Default: 60,000 for
    /// the condition matcher, 120,000 for the other three (see `default_cases`).
    #[arg(long)]
    cases: Option<usize>,
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the learning rate (for experiments).
    #[arg(long)]
    lr: Option<f64>,
    /// Write models under this folder (NAME/ inside) instead of the agents' own folders.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    telemetry::init_logs();
    train(&cli.kb, &cli.agent, cli.seed, cli.cases, cli.epochs, cli.lr, cli.out)
}

pub const AGENTS: [&str; 4] =
    ["symptom-classifier", "condition-matcher", "treatment-retriever", "emergency-detector"];

/// A progress bar for a training phase.
struct Bar {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Bar {
    fn new() -> Self {
        Bar { bar: None, started: Instant::now() }
    }
}

impl Progress for Bar {
    fn start(&mut self, phase: &str, total: u64) {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>20} [{bar:40}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_string());
        self.bar = Some(bar);
        self.started = Instant::now();
    }
    fn step(&mut self, loss: f32) {
        if let Some(b) = &self.bar {
            b.inc(1);
            if b.position() % 20 == 0 {
                b.set_message(format!("loss {loss:.4}"));
            }
        }
    }
    fn epoch(&mut self, epoch: usize, mean_loss: f32) {
        if let Some(b) = &self.bar {
            b.println(format!("  epoch {epoch}: mean loss {mean_loss:.5}"));
        }
    }
    fn finish(&mut self, summary: &str) {
        if let Some(b) = self.bar.take() {
            b.finish_with_message(format!(
                "{summary} in {:.1}s",
                self.started.elapsed().as_secs_f64()
            ));
        }
    }
}

/// Training cases per agent when `--cases` is not given. The three 32-wide models (symptom
/// classifier, treatment retriever, emergency detector) learn more from 120,000 cases than from
/// 60,000: on the hand-written vignettes, emergencies under-triaged 0.114 against 0.165, triage
/// accuracy 0.506 against 0.483. The condition matcher keeps 60,000: its learned correction to
/// the knowledge base's naive Bayes must stay small, and more generated patients teach it more
/// of the generator (docs/performance.md).
fn default_cases(agent: &str) -> usize {
    if agent == "condition-matcher" { 60_000 } else { 120_000 }
}

fn train(
    kb_dir: &Path,
    agent: &str,
    seed: u64,
    cases: Option<usize>,
    epochs: Option<usize>,
    lr: Option<f64>,
    out: Option<PathBuf>,
) -> Result<()> {
    let names: Vec<&str> = if agent == "all" { AGENTS.to_vec() } else { vec![agent] };
    for n in &names {
        if !AGENTS.contains(n) {
            bail!("unknown agent '{n}': use all or one of {}", AGENTS.join(", "));
        }
    }
    let kb = std::sync::Arc::new(
        kb::load_dir(kb_dir)
            .with_context(|| format!("loading knowledge base from {}", kb_dir.display()))?,
    );
    // One data set per size asked for, generated once.
    let mut sets: Vec<(usize, synth::Splits)> = Vec::new();
    let dir_for =
        |name: &str, default: PathBuf| out.as_ref().map(|o| o.join(name)).unwrap_or(default);
    for name in names {
        let cases = cases.unwrap_or_else(|| default_cases(name));
        if !sets.iter().any(|s| s.0 == cases) {
            let started = Instant::now();
            let spinner = ProgressBar::new_spinner();
            spinner.set_message(format!(
                "generating {} synthetic cases (seed {seed})",
                cases + cases / 5
            ));
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            sets.push((cases, synth::splits(&kb, seed, cases, cases / 10, cases / 10)));
            spinner.finish_with_message(format!(
                "generated {} cases in {:.1}s",
                cases + cases / 5,
                started.elapsed().as_secs_f64()
            ));
        }
        let data = &sets.iter().find(|s| s.0 == cases).expect("generated above").1;
        let t = Instant::now();
        let mut bar = Bar::new();
        match name {
            "symptom-classifier" => {
                let cfg = TrainConfig {
                    epochs: epochs.unwrap_or(12),
                    batch_size: 128,
                    learning_rate: lr.unwrap_or(1e-2),
                    seed,
                };
                let (model, m) = symptoms::train::train(&kb, data, cfg, &mut bar);
                let dir = dir_for(name, symptoms::default_model_dir());
                model.save(&dir)?;
                ml::io::write_card(&dir, &symptoms::card::model_card(&model, &m, data))?;
                println!(
                    "{name}: present F1 {:.3}, absent F1 {:.3} (test) -> {} [{:.0}s]",
                    m.present_f1,
                    m.absent_f1,
                    dir.display(),
                    t.elapsed().as_secs_f64()
                );
            }
            "condition-matcher" => {
                let cfg = TrainConfig {
                    epochs: epochs.unwrap_or(4),
                    batch_size: 128,
                    learning_rate: lr.unwrap_or(3e-3),
                    seed,
                };
                let (model, m) = conditions::train::train(&kb, data, cfg, &mut bar);
                let dir = dir_for(name, conditions::default_model_dir());
                model.save(&dir)?;
                ml::io::write_card(&dir, &conditions::card::model_card(&model, &m, data))?;
                println!(
                    "{name}: top-1 {:.3}, top-3 {:.3}, top-10 {:.3}, ECE {:.3}, T {:.2} (test) -> {} [{:.0}s]",
                    m.top1,
                    m.top3,
                    m.top10,
                    m.ece,
                    model.temperature(),
                    dir.display(),
                    t.elapsed().as_secs_f64()
                );
            }
            "treatment-retriever" => {
                let cfg = TrainConfig {
                    epochs: epochs.unwrap_or(6),
                    batch_size: 128,
                    learning_rate: lr.unwrap_or(3e-3),
                    seed,
                };
                let (model, m) = care::train::train(kb.clone(), data, cfg, &mut bar);
                let dir = dir_for(name, care::default_model_dir());
                model.save(&dir)?;
                ml::io::write_card(&dir, &care::card::model_card(&model, &m, data))?;
                println!(
                    "{name}: recall@1 {:.3}, recall@5 {:.3}, MRR {:.3} (test) -> {} [{:.0}s]",
                    m.recall_at_1,
                    m.recall_at_5,
                    m.mrr,
                    dir.display(),
                    t.elapsed().as_secs_f64()
                );
            }
            "emergency-detector" => {
                let cfg = TrainConfig {
                    epochs: epochs.unwrap_or(6),
                    batch_size: 128,
                    learning_rate: lr.unwrap_or(3e-3),
                    seed,
                };
                let (model, m) = emergency::train::train(kb.clone(), data, cfg, &mut bar);
                let dir = dir_for(name, emergency::default_model_dir());
                model.save(&dir)?;
                ml::io::write_card(&dir, &emergency::card::model_card(&model, &m, data))?;
                println!(
                    "{name}: accuracy {:.3}, under-triaged emergencies {:.3}, over-triage {:.3} (test) -> {} [{:.0}s]",
                    m.accuracy,
                    m.under_triaged_emergencies,
                    m.over_triage,
                    dir.display(),
                    t.elapsed().as_secs_f64()
                );
            }
            _ => unreachable!("checked above"),
        }
    }
    Ok(())
}
