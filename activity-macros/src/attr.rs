//! The arguments of `#[activity(...)]`, parsed into one typed value.

use proc_macro2::TokenStream;
use syn::{meta::ParseNestedMeta, parse::Parser, Expr, ExprLit, Lit, LitStr, Path};

use crate::{
    ctxt::Errors,
    duration::{self, DurationLit},
};

const KEYS: &[&str] = &[
    "name",
    "start_to_close",
    "schedule_to_close",
    "schedule_to_start",
    "heartbeat",
    "task_queue",
    "retry",
    "crate",
];

const RETRY_KEYS: &[&str] = &[
    "initial_interval",
    "backoff_coefficient",
    "maximum_interval",
    "maximum_attempts",
    "non_retryable",
];

/// Names users reach for, and the key they mean.
const ALIASES: &[(&str, &str)] = &[
    ("heartbeat_timeout", "heartbeat"),
    ("timeout", "start_to_close"),
    ("queue", "task_queue"),
    ("retry_policy", "retry"),
    ("max_attempts", "maximum_attempts"),
    ("max_interval", "maximum_interval"),
    ("backoff", "backoff_coefficient"),
    ("non_retryable_error_types", "non_retryable"),
    ("rename", "name"),
];

#[derive(Default)]
pub(crate) struct ActivityArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) start_to_close: Option<DurationLit>,
    pub(crate) schedule_to_close: Option<DurationLit>,
    pub(crate) schedule_to_start: Option<DurationLit>,
    pub(crate) heartbeat: Option<DurationLit>,
    pub(crate) task_queue: Option<LitStr>,
    pub(crate) retry: Option<RetryArgs>,
    pub(crate) krate: Option<Path>,
}

#[derive(Default)]
pub(crate) struct RetryArgs {
    pub(crate) initial_interval: Option<DurationLit>,
    pub(crate) backoff_coefficient: Option<f64>,
    pub(crate) maximum_interval: Option<DurationLit>,
    pub(crate) maximum_attempts: Option<u32>,
    pub(crate) non_retryable: Vec<NonRetryable>,
}

/// An entry of `non_retryable = [...]`.
pub(crate) enum NonRetryable {
    /// `"CardDeclined"`
    Name(LitStr),
    /// `ChargeError::CardDeclined`: the type and the variant.
    Variant { path: Path },
}

impl ActivityArgs {
    /// Parses the attribute, collecting semantic errors in `errors`. Returns `Err`
    /// only for token streams that are not `key = value, …` at all.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> syn::Result<Self> {
        let mut args = ActivityArgs::default();
        let mut seen = Seen::default();
        syn::meta::parser(|meta| args.parse_key(meta, &mut seen, errors)).parse2(tokens)?;
        Ok(args)
    }

    fn parse_key(
        &mut self,
        meta: ParseNestedMeta<'_>,
        seen: &mut Seen,
        errors: &mut Errors,
    ) -> syn::Result<()> {
        let key = path_name(&meta.path);
        if !seen.first(&key, &meta.path, errors) {
            return skip_value(&meta);
        }
        match key.as_str() {
            "name" => {
                let lit =
                    string_value(&meta, "name", "#[activity(name = \"charge_card\")]", errors)?;
                if let Some(lit) = lit {
                    if lit.value().trim().is_empty() {
                        errors.at(
                            &lit,
                            "`name` must not be empty: it is the activity's stable wire name",
                        );
                    } else {
                        self.name = Some(lit);
                    }
                }
            }
            "task_queue" => {
                let lit = string_value(
                    &meta,
                    "task_queue",
                    "#[activity(task_queue = \"payments\")]",
                    errors,
                )?;
                if let Some(lit) = lit {
                    if lit.value().trim().is_empty() {
                        errors.at(&lit, "`task_queue` must not be empty");
                    } else {
                        self.task_queue = Some(lit);
                    }
                }
            }
            "start_to_close" => self.start_to_close = duration_value(&meta, &key, errors)?,
            "schedule_to_close" => self.schedule_to_close = duration_value(&meta, &key, errors)?,
            "schedule_to_start" => self.schedule_to_start = duration_value(&meta, &key, errors)?,
            "heartbeat" => self.heartbeat = duration_value(&meta, &key, errors)?,
            "retry" => {
                if !meta.input.peek(syn::token::Paren) {
                    errors.at(
                        &meta.path,
                        "`retry` takes a list: `retry(initial_interval = \"1s\", backoff_coefficient = 2.0, maximum_interval = \"1m\", maximum_attempts = 5, non_retryable = [MyError::Fatal])`",
                    );
                    return skip_value(&meta);
                }
                let mut retry = RetryArgs::default();
                let mut retry_seen = Seen::default();
                meta.parse_nested_meta(|inner| retry.parse_key(inner, &mut retry_seen, errors))?;
                retry.check(errors);
                self.retry = Some(retry);
            }
            "crate" => {
                if let Some(lit) = string_value(
                    &meta,
                    "crate",
                    "#[activity(crate = \"my_reexport::activity_core\")]",
                    errors,
                )? {
                    match lit.parse::<Path>() {
                        Ok(path) => self.krate = Some(path),
                        Err(_) => {
                            errors.at(&lit, "`crate` must be a path, e.g. \"::activity_core\"")
                        }
                    }
                }
            }
            _ => {
                errors.at(&meta.path, unknown_key(&key, KEYS, "#[activity]"));
                return skip_value(&meta);
            }
        }
        Ok(())
    }
}

