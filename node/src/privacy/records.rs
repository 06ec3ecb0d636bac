//! Personal records imported from CSV or JSON lines, checked against the policy's dataset
//! schema: each row's columns must be the dataset's, and its subject column filled. A file
//! with a bad row imports nothing (every bad row is reported with its line) unless the caller
//! asks to skip bad rows.

use pods_policy::Dataset;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How an import file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row naming the columns.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The format a file name suggests (`.csv`, or `.jsonl`/`.ndjson`/`.json`).
    pub fn of_file(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else if [".jsonl", ".ndjson", ".json"]
            .iter()
            .any(|e| lower.ends_with(e))
        {
            Some(Format::Jsonl)
        } else {
            None
        }
    }
}

/// A row that could not be imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRow {
    /// Its line in the file, counted from 1.
    pub line: u64,
    /// What is wrong with it.
    pub problem: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The dataset imported into.
    pub dataset: String,
    /// Rows imported.
    pub imported: u64,
    /// Distinct subjects among them.
    pub subjects: u64,
    /// Rows skipped as bad (only with skipping asked for).
    pub skipped: Vec<BadRow>,
}

/// One stored personal record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its id in `policy.db`.
    pub id: u64,
    /// Its dataset.
    pub dataset: String,
    /// Its data subject.
    pub subject: String,
    /// Column → value.
    pub fields: Map<String, Value>,
    /// When it was collected (imported), seconds since the Unix epoch.
    pub collected_at: u64,
}

/// A row that passed: its line, its subject and its fields.
pub(crate) type GoodRow = (u64, String, Map<String, Value>);

/// The rows of `text`, each with its line and its subject, checked against `dataset`; and the
/// bad rows.
pub(crate) fn parse(dataset: &Dataset, format: Format, text: &str) -> (Vec<GoodRow>, Vec<BadRow>) {
    let rows = match format {
        Format::Csv => csv_rows(text),
        Format::Jsonl => jsonl_rows(text),
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (line, row) in rows {
        match row.and_then(|fields| check(dataset, fields)) {
            Ok((subject, fields)) => good.push((line, subject, fields)),
            Err(problem) => bad.push(BadRow { line, problem }),
        }
    }
    (good, bad)
}

/// The row's subject, if its columns are the dataset's and its subject column is filled.
fn check(
    dataset: &Dataset,
    fields: Map<String, Value>,
) -> Result<(String, Map<String, Value>), String> {
    if let Some(unknown) = fields.keys().find(|k| !dataset.columns.contains_key(*k)) {
        return Err(format!(
            "column `{unknown}` is not in dataset `{}` (its columns: {})",
            dataset.name,
            dataset
                .columns
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let subject = match fields.get(&dataset.subject) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(format!("the subject column `{}` is empty", dataset.subject)),
    };
    if let Some((k, _)) = fields
        .iter()
        .find(|(_, v)| matches!(v, Value::Array(_) | Value::Object(_)))
    {
        return Err(format!(
            "column `{k}` holds a list or an object; give a single value"
        ));
    }
    Ok((subject, fields))
}

type Rows = Vec<(u64, Result<Map<String, Value>, String>)>;

fn csv_rows(text: &str) -> Rows {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return vec![(1, Err(format!("the header row cannot be read: {e}")))],
    };
    let mut out = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                let fields = headers
                    .iter()
                    .zip(r.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(h, v)| (h.trim().to_owned(), Value::String(v.to_owned())))
                    .collect();
                out.push((line, Ok(fields)));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                out.push((line, Err(format!("not a valid CSV row: {e}"))));
            }
        }
    }
    out
}

fn jsonl_rows(text: &str) -> Rows {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let row = match serde_json::from_str::<Value>(l) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) => Err("not a JSON object".to_owned()),
                Err(e) => Err(format!("not valid JSON: {e}")),
            };
            (i as u64 + 1, row)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use pods_policy::Policy;

    use super::*;

    fn dataset() -> Dataset {
        let p = Policy::parse(
            "p",
            r#"[[dataset]]
name = "patients"
subject = "pid"
columns = { pid = "identity.id", name = "contact.name", pulse = "health.pulse" }"#,
        )
        .unwrap();
        p.dataset("patients").unwrap().clone()
    }

    #[test]
    fn csv_rows_are_checked_with_their_lines() {
        let text = "pid,name,pulse\nann,Ann A,61\n,Nobody,70\n\"bob\",\"Bob, B\",\nzed,Zed\n";
        let (good, bad) = parse(&dataset(), Format::Csv, text);
        let subjects: Vec<(u64, &str)> = good.iter().map(|(l, s, _)| (*l, s.as_str())).collect();
        assert_eq!(subjects, vec![(2, "ann"), (4, "bob")]);
        assert_eq!(good[1].2.get("name"), Some(&Value::String("Bob, B".into())));
        assert_eq!(good[1].2.get("pulse"), None);
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 5]);
        assert!(bad[0].problem.contains("subject column `pid` is empty"));
        assert!(bad[1].problem.contains("CSV"), "{}", bad[1].problem);
        let (_, bad) = parse(&dataset(), Format::Csv, "pid,email\nann,a@x\n");
        assert!(bad[0].problem.contains("column `email`"));
    }

    #[test]
    fn json_lines_are_checked_with_their_lines() {
        let text = "{\"pid\":\"ann\",\"pulse\":61}\n\n[1]\n{\"pid\":7}\n{oops\n{\"pid\":\"x\",\"name\":{\"a\":1}}\n";
        let (good, bad) = parse(&dataset(), Format::Jsonl, text);
        let subjects: Vec<(u64, &str)> = good.iter().map(|(l, s, _)| (*l, s.as_str())).collect();
        assert_eq!(subjects, vec![(1, "ann"), (4, "7")]);
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 5, 6]);
    }
}
