//! `triagent`: the one binary, with subcommands.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

mod cli;

fn main() -> anyhow::Result<()> {
    // Logging (and, for `serve`, OpenTelemetry) is set up by the command: see
    // `telemetry::init`.
    cli::run()
}
