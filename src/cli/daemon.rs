//! `pods init` and `pods node start`.

use std::path::{Path, PathBuf};

use anyhow::Context;

pub fn init(dir: &Path, name: &str) -> anyhow::Result<()> {
    let peer_id = pods_node::init(dir, name)
        .with_context(|| format!("cannot create a node in {}", dir.display()))?;
    eprintln!(
        "created node {name:?} in {}; edit {} to add apps and exports, then run `pods node start --data-dir {}`",
        dir.display(),
        dir.join(pods_node::CONFIG_FILE).display(),
        dir.display()
    );
    println!("{peer_id}");
    Ok(())
}

pub fn start(dir: PathBuf) -> anyhow::Result<()> {
    let catalog = pods::apps::catalog();
    pods_node::run_until_signal(
        dir.clone(),
        &catalog,
        pods_node::NodeConfig::default(),
        |s| {
            eprintln!(
                "node {} started: listening on {}; admin API on {} (token in {}); apps: {}",
                s.peer_id,
                s.listen.join(", "),
                s.admin,
                dir.join(pods_node::admin::api::ADMIN_FILE).display(),
                if s.apps.is_empty() {
                    "none".to_owned()
                } else {
                    s.apps.join(", ")
                }
            );
        },
    )
    .with_context(|| format!("the node in {} stopped with an error", dir.display()))?;
    eprintln!("node stopped");
    Ok(())
}
