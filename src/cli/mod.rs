//! The command line: argument parsing and the subcommands.

mod audit;
mod daemon;
mod peers;
mod privacy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Pods: a privacy-first, peer-to-peer data service.
///
/// Each organization runs one node; a node hosts stateful dataflow workflows over atomic
/// streams, keeps its personal data under GDPR policy, and composes with other organizations'
/// nodes.
#[derive(Parser)]
#[command(name = "pods", version)]
struct Cli {
    /// Log level for messages on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

/// Where a node keeps its data.
#[derive(Args, Clone)]
pub struct DataDir {
    /// The node's data directory (identity, pods.toml, database, admin.json).
    #[arg(long, value_name = "DIR", env = "PODS_DATA_DIR")]
    pub data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node: its data dir, an ed25519 identity (identity.key, mode 0600) and
    /// pods.toml; prints the new PeerId. Refuses a directory that has a node already.
    Init {
        #[command(flatten)]
        dir: DataDir,
        /// The organization's name (letters, digits, '-' or '_').
        #[arg(long, value_name = "ORG")]
        name: String,
    },
    /// Run a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Manage the peers of a running node (changes are written to its pods.toml).
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Inspect the node's audit log: every administrative act (init, start and stop, peer
    /// changes, policy, consent, imports, exports, erasure), hash-chained and signed with the
    /// node's key, in DIR/audit.db.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show a running node: identity, listen addresses, peers and whether they are connected,
    /// apps with their workflows, atoms committed and the last commit time.
    Status {
        #[command(flatten)]
        dir: DataDir,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load or show the node's policy: purposes, retention, datasets, and the purpose and
    /// legal basis of every workflow, portal and export.
    #[command(subcommand)]
    Policy(privacy::PolicyCommand),
    /// Grant, withdraw or list the consents of data subjects.
    #[command(subcommand)]
    Consent(privacy::ConsentCommand),
    /// Import personal records into a dataset of the policy.
    #[command(subcommand)]
    Data(privacy::DataCommand),
    /// A data subject's rights: access (export), rectification, restriction.
    #[command(subcommand)]
    Subject(privacy::SubjectCommand),
    /// Run the demo: an in-process shop whose cart workflow asks an inventory portal to reserve
    /// each ordered item; prints what the cart produced, one line per order line.
    Demo {
        /// Seed of the deterministic scheduler (same seed, same interleaving).
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Start the node's daemon: listens for peers (libp2p: TCP, noise, yamux), serves the
    /// admin API on 127.0.0.1 (address and token written to DIR/admin.json, mode 0600), runs
    /// the apps pods.toml lists. On SIGINT or SIGTERM it finishes the atoms in flight,
    /// commits, and exits 0.
    Start {
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
enum PeerCommand {
    /// Add a peer: its name here, its PeerId and its address; the node connects at once.
    Add {
        /// The peer's local name (used in paths: /peers/NAME/...).
        name: String,
        /// Its PeerId (printed by its `pods init`, shown by its `pods status`).
        peer_id: String,
        /// Its address, such as /ip4/127.0.0.1/tcp/4001.
        multiaddr: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Remove a peer: its connections are closed and its requests refused from now on; it
    /// leaves every export's allow-list.
    Remove {
        /// The peer's local name.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List the peers, and whether each is connected.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Show the latest entries of a running node's audit log (through its admin API), oldest
    /// first, one line per entry: seq, time (UTC), actor, action, detail (JSON).
    Tail {
        /// How many entries (the node returns at most 1000).
        #[arg(short = 'n', value_name = "N", default_value_t = 20)]
        n: usize,
        /// Print the entries as JSON, with their hashes and signatures in hex.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Verify the audit log offline, from DIR/audit.db and the public key of
    /// DIR/identity.key, whether the node runs or not: every entry's hash and signature, the
    /// hash chain, the sequence and the signed head. Prints "audit log verified: N entries,
    /// last hash HASH" and exits 0; otherwise exits 1, naming on stderr the first bad entry
    /// and how the log was changed (edited, removed, inserted, reordered), or what could not
    /// be read.
    Verify {
        #[command(flatten)]
        dir: DataDir,
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
        Command::Init { dir, name } => daemon::init(&dir.data_dir, &name),
        Command::Node(NodeCommand::Start { dir }) => daemon::start(dir.data_dir),
        Command::Peer(PeerCommand::Add {
            name,
            peer_id,
            multiaddr,
            dir,
        }) => peers::add(&dir.data_dir, name, peer_id, multiaddr),
        Command::Peer(PeerCommand::Remove { name, dir }) => peers::remove(&dir.data_dir, &name),
        Command::Peer(PeerCommand::List { dir }) => peers::list(&dir.data_dir),
        Command::Audit(AuditCommand::Tail { n, json, dir }) => audit::tail(&dir.data_dir, n, json),
        Command::Audit(AuditCommand::Verify { dir }) => audit::verify(&dir.data_dir),
        Command::Status { dir, json } => peers::status(&dir.data_dir, json),
        Command::Policy(c) => privacy::policy(c),
        Command::Consent(c) => privacy::consent(c),
        Command::Data(c) => privacy::data(c),
        Command::Subject(c) => privacy::subject(c),
        Command::Demo { seed } => {
            eprintln!("running the shop demo (seed {seed}): cart -> inventory portal");
            for line in pods::demo::run(seed)? {
                println!("{line}");
            }
            Ok(())
        }
    }
}
