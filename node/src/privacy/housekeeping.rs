//! The privacy side's schedule: the processing log written to `policy.db`, records past
//! retention purged, and the gate's denials written to the audit log (a bounded sample with
//! counts), every few seconds and once more at stop.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::Privacy;
use crate::audit::AuditLog;

/// How often the schedule runs.
pub const EVERY: Duration = Duration::from_secs(5);

/// Runs the schedule until `stop` turns true.
pub async fn run(privacy: Privacy, audit: AuditLog, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(EVERY) => {}
        }
        let p = privacy.clone();
        let a = audit.clone();
        let _ = tokio::task::spawn_blocking(move || once(&p, &a)).await;
    }
    once(&privacy, &audit);
}

/// One round: the processing log written, records purged, denials reported.
pub fn once(privacy: &Privacy, audit: &AuditLog) {
    if let Err(e) = privacy.flush_processing() {
        tracing::error!(error = %e, "the processing log could not be written");
    }
    match privacy.purge_expired() {
        Ok(0) => {}
        Ok(n) => {
            if let Err(e) = audit.record("node", "retention.purge", json!({ "records": n })) {
                tracing::error!(error = %e, "a purge could not be audited");
            }
        }
        Err(e) => tracing::error!(error = %e, "records past retention could not be purged"),
    }
    let denials = privacy.gate().take_denials();
    if denials.sampled.is_empty() && denials.unsampled == 0 {
        return;
    }
    let mut counts: BTreeMap<(String, &str), u64> = BTreeMap::new();
    for d in &denials.sampled {
        *counts.entry((d.path.clone(), d.reason.name())).or_default() += 1;
    }
    let by_path: Vec<_> = counts
        .into_iter()
        .map(|((path, reason), n)| json!({"path": path, "reason": reason, "sampled": n}))
        .collect();
    let detail = json!({
        "denied": denials.sampled.len() as u64 + denials.unsampled,
        "unsampled": denials.unsampled,
        "by_path": by_path,
        "sample": denials.sampled,
    });
    if let Err(e) = audit.record("gate", "gate.denied", detail) {
        tracing::error!(error = %e, "denials could not be audited");
    }
}