impl RetryArgs {
    fn parse_key(
        &mut self,
        meta: ParseNestedMeta<'_>,
        seen: &mut Seen,
        errors: &mut Errors,
    ) -> syn::Result<()> {
        let key = path_name(&meta.path);
        if !seen.first(&key, &meta.path, errors) {
            return skip_value(&meta);
        }
        match key.as_str() {
            "initial_interval" => self.initial_interval = duration_value(&meta, &key, errors)?,
            "maximum_interval" => self.maximum_interval = duration_value(&meta, &key, errors)?,
            "backoff_coefficient" => {
                let expr: Expr = meta.value()?.parse()?;
                let value = match &expr {
                    Expr::Lit(ExprLit {
                        lit: Lit::Float(f), ..
                    }) => f.base10_parse::<f64>().ok(),
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => i.base10_parse::<f64>().ok(),
                    _ => None,
                };
                match value {
                    Some(v) if v >= 1.0 && v.is_finite() => self.backoff_coefficient = Some(v),
                    Some(v) => errors.at(&expr, format!("`backoff_coefficient` must be ≥ 1.0 (delays never shrink), got {v}")),
                    None => errors.at(&expr, "`backoff_coefficient` must be a number literal ≥ 1.0, e.g. `backoff_coefficient = 2.0`"),
                }
            }
            "maximum_attempts" => {
                let expr: Expr = meta.value()?.parse()?;
                match &expr {
                    Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse::<u32>() {
                        Ok(n) => self.maximum_attempts = Some(n),
                        Err(_) => errors.at(i, "`maximum_attempts` must fit in a u32 (0 means unlimited)"),
                    },
                    _ => errors.at(&expr, "`maximum_attempts` must be an integer literal (0 means unlimited), e.g. `maximum_attempts = 5`"),
                }
            }
            "non_retryable" => {
                let expr: Expr = meta.value()?.parse()?;
                let Expr::Array(array) = &expr else {
                    errors.at(&expr, "`non_retryable` takes a list: `non_retryable = [ChargeError::CardDeclined, \"OtherType\"]`");
                    return Ok(());
                };
                for elem in &array.elems {
                    match elem {
                        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if !s.value().is_empty() => {
                            self.non_retryable.push(NonRetryable::Name(s.clone()))
                        }
                        Expr::Path(p) if p.qself.is_none() && p.path.segments.len() >= 2 => {
                            self.non_retryable.push(NonRetryable::Variant { path: p.path.clone() })
                        }
                        other => errors.at(other, "expected an error type name as a string (\"CardDeclined\") or a variant of an error enum with `#[derive(ActivityError)]` (`ChargeError::CardDeclined`)"),
                    }
                }
            }
            _ => {
                errors.at(&meta.path, unknown_key(&key, RETRY_KEYS, "retry(...)"));
                return skip_value(&meta);
            }
        }
        Ok(())
    }

