//! `triagent`: the one binary, with subcommands.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

mod cli;

fn main() -> anyhow::Result<()> {
    cli::run()
}
