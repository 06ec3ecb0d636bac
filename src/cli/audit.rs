//! `pods audit tail` (through a running node's admin API) and `pods audit verify` (offline,
//! from the data dir's files).

use std::path::Path;

use anyhow::Context;
use pods_node::admin::client::AdminClient;

pub fn tail(dir: &Path, n: usize, json: bool) -> anyhow::Result<()> {
    let entries = AdminClient::for_dir(dir)?.audit_tail(n)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!("the audit log is empty");
    }
    for e in entries {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            e.seq,
            utc(e.at),
            e.actor,
            e.action,
            pods::policy::audit::canonical_json(&e.detail)
        );
    }
    Ok(())
}

pub fn verify(dir: &Path) -> anyhow::Result<()> {
    let verified = match pods_node::audit::verify_dir(dir) {
        Ok(v) => v,
        // Names the file, the first bad entry and how the log was changed.
        Err(e @ pods_node::NodeError::AuditTampered { .. }) => return Err(e.into()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot verify the audit log of {}", dir.display()));
        }
    };
    println!(
        "audit log verified: {} {}, last hash {}",
        verified.count,
        if verified.count == 1 {
            "entry"
        } else {
            "entries"
        },
        pods::policy::audit::to_hex(&verified.head)
    );
    Ok(())
}

/// Unix seconds as an RFC 3339 time in UTC.
fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_written_in_utc() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
