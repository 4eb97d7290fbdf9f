//! What the CLI prints: the JSON views of the model (shared with the
//! dashboard, [`activity_dashboard::json`]) and plain-text tables.
//!
//! The JSON views are the `--json` output, and the tables are drawn from the
//! same views, so both show the same facts.

use std::fmt::Write as _;

pub(crate) use activity_dashboard::json::*;
use serde_json::Value;

/// A value as a table cell: strings bare, null as `-`, the rest as compact JSON.
pub(crate) fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the field at `path` holds a payload (shown whole, as JSON).
fn is_payload(path: &str) -> bool {
    const PAYLOADS: [&str; 5] = [
        "result",
        "details",
        "heartbeat_details",
        "last_heartbeat_details",
        "input",
    ];
    let last = path.rsplit('.').next().unwrap_or(path);
    PAYLOADS.contains(&last)
}

/// Two columns, `key  value`, one line per field of a JSON object (nested
/// objects flattened as `parent.child`).
pub(crate) fn fields(value: &Value) -> String {
    fn collect(prefix: &str, value: &Value, rows: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) if !map.is_empty() && !is_payload(prefix) => {
                for (key, child) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    collect(&name, child, rows);
                }
            }
            other => rows.push(vec![prefix.to_owned(), cell(other)]),
        }
    }
    let mut rows = Vec::new();
    collect("", value, &mut rows);
    table(&[], &rows)
}

/// A plain-text table: columns padded to their widest cell, the header (if
/// any) first.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = rows
        .iter()
        .map(Vec::len)
        .chain(std::iter::once(header.len()))
        .max()
        .unwrap_or(0);
    let mut widths = vec![0; columns];
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        for (i, text) in row.iter().enumerate() {
            widths[i] = widths[i].max(text.chars().count());
        }
    }
    let mut out = String::new();
    let lines = (!header.is_empty())
        .then_some(&header)
        .into_iter()
        .chain(rows);
    for row in lines {
        let mut line = String::new();
        for (i, text) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(text);
            } else {
                let _ = write!(line, "{text:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_core::Payload;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_fields_flatten_objects() {
        let text = table(
            &["ID", "EVENT"],
            &[
                vec!["1".into(), "WorkflowStarted".into()],
                vec!["10".into(), "X".into()],
            ],
        );
        assert_eq!(text, "ID  EVENT\n1   WorkflowStarted\n10  X\n");
        let text = fields(&json!({"a": 1, "b": {"c": null, "d": "x"}, "result": {"k": 1}}));
        assert_eq!(text, "a       1\nb.c     -\nb.d     x\nresult  {\"k\":1}\n");
    }

    #[test]
    fn payloads_show_as_json_and_non_json_is_named() {
        assert_eq!(
            payload(&Payload::json(&[1, 2]).expect("json")),
            json!([1, 2])
        );
        let garbled = Payload {
            data: vec![0xff].into(),
            ..Payload::json(&0).expect("json")
        };
        assert!(cell(&payload(&garbled)).contains("not JSON"));
    }
}
