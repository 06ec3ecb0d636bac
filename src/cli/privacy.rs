//! `pods policy …`, `pods consent …`, `pods data import` and `pods subject …`: requests to a
//! running node's admin API about its policy and the personal data it keeps.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use pods_node::admin::api::{ImportRequest, PolicyLoad, Rectified, Rectify, Restrict, Withdraw};
use pods_node::admin::client::AdminClient;
use pods_node::privacy::{ErasureReceipt, Format, ImportReport, PolicyInfo, SubjectExport};
use pods_policy::{Category, Consent, Grant, Purpose};

use super::DataDir;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Load a policy file (policy.toml): it is validated whole, every problem is reported with
    /// its line and column, and a file with any problem changes nothing. In force from the
    /// next atom each workflow admits.
    Load {
        /// The policy file.
        file: PathBuf,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Print the policy in force (the file's text) and when it was loaded.
    Show {
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
pub enum ConsentCommand {
    /// Record a subject's consent to purposes (and the purposes below them) for data
    /// categories (and the categories below them). In force from the next atom.
    Grant {
        /// The data subject.
        subject: String,
        /// A purpose consented to (repeat for several); it must be in the policy.
        #[arg(long = "purpose", required = true, value_name = "PURPOSE")]
        purposes: Vec<String>,
        /// A data category consented to (repeat for several), such as health.heart_rate.
        #[arg(long = "category", required = true, value_name = "CATEGORY")]
        categories: Vec<String>,
        /// How long the consent lasts, such as 365d or 2y; without it, until withdrawn.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Where the consent was collected (a form, a contract), kept with the record.
        #[arg(long, default_value = "pods consent grant")]
        source: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Withdraw a subject's consents in force (for one purpose, or all): from the next atom,
    /// no workflow receives their data under it. The records stay, as history.
    Withdraw {
        /// The data subject.
        subject: String,
        /// Only the consents covering this purpose.
        #[arg(long)]
        purpose: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List consent records, with their history (one subject's, or everyone's).
    List {
        /// Only this subject's.
        #[arg(long)]
        subject: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Import personal records into a dataset of the policy from CSV (with a header row) or
    /// JSON lines. Every row is checked against the dataset's columns; bad rows are reported
    /// with their line numbers, and nothing is imported from a file with bad rows unless
    /// --skip-bad is given.
    Import {
        /// The dataset (a [[dataset]] of the policy).
        dataset: String,
        /// The file: .csv, or .jsonl/.ndjson/.json (JSON lines).
        file: PathBuf,
        /// The file's format, if its name does not say.
        #[arg(long, value_parser = ["csv", "jsonl"])]
        format: Option<String>,
        /// Import the good rows of a file with bad ones (the bad ones are listed).
        #[arg(long)]
        skip_bad: bool,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
pub enum SubjectCommand {
    /// Print, as JSON, everything the node keeps about a subject: records, consents with their
    /// history, and which purposes processed their data and which peers received it.
    Export {
        /// The data subject.
        subject: String,
        /// Write the JSON to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Correct a subject's records in a dataset: each --set COLUMN=VALUE replaces that value
    /// in the records and in their copies in the node's stream logs (COLUMN= with nothing
    /// after removes it); every peer that pulled a stream holding the subject's data is asked
    /// to correct its copies too. State that workflows derived from the old values is not
    /// changed.
    Rectify {
        /// The data subject.
        subject: String,
        /// The dataset whose records are corrected.
        #[arg(long)]
        dataset: String,
        /// A correction, COLUMN=VALUE (repeat for several).
        #[arg(long = "set", required = true, value_name = "COLUMN=VALUE")]
        changes: Vec<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Erase a subject: their records, consents and processing log are deleted (overwritten
    /// on disk), the key of their encrypted stream and state payloads is destroyed, and every
    /// peer that received their data is asked to erase it too. Prints the receipt, signed with
    /// the node's key, as JSON; peers that have not confirmed yet are listed as pending (the
    /// node retries until they do). Erasing again prints the receipt again.
    Erase {
        /// The data subject.
        subject: String,
        /// Wait up to this many seconds for every peer's acknowledgement, showing each as it
        /// comes, before printing the receipt; fails if one is still pending by then (the node
        /// keeps retrying). 0 prints the receipt at once.
        #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
        wait: f64,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Restrict processing of a subject's data: it is kept, but no workflow receives it until
    /// the restriction is lifted (with --lift). From the next atom.
    Restrict {
        /// The data subject.
        subject: String,
        /// Lift the restriction instead.
        #[arg(long)]
        lift: bool,
        #[command(flatten)]
        dir: DataDir,
    },
}

pub fn policy(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Load { file, dir } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let info: PolicyInfo = client(&dir.data_dir)?.post(
                "/policy",
                &PolicyLoad {
                    name: file.display().to_string(),
                    text,
                },
            )?;
            eprintln!(
                "policy loaded: {} purposes, {} datasets, {} workflow and portal rules",
                info.purposes, info.datasets, info.rules
            );
        }
        PolicyCommand::Show { dir } => {
            let info: PolicyInfo = client(&dir.data_dir)?.get("/policy")?;
            match info.loaded_at {
                Some(at) => eprintln!("policy loaded at {at} (seconds since the Unix epoch)"),
                None => eprintln!(
                    "no policy loaded: every personal event is refused; load one with `pods policy load FILE`"
                ),
            }
            print!("{}", info.text);
        }
    }
    Ok(())
}

pub fn consent(command: ConsentCommand) -> anyhow::Result<()> {
    match command {
        ConsentCommand::Grant {
            subject,
            purposes,
            categories,
            expires_in,
            source,
            dir,
        } => {
            let expires_at = match expires_in {
                Some(d) => {
                    let seconds = pods_policy::parse_duration(&d)
                        .map_err(|e| anyhow::anyhow!("--expires-in {e}"))?;
                    Some(pods_policy::Clock::now(&pods_policy::SystemClock) + seconds)
                }
                None => None,
            };
            let grant = Grant {
                subject,
                purposes: purposes
                    .into_iter()
                    .map(Purpose::new)
                    .collect::<Result<_, _>>()?,
                categories: categories
                    .into_iter()
                    .map(Category::new)
                    .collect::<Result<_, _>>()?,
                expires_at,
                source,
            };
            let c: Consent = client(&dir.data_dir)?.post("/consents", &grant)?;
            eprintln!("consent {} recorded for {}", c.id.0, c.subject);
            println!("{}", c.id.0);
        }
        ConsentCommand::Withdraw {
            subject,
            purpose,
            dir,
        } => {
            let changed: Vec<Consent> = client(&dir.data_dir)?.post(
                "/consents/withdraw",
                &Withdraw {
                    subject: subject.clone(),
                    purpose,
                },
            )?;
            eprintln!(
                "{} consent(s) of {subject} withdrawn; from the next atom no workflow receives their data under them",
                changed.len()
            );
        }
        ConsentCommand::List { subject, json, dir } => {
            let path = match &subject {
                Some(s) => format!("/consents?subject={}", encode(s)),
                None => "/consents".to_owned(),
            };
            let consents: Vec<Consent> = client(&dir.data_dir)?.get(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&consents)?);
                return Ok(());
            }
            for c in consents {
                let state = match (c.withdrawn_at, c.expires_at) {
                    (Some(t), _) => format!("withdrawn at {t}"),
                    (None, Some(t)) => format!("expires at {t}"),
                    (None, None) => "until withdrawn".to_owned(),
                };
                let join = |v: Vec<String>| v.join(",");
                println!(
                    "{}\t{}\t{}\t{}\tgranted at {}\t{state}\t{}",
                    c.id.0,
                    c.subject,
                    join(c.purposes.iter().map(ToString::to_string).collect()),
                    join(c.categories.iter().map(ToString::to_string).collect()),
                    c.granted_at,
                    c.source
                );
            }
        }
    }
    Ok(())
}

pub fn data(command: DataCommand) -> anyhow::Result<()> {
    let DataCommand::Import {
        dataset,
        file,
        format,
        skip_bad,
        dir,
    } = command;
    let format = match format.as_deref() {
        Some("csv") => Format::Csv,
        Some(_) => Format::Jsonl,
        None => Format::of_file(&file.display().to_string()).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: cannot tell the format from the name; pass --format csv or --format jsonl",
                file.display()
            )
        })?,
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    eprintln!("importing {} into {dataset}…", file.display());
    let report: ImportReport = client(&dir.data_dir)?.post(
        &format!("/data/{}", encode(&dataset)),
        &ImportRequest {
            format,
            text,
            skip_bad,
        },
    )?;
    for bad in &report.skipped {
        eprintln!("skipped line {}: {}", bad.line, bad.problem);
    }
    eprintln!(
        "{} records of {} subjects imported into {}; {} bad rows skipped",
        report.imported,
        report.subjects,
        report.dataset,
        report.skipped.len()
    );
    Ok(())
}

pub fn subject(command: SubjectCommand) -> anyhow::Result<()> {
    match command {
        SubjectCommand::Export {
            subject,
            output,
            dir,
        } => {
            let export: SubjectExport =
                client(&dir.data_dir)?.get(&format!("/subjects/{}", encode(&subject)))?;
            let json = serde_json::to_string_pretty(&export)?;
            match output {
                Some(file) => {
                    std::fs::write(&file, json + "\n")
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    eprintln!("{subject}'s data written to {}", file.display());
                }
                None => println!("{json}"),
            }
        }
        SubjectCommand::Rectify {
            subject,
            dataset,
            changes,
            dir,
        } => {
            let mut map = serde_json::Map::new();
            for c in changes {
                let (k, v) = c.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("--set {c:?}: write COLUMN=VALUE (COLUMN= removes the value)")
                })?;
                let v = if v.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(v.to_owned())
                };
                map.insert(k.trim().to_owned(), v);
            }
            let done: Rectified = client(&dir.data_dir)?.post(
                &format!("/subjects/{}/rectify", encode(&subject)),
                &Rectify {
                    dataset,
                    changes: map,
                },
            )?;
            eprintln!(
                "{} record(s) of {subject} corrected, and their copies in {} logged atom(s){}",
                done.records,
                done.atoms,
                if done.peers.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} asked to correct theirs (retried until they do)",
                        done.peers.join(", ")
                    )
                }
            );
        }
        SubjectCommand::Erase { subject, wait, dir } => erase(&subject, wait, &dir.data_dir)?,
        SubjectCommand::Restrict { subject, lift, dir } => {
            let _: Restrict = client(&dir.data_dir)?.post(
                &format!("/subjects/{}/restrict", encode(&subject)),
                &Restrict { restricted: !lift },
            )?;
            if lift {
                eprintln!("processing of {subject}'s data is allowed again from the next atom");
            } else {
                eprintln!("processing of {subject}'s data is restricted from the next atom");
            }
        }
    }
    Ok(())
}

