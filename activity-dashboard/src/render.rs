//! The page frame, the embedded assets, and the pieces pages are built from.
//!
//! Everything is rendered by maud, which escapes every value it is given:
//! a name or payload holding `<script>` shows as text.

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use crate::auth::Viewer;

/// The header the page's refresh script sends: answer with the content only.
pub(crate) const REFRESH_HEADER: &str = "x-dashboard-refresh";

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

/// Only the dashboard's own script and style run; no page may frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Adds the security headers to every answer.
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

const NAV: [(&str, &str); 4] = [
    ("/workflows", "Workflows"),
    ("/activities", "Activities"),
    ("/task-queues", "Task queues"),
    ("/types", "Types"),
];

/// A whole page around `content`, or only `content` for a refresh.
pub(crate) fn page(title: &str, content: Markup, viewer: &Viewer) -> Markup {
    if viewer.partial {
        return content;
    }
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · activity dashboard" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/workflows" { "activity" span { "dashboard" } }
                    nav {
                        @for (href, label) in NAV {
                            a href=(href) { (label) }
                        }
                    }
                    span.refresh title="The page refreshes every 2 seconds" { "live" }
                    @if viewer.logged_in {
                        form.logout method="post" action="/logout" {
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main id="content" { (content) }
            }
        }
    }
}

/// A state as a colored badge.
pub(crate) fn state(name: &str) -> Markup {
    html! { span class={ "state state-" (name.to_ascii_lowercase()) } { (name) } }
}

/// A JSON value: text as text, null as a dash, anything else as JSON (pretty
/// when long).
pub(crate) fn value(v: &Value) -> Markup {
    match v {
        Value::Null => html! { span.none { "—" } },
        Value::String(text) => html! { (text) },
        Value::Bool(_) | Value::Number(_) => html! { (v.to_string()) },
        other => {
            let compact = other.to_string();
            if compact.len() <= 80 {
                html! { code { (compact) } }
            } else {
                let pretty = serde_json::to_string_pretty(other).unwrap_or(compact);
                html! { pre.json { (pretty) } }
            }
        }
    }
}

/// A JSON value that may be long, cut to `limit` characters for a table cell.
pub(crate) fn short(v: &Value, limit: usize) -> Markup {
    let text = match v {
        Value::Null => return html! { span.none { "—" } },
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= limit {
        return html! { code { (text) } };
    }
    let cut: String = text.chars().take(limit).collect();
    html! { code title=(text) { (cut) "…" } }
}

/// The fields of a JSON object as a definition list (nested objects nested).
pub(crate) fn fields(v: &Value) -> Markup {
    match v {
        Value::Object(map) if !map.is_empty() => html! {
            dl.fields {
                @for (key, child) in map {
                    dt { (key.replace('_', " ")) }
                    dd {
                        @if matches!(child, Value::Object(m) if !m.is_empty() && !is_payload_key(key)) {
                            (fields(child))
                        } @else {
                            (value(child))
                        }
                    }
                }
            }
        },
        other => value(other),
    }
}

/// Fields that hold payloads: shown as JSON, never taken apart.
fn is_payload_key(key: &str) -> bool {
    matches!(
        key,
        "input" | "result" | "details" | "heartbeat_details" | "last_heartbeat_details"
    )
}

/// The details of a history event (its view without id, time and name) as
/// `key value` pairs on one line.
pub(crate) fn event_details(v: &Value) -> Markup {
    let Value::Object(map) = v else {
        return html! {};
    };
    html! {
        @for (key, child) in map.iter().filter(|(k, _)| !matches!(k.as_str(), "event_id" | "time" | "event")) {
            span.detail {
                span.key { (key.replace('_', " ")) }
                " "
                @if matches!(child, Value::Object(_) | Value::Array(_)) && !is_payload_key(key) {
                    (fields(child))
                } @else {
                    (value(child))
                }
            }
        }
    }
}

/// A link with a query string built from `pairs` (each value escaped).
pub(crate) fn href(path: &str, pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<_> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    if pairs.is_empty() {
        return path.to_owned();
    }
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{path}?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_escaped() {
        let text = value(&json!("<script>alert(1)</script>")).into_string();
        assert_eq!(text, "&lt;script&gt;alert(1)&lt;/script&gt;");
        let object = value(&json!({"a": "<b>"})).into_string();
        assert!(!object.contains("<b>"), "{object}");
        let cut = short(&json!("<i>".repeat(50)), 10).into_string();
        assert!(!cut.contains("<i>"), "{cut}");
    }

    #[test]
    fn links_escape_their_values() {
        assert_eq!(
            href("/workflow", &[("id", "a&b=c d"), ("run", "")]),
            "/workflow?id=a%26b%3Dc+d"
        );
        assert_eq!(href("/types", &[]), "/types");
    }
}
