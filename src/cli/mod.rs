//! The command line: argument parsing and the subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Pods: a privacy-first, peer-to-peer data service.
///
/// Each organization runs one node; a node hosts stateful dataflow workflows over atomic
/// streams, keeps its personal data under GDPR policy, and composes with other organizations'
/// nodes.
#[derive(Parser)]
#[command(name = "pods", version, about, long_about = None)]
struct Cli {
    /// Log level for messages on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the demo: an in-process shop whose cart workflow asks an inventory portal to reserve
    /// each ordered item; prints what the cart produced, one line per order line.
    Demo {
        /// Seed of the deterministic scheduler (same seed, same interleaving).
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo { seed } => {
            eprintln!("running the shop demo (seed {seed}): cart -> inventory portal");
            for line in pods::demo::run(seed)? {
                println!("{line}");
            }
            Ok(())
        }
    }
}
