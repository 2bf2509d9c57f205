//! `triagent`: the one binary, with subcommands.

use mimalloc::MiMalloc;
use tracing_subscriber::prelude::*;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

mod cli;

/// Crates whose `debug` and `trace` lines may be printed: Triagent's own, which log ids, codes,
/// sizes and timings only. Every other crate is held at `info`, whatever TRIAGENT_LOG says:
/// at `debug`, tokio-postgres prints each statement's parameters (an API key's hash, a
/// report's body) and HTTP crates print headers.
const OWN_TARGETS: [&str; 18] = [
    "triagent", "api", "store", "coordinator", "bus", "pipeline", "ml", "kb", "settings", "metrics", "textfeat", "eval", "synth", "domain",
    "symptom_classifier", "condition_matcher", "treatment_retriever", "emergency_detector",
];

fn own(target: &str) -> bool {
    let root = target.split("::").next().unwrap_or(target);
    OWN_TARGETS.contains(&root)
}

fn main() -> anyhow::Result<()> {
    // Log lines go to standard error, filtered by TRIAGENT_LOG (tracing's EnvFilter syntax,
    // e.g. `debug` or `triagent::access=debug`), `info` by default.
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIAGENT_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let others_at_info = tracing_subscriber::filter::filter_fn(|m| *m.level() <= tracing::Level::INFO || own(m.target()));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_target(true).with_filter(filter).with_filter(others_at_info))
        .init();
    cli::run()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_our_own_crates_may_log_below_info() {
        assert!(super::own("triagent::access"));
        assert!(super::own("store::postgres"));
        assert!(!super::own("tokio_postgres::query"));
        assert!(!super::own("actix_web::middleware"));
    }
}