/// `pods subject erase`: erases here, then waits up to `wait` seconds for the peers.
fn erase(subject: &str, wait: f64, dir: &Path) -> anyhow::Result<()> {
    if !(wait.is_finite() && wait >= 0.0) {
        anyhow::bail!("--wait takes a number of seconds, 0 or more (got {wait})");
    }
    eprintln!("erasing {subject}…");
    let started = Instant::now();
    let client = client(dir)?;
    let mut receipt: ErasureReceipt =
        client.post(&format!("/subjects/{}/erase", encode(subject)), &())?;
    let pending = |r: &ErasureReceipt| -> Vec<String> {
        r.pending_peers().into_iter().map(str::to_owned).collect()
    };
    eprintln!(
        "{subject} erased here: {} records, {} consents{}; {}",
        receipt.erased.records,
        receipt.erased.consents,
        if receipt.erased.payload_key {
            ", payload key destroyed"
        } else {
            ""
        },
        match pending(&receipt) {
            p if p.is_empty() => "no peer pending".to_owned(),
            p => format!("pending at {} (retried until they confirm)", p.join(", ")),
        }
    );
    let deadline = started + Duration::from_secs_f64(wait.min(1e9));
    let mut waiting = pending(&receipt);
    while !waiting.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        receipt = match client.get(&format!("/subjects/{}/erasure", encode(subject))) {
            Ok(r) => r,
            Err(e) => {
                // Erased here already: the receipt as it stood is still worth having.
                println!("{}", serde_json::to_string_pretty(&receipt)?);
                return Err(e).context(
                    "erased here, but the node stopped answering while waiting for the peers \
                     (they are still asked; `pods subject erase` again shows the receipt)",
                );
            }
        };
        let now = pending(&receipt);
        for peer in waiting.iter().filter(|p| !now.contains(p)) {
            eprintln!(
                "{peer} acknowledged the erasure ({:.0?} after the request)",
                started.elapsed()
            );
        }
        waiting = now;
    }
    println!("{}", serde_json::to_string_pretty(&receipt)?);
    if wait > 0.0 && !waiting.is_empty() {
        anyhow::bail!(
            "still pending at {} after {wait} s; the node keeps asking until they acknowledge \
             (`pods status` lists it, and `pods subject erase` again shows the receipt)",
            waiting.join(", ")
        );
    }
    Ok(())
}

fn client(dir: &Path) -> anyhow::Result<AdminClient> {
    Ok(AdminClient::for_dir(dir)?)
}

/// Percent-encodes `s` for a URL path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
