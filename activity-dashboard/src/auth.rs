//! Who may see the pages: with a token set, a browser logs in with it once and
//! keeps a session cookie; a program may send the token as a bearer header.
//!
//! The session cookie holds an HMAC of a fixed text keyed with the token, so it
//! reveals nothing of the token, stays valid across restarts and on every
//! server with the same token, and stops being valid when the token changes.
//! It is HttpOnly (no script reads it) and SameSite=Strict (no other site's
//! page sends it); actions also refuse a request whose `Origin` is another
//! site's.

use std::sync::Arc;

use axum::{
    extract::{FromRequestParts, Query, State},
    http::{header, request::Parts, HeaderMap, Method, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use hmac::{Hmac, KeyInit, Mac};
use maud::html;
use serde::Deserialize;
use sha2::Sha256;

use crate::{render, App};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "activity_dashboard_session";

/// The token's check and the session value derived from it.
pub(crate) struct Auth {
    token: Vec<u8>,
    session: String,
}

impl Auth {
    pub(crate) fn new(token: &str) -> Self {
        Self {
            token: token.as_bytes().to_vec(),
            session: session_value(token.as_bytes()),
        }
    }

    fn token_matches(&self, given: &[u8]) -> bool {
        constant_time_eq(given, &self.token)
    }

    /// Whether the request carries a valid session cookie or bearer token.
    fn allows(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|token| self.token_matches(token));
        bearer
            || cookie(headers, COOKIE)
                .is_some_and(|v| constant_time_eq(v.as_bytes(), self.session.as_bytes()))
    }
}

fn session_value(token: &[u8]) -> String {
    // Any key length is valid for HMAC; an empty token is refused before this.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(token)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"activity-dashboard session v1");
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name`, if the request has it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// Whether an unsafe request comes from another site: its `Origin` names a
/// host other than the one it was sent to.
fn cross_site(parts: &Parts) -> bool {
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    match (origin, host) {
        (None, _) => false,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_none_or(|(_, rest)| rest != host),
        (Some(_), None) => true,
    }
}

/// A request allowed to see the dashboard, and how to answer it: the whole
/// page, or only its content (the page's own refresh asks for that).
pub(crate) struct Viewer {
    /// Answer with the content only.
    pub(crate) partial: bool,
    /// Show the log-out button.
    pub(crate) logged_in: bool,
}

impl FromRequestParts<Arc<App>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let partial = parts.headers.contains_key(render::REFRESH_HEADER);
        if parts.method != Method::GET && parts.method != Method::HEAD && cross_site(parts) {
            return Err((
                StatusCode::FORBIDDEN,
                "refused: this action was sent from another site's page",
            )
                .into_response());
        }
        match &app.auth {
            None => Ok(Viewer {
                partial,
                logged_in: false,
            }),
            Some(auth) if auth.allows(&parts.headers) => Ok(Viewer {
                partial,
                logged_in: true,
            }),
            // The refresh script reloads the page, which then shows the form.
            Some(_) if partial => Err(StatusCode::UNAUTHORIZED.into_response()),
            Some(_) => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                Err(login_form(StatusCode::UNAUTHORIZED, &next, None))
            }
        }
    }
}

/// Where to go after logging in: a path on this site only.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") => next,
        _ => "/",
    }
}

fn login_form(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let body = html! {
        section.login {
            h1 { "Log in" }
            p { "This server requires its token (the one it was started with, "
                code { "--token" } " or " code { "ACTIVITY_SERVER_TOKEN" } ")." }
            @if let Some(problem) = problem {
                p.error role="alert" { (problem) }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Token " input type="password" name="token" autocomplete="current-password" autofocus; }
                button type="submit" { "Log in" }
            }
        }
    };
    (
        status,
        render::page(
            "Log in",
            body,
            &Viewer {
                partial: false,
                logged_in: false,
            },
        ),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

pub(crate) async fn login_page(
    State(app): State<Arc<App>>,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if app.auth.is_none() {
        return Redirect::to(next).into_response();
    }
    login_form(StatusCode::OK, next, None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    next: Option<String>,
}

pub(crate) async fn login(
    State(app): State<Arc<App>>,
    parts: Parts,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    if cross_site(&parts) {
        return (
            StatusCode::FORBIDDEN,
            "refused: sent from another site's page",
        )
            .into_response();
    }
    let Some(auth) = &app.auth else {
        return Redirect::to(next).into_response();
    };
    if !auth.token_matches(form.token.as_bytes()) {
        tracing::info!("dashboard login refused: wrong token");
        return login_form(
            StatusCode::UNAUTHORIZED,
            next,
            Some("That is not the server's token."),
        );
    }
    let secure = if app.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        auth.session
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
}

pub(crate) async fn logout(_viewer: Viewer) -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_depends_on_the_token_and_does_not_contain_it() {
        let a = session_value(b"secret-a");
        assert_eq!(a, session_value(b"secret-a"));
        assert_ne!(a, session_value(b"secret-b"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("secret"));
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/workflow?id=x")), "/workflow?id=x");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; activity_dashboard_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
