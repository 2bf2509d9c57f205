//! Command-line interface: `eval`, `serve`, `keys`, `bench`, `synth`. Training is another
//! binary, `triagent-train` (crates/train), so that this one compiles no training code.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "triagent",
    version,
    about = "Open medical triage: knowledge base, models and service"
)]
struct Cli {
    /// Knowledge-base folder.
    #[arg(long, global = true, default_value_os_t = kb::default_dir())]
    kb: PathBuf,
    /// Where inference runs: `cpu` (burn-flex) or `cuda:N` (needs a `--features cuda` build).
    #[arg(long, global = true, default_value = "cpu")]
    device: ml::DeviceChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate the four models together on the synthetic test split and the hand-written
    /// vignettes; writes report.md and PNG plots into --out.
    Eval {
        #[arg(long, default_value = "eval-out")]
        out: PathBuf,
        #[arg(long, default_value_os_t = eval::default_vignettes_path())]
        vignettes: PathBuf,
        /// Load models from this folder (NAME/ inside) instead of the agents' own folders.
        #[arg(long)]
        models: Option<PathBuf>,
        /// The training seed: the synthetic test split is generated from it.
        #[arg(long, default_value_t = 20261123)]
        seed: u64,
        #[arg(long, default_value_t = 6000)]
        cases: usize,
        /// Print each vignette the pipeline gets wrong (for knowledge-base and model work).
        #[arg(long)]
        show_misses: bool,
    },
    /// Run the triage service (REST API) with the committed models; reports are kept in
    /// PostgreSQL when a database URL is given, in the embedded store otherwise.
    Serve {
        /// Port to listen on (overrides server.port).
        #[arg(long)]
        port: Option<u16>,
        /// An extra TOML file layered over config/base.toml and config/{environment}.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// development (default, or TRIAGENT_ENV), production or test.
        #[arg(long)]
        env: Option<String>,
        /// PostgreSQL URL (overrides database.url and TRIAGENT__DATABASE__URL), e.g.
        /// postgres://triagent@127.0.0.1:5432/triagent.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Create, list and revoke API keys (in PostgreSQL with a database URL, in auth.keys_file
    /// otherwise). A key is printed once, when it is created; only its hash is kept.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// An extra TOML file layered over config/base.toml and config/{environment}.toml.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// development (default, or TRIAGENT_ENV), production or test.
        #[arg(long, global = true)]
        env: Option<String>,
        /// PostgreSQL URL, as for `serve`.
        #[arg(long, global = true)]
        database_url: Option<String>,
    },
    /// The load benchmark: starts `serve` from this binary, drives it with oha (open loop,
    /// corrected for coordinated omission) and writes REPORT.md, results.json and latency.png
    /// into --out. `scripts/bench` builds in release mode, installs oha and runs this.
    Bench {
        #[arg(long, default_value = "bench")]
        out: PathBuf,
        #[arg(long, default_value_t = 18080)]
        port: u16,
        /// Seconds per load step.
        #[arg(long, default_value_t = 10)]
        step_secs: u64,
        /// A few seconds at low rates: checks that the benchmark runs and writes its report.
        #[arg(long)]
        smoke: bool,
        /// The oha binary (default: `oha` on PATH, then ~/.cargo/bin/oha).
        #[arg(long)]
        oha: Option<PathBuf>,
        /// KEY=VALUE settings for the service under test (e.g. TRIAGENT__SERVER__WORKERS=1).
        #[arg(long = "service-env", value_parser = parse_key_value)]
        service_env: Vec<(String, String)>,
        /// The `triagent` binary whose `serve` is measured (default: this one), to compare
        /// another build under this benchmark's steps.
        #[arg(long)]
        service_binary: Option<PathBuf>,
    },
    /// Print synthetic cases.
    Synth {
        #[arg(long, default_value_t = 10)]
        n: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
enum KeysAction {
    /// Create a key; prints the key alone on standard output, once.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: triage:write, reports:read, events:read (this key's events),
        /// events:read_all (every key's).
        #[arg(long)]
        scopes: String,
    },
    /// Every key: id, name, scopes, created, revoked.
    List,
    /// Revoke a key by id, for good (a running service stops accepting it within
    /// auth.cache_ttl_ms).
    Revoke { id: uuid::Uuid },
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

/// oha on PATH, else where `cargo install` puts it.
fn find_oha() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("oha"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
        home.unwrap_or_default().join("bin").join("oha")
    })
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        telemetry::init_logs();
    }
    match cli.command {
        Command::Eval { out, vignettes, models, seed, cases, show_misses } => {
            evaluate(&cli.kb, cli.device, &out, &vignettes, models, seed, cases, show_misses)
        }
        Command::Serve { port, config, env, database_url } => {
            serve(port, config, env, database_url)
        }
        Command::Keys { action, config, env, database_url } => {
            keys(action, config, env, database_url)
        }
        Command::Bench { out, port, step_secs, smoke, oha, service_env, service_binary } => {
            let opts = loadbench::Options {
                binary: match service_binary {
                    Some(b) => b,
                    None => std::env::current_exe().context("locating this binary")?,
                },
                oha: oha.unwrap_or_else(find_oha),
                out,
                port,
                smoke,
                step_secs,
                kb_dir: cli.kb.clone(),
                service_env,
            };
            let report = loadbench::run(&opts)?;
            println!("{}", report.markdown());
            Ok(())
        }
        Command::Synth { n, seed } => {
            let kb = kb::load_dir(&cli.kb)?;
            for c in synth::Generator::new(&kb, seed).cases(n) {
                let cond = &kb.conditions[c.patient.condition];
                println!(
                    "[{} | {} {} | {}] {}",
                    c.register.as_str(),
                    cond.id,
                    cond.icd10,
                    c.patient.level,
                    c.text
                );
            }
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn evaluate(
    kb_dir: &PathBuf,
    device: ml::DeviceChoice,
    out: &PathBuf,
    vignettes: &PathBuf,
    models: Option<PathBuf>,
    seed: u64,
    cases: usize,
    show_misses: bool,
) -> Result<()> {
    let kb = std::sync::Arc::new(
        kb::load_dir(kb_dir)
            .with_context(|| format!("loading knowledge base from {}", kb_dir.display()))?,
    );
    let device = ml::select_device(device)?;
    let models = std::sync::Arc::new(triage::Models::load(
        kb.clone(),
        &models.as_deref().map_or_else(triage::ModelDirs::default, triage::ModelDirs::under),
        &device,
    )?);
    let runner = triage::Runner::of(models.clone());
    let vs = eval::load_vignettes(vignettes, &kb)?;
    let test = synth::splits(&kb, seed, 0, 0, cases).test;
    let synthetic: Vec<eval::Item> = test.iter().map(|c| eval::Item::from_case(&kb, c)).collect();
    let hand: Vec<eval::Item> = vs.iter().map(eval::Item::from_vignette).collect();
    let bar = ProgressBar::new(2);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>20} [{bar:40}] {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix("eval");
    bar.set_message(format!("synthetic test split ({} cases)", synthetic.len()));
    let r1 = eval::evaluate(&runner, "Synthetic test split", &synthetic);
    bar.inc(1);
    bar.set_message(format!("hand-written vignettes ({} cases)", hand.len()));
    let r2 = eval::evaluate(&runner, "Hand-written vignettes", &hand);
    if show_misses {
        for (v, item) in vs.iter().zip(&hand) {
            let t = runner.run(&item.input, 5, 3);
            let conditions = t.conditions.as_deref().unwrap_or_default();
            let a = eval::answer(&kb, item, &t);
            if a.code_rank.is_some_and(|r| r < 3) && a.level == a.gold_level {
                continue;
            }
            let top: Vec<String> = conditions
                .iter()
                .take(3)
                .map(|r| format!("{} {:.2}", kb.conditions[r.condition].icd10, r.probability))
                .collect();
            let flags: Vec<&str> =
                t.decision.red_flags.iter().map(|&r| kb.rules[r].id.as_str()).collect();
            let found: Vec<String> = t
                .findings
                .iter()
                .flatten()
                .map(|f| {
                    format!("{}{}", if f.present { "" } else { "!" }, kb.findings[f.finding].id)
                })
                .collect();
            let mut by_level = [0f32; 5];
            for r in conditions {
                by_level[kb.conditions[r.condition].urgency.index()] += r.probability;
            }
            let show =
                |p: &[f32]| p.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
            println!(
                "{} gold {:?} {} | got [{}] {} (model {} [{}], differential [{}]) flags {:?}\n   findings {:?}\n   {}",
                v.id,
                v.gold_icd10,
                v.gold_level,
                top.join(", "),
                t.decision.level,
                t.emergency.as_ref().map_or("-".into(), |e| e.model_level.to_string()),
                t.emergency.as_ref().map_or(String::new(), |e| show(&e.probabilities)),
                show(&by_level),
                flags,
                found,
                v.text
            );
        }
    }
    {
        let ranks: Vec<Option<usize>> = hand
            .iter()
            .map(|item| {
                eval::bayes_top(&kb, &item.input, 10)
                    .iter()
                    .position(|&c| item.gold_codes.iter().any(|g| *g == kb.conditions[c].icd10))
            })
            .collect();
        let at = |k: usize| {
            ranks.iter().filter(|r| r.is_some_and(|r| r < k)).count() as f64
                / ranks.len().max(1) as f64
        };
        println!(
            "hand-written vignettes, naive Bayes over the reading: top-1 {:.3}, top-3 {:.3}, top-10 {:.3}",
            at(1),
            at(3),
            at(10)
        );
    }
    bar.inc(1);
    bar.finish_with_message("done");
    let header = format!(
        "Knowledge base `{}` ({} findings, {} conditions). Synthetic test split: seed {seed} + 2, {} cases. \
         Vignettes: `{}`. A condition counts as right when its ICD-10 code is one of the gold codes. \
         Produced by `triagent eval --out {}`.",
        kb.fingerprint,
        kb.findings.len(),
        kb.conditions.len(),
        synthetic.len(),
        std::fs::canonicalize(vignettes)
            .ok()
            .and_then(|v| std::env::current_dir()
                .ok()
                .and_then(|c| v.strip_prefix(c).ok().map(|p| p.display().to_string())))
            .unwrap_or_else(|| vignettes.display().to_string()),
        out.display()
    );
    let texts =
        eval::load_reading(&eval::default_reading_dir(), &kb).map_err(anyhow::Error::msg)?;
    let (mut extra, readings) = eval::reading_section(&models, &texts);
    for r in &readings {
        println!(
            "reading, {}: present precision {:.3} recall {:.3}; absent precision {:.3} recall {:.3}",
            r.name,
            r.all.present.precision(),
            r.all.present.recall(),
            r.all.absent.precision(),
            r.all.absent.recall()
        );
    }
    let dev_path = eval::default_dev_path();
    if dev_path.exists() {
        let cases = eval::load_dev(&dev_path).map_err(anyhow::Error::msg)?;
        let map = eval::load_absent_map(&eval::default_absent_map_path(), &kb)
            .map_err(anyhow::Error::msg)?;
        let dev = eval::dev_section(&runner, &cases, &map);
        std::fs::create_dir_all(out)?;
        eval::write_reliability_plot(
            &out.join("development-vignettes-reliability.png"),
            &dev.calibration,
        )?;
        extra.push('\n');
        extra.push_str(&dev.markdown);
        extra.push_str("\n![reliability diagram](development-vignettes-reliability.png)\n");
        let (d, a) = (&dev.pipeline, &dev.absent);
        println!(
            "development vignettes: top-1 {:.3}, top-3 {:.3}, top-10 {:.3}, reach {:.3}; negatives read absent {} of {} ({:.3}), phrases with a finding read present {}",
            d.top1,
            d.top3,
            d.top10,
            d.reach,
            a.read_absent,
            a.in_kb,
            a.read_absent as f64 / a.in_kb.max(1) as f64,
            a.with_present
        );
        if show_misses {
            for (p, _, got) in a.misses.iter().take(40) {
                println!("negative read wrong: {p:?} -> [{got}]");
            }
        }
    } else {
        extra.push_str(&format!(
            "\nDevelopment vignettes not found at {}: not measured.\n",
            dev_path.display()
        ));
    }
    eval::write_reports(out, &header, &[r1.clone(), r2.clone()], &extra)?;
    for r in [&r1, &r2] {
        println!(
            "{}: top-1 {:.3}, top-3 {:.3}, top-10 {:.3}; triage accuracy {:.3}; under-triaged emergencies {:.3} of {}; over-triage {:.3}; ECE {:.3}",
            r.name,
            r.top1,
            r.top3,
            r.top10,
            r.triage_accuracy,
            r.under_triaged_emergencies,
            r.emergencies,
            r.over_triage,
            r.ece
        );
    }
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

fn load_settings(
    config: Option<PathBuf>,
    env: Option<String>,
    database_url: Option<String>,
) -> Result<settings::Settings> {
    let mut settings =
        settings::Settings::load(&settings::default_dir(), env.as_deref(), config.as_deref())?;
    if let Some(url) = database_url {
        settings.database.url = settings::Secret::new(url);
    }
    Ok(settings)
}

fn keys(
    action: KeysAction,
    config: Option<PathBuf>,
    env: Option<String>,
    database_url: Option<String>,
) -> Result<()> {
    let settings = load_settings(config, env, database_url)?;
    actix_web::rt::System::new().block_on(async move {
        let db = &settings.database;
        let store: Box<dyn store::KeyStore> = if db.url.is_empty() {
            Box::new(store::FileKeys::open(&settings.auth.keys_file)?)
        } else {
            let timeout = std::time::Duration::from_millis(db.timeout_ms);
            Box::new(store::PgKeys::connect(db.url.expose(), timeout).await.map_err(|e| {
                anyhow::anyhow!("{e}\nIs PostgreSQL running at the URL given? README.md, \"PostgreSQL\", says how to start one.")
            })?)
        };
        let place = if db.url.is_empty() { format!("key file {}", settings.auth.keys_file) } else { "PostgreSQL".to_string() };
        match action {
            KeysAction::Create { name, scopes } => {
                let scopes = store::keys::parse_scopes(&scopes).map_err(anyhow::Error::msg)?;
                let created = store.create(&name, &scopes).await?;
                let names: Vec<&str> = created.key.scopes.iter().map(|s| s.as_str()).collect();
                eprintln!("created key {} ({}) with scopes {} in {place}; it is shown only now, keep it safe:", created.key.id, created.key.name, names.join(","));
                println!("{}", created.secret.expose());
            }
            KeysAction::List => {
                let keys = store.list().await?;
                println!("{:<36}  {:<24}  {:<40}  {:<20}  REVOKED", "ID", "NAME", "SCOPES", "CREATED");
                for k in &keys {
                    let names: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                    let revoked = k.revoked_at.map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
                    println!("{:<36}  {:<24}  {:<40}  {:<20}  {}", k.id, k.name, names.join(","), k.created_at.format("%Y-%m-%d %H:%M:%S"), revoked);
                }
                eprintln!("{} keys in {place}", keys.len());
            }
            KeysAction::Revoke { id } => match store.revoke(id).await? {
                store::Revoked::Revoked => eprintln!("revoked key {id}"),
                store::Revoked::AlreadyRevoked => eprintln!("key {id} was already revoked"),
                store::Revoked::NotFound => bail!("no key with id {id} in {place}"),
            },
        }
        Ok(())
    })
}

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas, and
/// under load every page it gives back and takes again is faulted in as a fresh 2 MiB page,
/// zeroed while the faulting thread (an HTTP worker or an agent) waits, which multiplied the
/// tail latency under load for the same CPU (docs/performance.md). Same effect as
/// `MIMALLOC_ALLOW_THP=0`, without relying on the environment. Where the kernel has no such
/// switch the service runs as before.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!(
            "triagent: could not turn transparent huge pages off ({e}); latency may suffer under load"
        );
    }
}