    fn check(&self, errors: &mut Errors) {
        if let (Some(initial), Some(max)) = (&self.initial_interval, &self.maximum_interval) {
            if max.millis < initial.millis {
                errors.at(
                    &max.lit,
                    format!(
                        "`maximum_interval` ({}) must be ≥ `initial_interval` ({})",
                        max.lit.value(),
                        initial.lit.value()
                    ),
                );
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Seen(Vec<String>);

impl Seen {
    /// Records `key`; reports a duplicate on its second occurrence.
    pub(crate) fn first(&mut self, key: &str, path: &Path, errors: &mut Errors) -> bool {
        if self.0.iter().any(|k| k == key) {
            errors.at(
                path,
                format!("duplicate key `{key}`: give each option once"),
            );
            false
        } else {
            self.0.push(key.to_owned());
            true
        }
    }
}

pub(crate) fn path_name(path: &Path) -> String {
    if let Some(ident) = path.get_ident() {
        return ident.to_string();
    }
    // `crate` is a keyword, parsed as a path segment.
    quote::quote!(#path).to_string().replace(' ', "")
}

pub(crate) fn unknown_key(key: &str, valid: &[&str], place: &str) -> String {
    let mut message = format!("unknown key `{key}` in {place}");
    if let Some((_, meant)) = ALIASES
        .iter()
        .find(|(alias, meant)| *alias == key && valid.contains(meant))
    {
        message.push_str(&format!("; did you mean `{meant}`?"));
    }
    message.push_str(&format!("; valid keys are: {}", valid.join(", ")));
    message
}

/// Consumes whatever value follows an unusable key, so parsing can go on.
pub(crate) fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}

pub(crate) fn string_value(
    meta: &ParseNestedMeta<'_>,
    key: &str,
    example: &str,
    errors: &mut Errors,
) -> syn::Result<Option<LitStr>> {
    if !meta.input.peek(syn::Token![=]) {
        errors.at(&meta.path, format!("`{key}` needs a value: `{example}`"));
        skip_value(meta)?;
        return Ok(None);
    }
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(Some(s)),
        other => {
            errors.at(
                &other,
                format!("`{key}` must be a string literal: `{example}`"),
            );
            Ok(None)
        }
    }
}

fn duration_value(
    meta: &ParseNestedMeta<'_>,
    key: &str,
    errors: &mut Errors,
) -> syn::Result<Option<DurationLit>> {
    if !meta.input.peek(syn::Token![=]) {
        errors.at(
            &meta.path,
            format!("`{key}` needs a duration: `{key} = \"30s\"`"),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let expr: Expr = meta.value()?.parse()?;
    match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => match duration::parse(s) {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                errors.push(e);
                Ok(None)
            }
        },
        other => {
            errors.at(
                other,
                format!("`{key}` must be a duration string such as \"250ms\", \"30s\", \"5m\" or \"1h\""),
            );
            Ok(None)
        }
    }
}

/// The arguments of `#[workflow(...)]`.
#[derive(Default)]
pub(crate) struct WorkflowArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
    /// `signals(approve = Approval, …)`: each signal's name and payload type.
    pub(crate) signals: Vec<(syn::Ident, syn::Type)>,
    /// `queries(status = Status, …)`: each query's name and answer type.
    pub(crate) queries: Vec<(syn::Ident, syn::Type)>,
}

const WORKFLOW_KEYS: &[&str] = &["name", "crate", "signals", "queries"];

/// Names a signal or query cannot take: the marker type's own items.
const RESERVED_MESSAGE_NAMES: &[&str] = &["start", "NAME"];

/// Parses `key(name = Type, …)` of `#[workflow]` into `into`, reporting
/// duplicate and reserved names; `taken` holds every name declared so far
/// (signals and queries share the marker type's namespace).
fn parse_messages(
    meta: &ParseNestedMeta<'_>,
    key: &str,
    taken: &mut Vec<String>,
    into: &mut Vec<(syn::Ident, syn::Type)>,
    errors: &mut Errors,
) -> syn::Result<()> {
    let example = if key == "signals" {
        "#[workflow(signals(approve = Approval, reject = String))]"
    } else {
        "#[workflow(queries(status = Status))]"
    };
    if !meta.input.peek(syn::token::Paren) {
        errors.at(
            &meta.path,
            format!("`{key}` takes a list of `name = Type`, e.g. `{example}`"),
        );
        return skip_value(meta);
    }
    meta.parse_nested_meta(|entry| {
        let Some(ident) = entry.path.get_ident().cloned() else {
            errors.at(
                &entry.path,
                format!("each entry of `{key}` is `name = Type` with a plain name, e.g. `{example}`"),
            );
            return skip_value(&entry);
        };
        if !entry.input.peek(syn::Token![=]) {
            errors.at(
                &entry.path,
                format!("`{ident}` needs its type: `{ident} = Type`, e.g. `{example}`"),
            );
            return skip_value(&entry);
        }
        let ty: syn::Type = entry.value()?.parse()?;
        let name = ident.to_string();
        if RESERVED_MESSAGE_NAMES.contains(&name.as_str()) {
            errors.at(
                &ident,
                format!("`{name}` is taken by the workflow's own items (`start`, `NAME`): give the {} another name", &key[..key.len() - 1]),
            );
        } else if taken.contains(&name) {
            errors.at(
                &ident,
                format!("`{name}` is declared twice: signals and queries of a workflow need distinct names"),
            );
        } else {
            taken.push(name);
            into.push((ident, ty));
        }
        Ok(())
    })
}

impl WorkflowArgs {
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> syn::Result<Self> {
        let mut args = WorkflowArgs::default();
        let mut seen = Seen::default();
        let mut taken = Vec::new();
        syn::meta::parser(|meta| {
            let key = path_name(&meta.path);
            if !seen.first(&key, &meta.path, errors) {
                return skip_value(&meta);
            }
            match key.as_str() {
                "name" => {
                    if let Some(lit) =
                        string_value(&meta, "name", "#[workflow(name = \"checkout\")]", errors)?
                    {
                        if lit.value().trim().is_empty() {
                            errors.at(
                                &lit,
                                "`name` must not be empty: it is the workflow's stable type name",
                            );
                        } else {
                            args.name = Some(lit);
                        }
                    }
                }
                "crate" => {
                    if let Some(lit) = string_value(
                        &meta,
                        "crate",
                        "#[workflow(crate = \"my_reexport::activity_core\")]",
                        errors,
                    )? {
                        match lit.parse::<Path>() {
                            Ok(path) => args.krate = Some(path),
                            Err(_) => {
                                errors.at(&lit, "`crate` must be a path, e.g. \"::activity_core\"")
                            }
                        }
                    }
                }
                "signals" => {
                    parse_messages(&meta, "signals", &mut taken, &mut args.signals, errors)?
                }
                "queries" => {
                    parse_messages(&meta, "queries", &mut taken, &mut args.queries, errors)?
                }
                _ => {
                    let mut message = unknown_key(&key, WORKFLOW_KEYS, "#[workflow]");
                    if KEYS.contains(&key.as_str()) {
                        message.push_str(
                            "; activity options are set on each activity, or at the call site",
                        );
                    }
                    errors.at(&meta.path, message);
                    return skip_value(&meta);
                }
            }
            Ok(())
        })
        .parse2(tokens)?;
        Ok(args)
    }
}
