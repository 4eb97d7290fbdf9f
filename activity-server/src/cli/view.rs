//! What the CLI prints: the JSON views of the model (shared with the
//! dashboard, [`activity_dashboard::json`]), its errors as JSON, and
//! plain-text tables.
//!
//! The JSON views are the `--json` output, and the tables are drawn from the
//! same views, so both show the same facts.

use std::{borrow::Cow, fmt::Write as _};

use activity_core::ProtocolError;
pub(crate) use activity_dashboard::json::*;
use serde_json::{json, Map, Value};

/// The `kind` of a refused call in `--json` errors: the error's variant, in
/// snake case.
pub(crate) fn protocol_error_kind(error: &ProtocolError) -> &'static str {
    match error {
        ProtocolError::InvalidOptions(_) => "invalid_options",
        ProtocolError::InvalidArgument { .. } => "invalid_argument",
        ProtocolError::PayloadTooLarge { .. } => "payload_too_large",
        ProtocolError::InvalidToken { .. } => "invalid_token",
        ProtocolError::NotFound { .. } => "not_found",
        ProtocolError::AlreadyExists { .. } => "already_exists",
        ProtocolError::AlreadyClosed { .. } => "already_closed",
        ProtocolError::Unavailable { .. } => "unavailable",
        ProtocolError::Unsupported { .. } => "unsupported",
        ProtocolError::Internal { .. } => "internal",
        _ => "other",
    }
}

/// The fields a refused call names, for `--json` errors (the message has them
/// too, in words).
pub(crate) fn protocol_error_fields(error: &ProtocolError) -> Map<String, Value> {
    let fields = match error {
        ProtocolError::InvalidOptions(options) => json!({
            "problems": options.problems.iter().map(|p| json!({
                "field": p.field,
                "rule": p.rule,
            })).collect::<Vec<_>>(),
        }),
        ProtocolError::InvalidArgument { field, .. } => json!({ "field": field }),
        ProtocolError::PayloadTooLarge { what, size, limit } => {
            json!({ "what": what, "size": size, "limit": limit })
        }
        ProtocolError::NotFound { what } | ProtocolError::AlreadyExists { what } => {
            json!({ "what": what })
        }
        ProtocolError::AlreadyClosed { what, reason } => {
            json!({ "what": what, "reason": reason.to_string() })
        }
        _ => json!({}),
    };
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `text` made safe for a terminal: control characters (C0, DEL, C1: the
/// start of every escape sequence), bidirectional overrides and invisible
/// formatting characters are written as Rust escapes (`\u{1b}`, `\n`), so that a
/// name or payload cannot move the cursor, recolour, retitle or reorder what the
/// terminal shows. With `keep_newlines`, `\n` stays a line break (messages of
/// several lines); table cells escape it too.
pub(crate) fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

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
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|text| escape(text, false)).collect())
        .collect();
    let header: Vec<Cow<'_, str>> = header.iter().map(|h| Cow::Borrowed(h.as_str())).collect();
    for row in std::iter::once(&header).chain(&rows) {
        for (i, text) in row.iter().enumerate() {
            widths[i] = widths[i].max(text.chars().count());
        }
    }
    let mut out = String::new();
    let lines = (!header.is_empty())
        .then_some(&header)
        .into_iter()
        .chain(&rows);
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
    fn tables_escape_control_characters_and_terminal_sequences() {
        let evil = "id\u{1b}[2J\u{1b}]0;owned\u{7}\r\nnext\u{9b}31m\u{202e}gnp.exe\u{200b}";
        let text = table(&["ID", "TYPE"], &[vec![evil.into(), "ok ✓".into()]]);
        assert_eq!(
            text,
            "ID                                                                      TYPE\n\
             id\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\r\\nnext\\u{9b}31m\\u{202e}gnp.exe\\u{200b}  ok ✓\n"
        );
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        // A payload's strings are JSON-escaped in cells, and C1/bidi characters too.
        let payload = json!({"name": "a\u{1b}b\u{202e}"});
        assert_eq!(
            escape(&cell(&payload), false),
            r#"{"name":"a\u001bb\u{202e}"}"#
        );
        // Messages keep their line breaks, nothing else.
        assert_eq!(escape("one\ntwo\u{1b}", true), "one\ntwo\\u{1b}");
        assert!(matches!(escape("plain ünïcode", false), Cow::Borrowed(_)));
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