fn serve(
    port: Option<u16>,
    config: Option<PathBuf>,
    env: Option<String>,
    database_url: Option<String>,
) -> Result<()> {
    no_transparent_huge_pages();
    let mut settings = load_settings(config, env, database_url)?;
    if let Some(p) = port {
        settings.server.port = p;
    }
    let mut telemetry = telemetry::init(&settings.telemetry)?;
    if telemetry.enabled() {
        tracing::info!(sample_ratio = settings.telemetry.sample_ratio, "OpenTelemetry traces on");
    }
    let telemetry_settings = settings.telemetry.clone();
    let served = actix_web::rt::System::new().block_on(async move {
        let started = Instant::now();
        let app = api::Application::build(settings).await?;
        let metrics = app.metrics();
        // Dropped when the server has stopped: the last reading goes out then.
        let metrics_export =
            telemetry::spawn_metrics_export(&telemetry_settings, move || metrics.gather())?;
        if metrics_export.is_some() {
            tracing::info!(
                interval_ms = telemetry_settings.metrics_interval_ms,
                "OpenTelemetry metrics on"
            );
        }
        eprintln!(
            "triagent: ready on port {} in {:.1}s",
            app.port(),
            started.elapsed().as_secs_f64()
        );
        app.run_until_stopped().await?;
        eprintln!("triagent: stopped");
        Ok::<(), anyhow::Error>(())
    });
    // Exports the spans still buffered.
    telemetry.shutdown();
    served
}
