//! Checks the signature of an `#[activity]` function and extracts what expansion needs.

use proc_macro2::Ident;
use quote::{format_ident, ToTokens};
use syn::{visit::Visit, FnArg, GenericArgument, Pat, PathArguments, ReturnType, Type, TypePath};

use crate::ctxt::Errors;

/// Tuples of up to this many arguments implement `ActivityInput`.
const MAX_ARGUMENTS: usize = 16;

pub(crate) struct Signature {
    pub(crate) has_context: bool,
    pub(crate) params: Vec<Param>,
    pub(crate) output: Type,
    /// `E` of `Result<T, E>`, when written.
    pub(crate) error: Option<Type>,
}

pub(crate) enum Param {
    /// A serialized argument.
    Argument { name: Ident, ty: Type },
    /// `State<T>`: shared state, with `T`.
    State { inner: Type },
}

impl Signature {
    pub(crate) fn arguments(&self) -> impl Iterator<Item = (&Ident, &Type)> {
        self.params.iter().filter_map(|p| match p {
            Param::Argument { name, ty } => Some((name, ty)),
            Param::State { .. } => None,
        })
    }
}

/// What kind of function is checked.
#[derive(Clone, Copy)]
pub(crate) struct Kind {
    /// "an activity" / "a workflow".
    what: &'static str,
    /// The context type.
    context: &'static str,
    /// Whether the context parameter is required.
    context_required: bool,
    /// Whether `State<T>` parameters are allowed.
    allow_state: bool,
    /// The framework's error type.
    error: &'static str,
    /// The derive that makes a user error convertible.
    derive_hint: &'static str,
}

pub(crate) const ACTIVITY: Kind = Kind {
    what: "an activity",
    context: "ActivityContext",
    context_required: false,
    allow_state: true,
    error: "ActivityError",
    derive_hint: " or a type with `#[derive(ActivityError)]`",
};

pub(crate) const WORKFLOW: Kind = Kind {
    what: "a workflow",
    context: "WorkflowContext",
    context_required: true,
    allow_state: false,
    error: "WorkflowError",
    derive_hint: " or a type that converts into it",
};

/// Checks `func`; every problem goes to `errors`. Returns `None` when the
/// signature cannot be expanded.
pub(crate) fn check(sig: &syn::Signature, kind: Kind, errors: &mut Errors) -> Option<Signature> {
    let Kind {
        what,
        context,
        error: error_type,
        ..
    } = kind;
    let name = &sig.ident;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token,
            format!("{what} must be an `async fn`: write `async fn {name}`"),
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(
            unsafety,
            "an activity cannot be `unsafe`: the worker calls it like any safe function",
        );
    }
    if let Some(constness) = &sig.constness {
        errors.at(constness, format!("{what} cannot be `const`"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let blame: &dyn ToTokens = if sig.generics.params.is_empty() {
            &sig.generics.where_clause
        } else {
            &sig.generics
        };
        errors.at(
            blame,
            format!("{what} cannot be generic: the worker decodes each type name into one concrete signature; write one per concrete type"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, format!("{what} cannot be variadic"));
    }

    let mut has_context = false;
    let mut params = Vec::new();
    let mut typed_index = 0;
    for (index, input) in sig.inputs.iter().enumerate() {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                let hint = if kind.allow_state {
                    "For shared state (a database pool, an HTTP client), take a `State<T>` parameter and provide the value with `.state(value)` on the worker"
                } else {
                    "Workflows keep their state in local variables, rebuilt by replay"
                };
                errors.at(
                    receiver,
                    format!("`self` is not allowed: {what} is a free function. {hint}"),
                );
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        // `self`, reported on its own, does not count as a parameter before the context.
        let position = typed_index;
        typed_index += 1;
        let ty = &*typed.ty;
        if is_named(ty, context) {
            if position != 0 {
                errors.at(
                    ty,
                    format!(
                        "`{context}` must be the first parameter: move `{}` to the front",
                        typed.pat.to_token_stream()
                    ),
                );
            }
            has_context = true;
            continue;
        }
        if let Type::Reference(reference) = ty {
            if is_named(&reference.elem, context) {
                errors.at(
                    reference.and_token,
                    format!("take `{context}` by value: it is cheap to clone"),
                );
                has_context = true;
                continue;
            }
        }
        if !kind.allow_state && state_inner(ty).is_some() {
            errors.at(
                ty,
                format!("{what} cannot take shared state: its code must be deterministic and replayable; use the state in an activity"),
            );
            continue;
        }
        if let Some(inner) = state_inner(ty) {
            check_owned(inner, "a shared-state type", errors);
            params.push(Param::State {
                inner: inner.clone(),
            });
            continue;
        }
        check_owned(ty, &format!("{what} argument"), errors);
        let name = match &*typed.pat {
            Pat::Ident(p) => p.ident.clone(),
            _ => format_ident!("arg{}", index),
        };
        params.push(Param::Argument {
            name,
            ty: ty.clone(),
        });
    }
    let arguments = params
        .iter()
        .filter(|p| matches!(p, Param::Argument { .. }))
        .count();
    if arguments > MAX_ARGUMENTS {
        errors.at(
            &sig.inputs,
            format!("{what} takes at most {MAX_ARGUMENTS} arguments, found {arguments}: group some of them into a struct"),
        );
    }

    let (output, error) = match &sig.output {
        ReturnType::Default => {
            errors.at(
                name,
                format!("{what} must return `Result<T, E>`: add a return type, e.g. `async fn {name}(…) -> Result<(), {error_type}>`"),
            );
            return None;
        }
        ReturnType::Type(_, ty) => match result_types(ty) {
            Some(found) => found,
            None => {
                errors.at(
                    ty,
                    format!(
                        "{what} must return `Result<T, E>` (`E` is `{error_type}`{}); wrap it: `Result<{}, {error_type}>`",
                        kind.derive_hint,
                        ty.to_token_stream()
                    ),
                );
                return None;
            }
        },
    };
    check_owned(&output, &format!("{what} result"), errors);
    if kind.context_required && !has_context && sig.receiver().is_none() {
        errors.at(
            &sig.ident,
            format!("{what} takes `ctx: {context}` as its first parameter: it schedules activities and timers through it"),
        );
    }

    Some(Signature {
        has_context,
        params,
        output,
        error,
    })
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(TypePath { qself: None, path }) => path.segments.last(),
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

fn is_named(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == name)
}

fn generic_types(segment: &syn::PathSegment) -> Vec<&Type> {
    match &segment.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `T` of `State<T>`.
fn state_inner(ty: &Type) -> Option<&Type> {
    let segment = last_segment(ty)?;
    if segment.ident != "State" {
        return None;
    }
    match generic_types(segment).as_slice() {
        [inner] => Some(inner),
        _ => None,
    }
}

/// `(T, Some(E))` of `Result<T, E>`, `(T, None)` of an alias `Result<T>`.
fn result_types(ty: &Type) -> Option<(Type, Option<Type>)> {
    let segment = last_segment(ty)?;
    if segment.ident != "Result" {
        return None;
    }
    match generic_types(segment).as_slice() {
        [ok] => Some(((*ok).clone(), None)),
        [ok, err] => Some(((*ok).clone(), Some((*err).clone()))),
        _ => None,
    }
}

/// Reports borrowed types and non-`'static` lifetimes in `ty`.
fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    struct Borrows<'a> {
        what: &'a str,
        errors: &'a mut Errors,
    }
    impl<'ast> Visit<'ast> for Borrows<'_> {
        fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
            let owned = match &*reference.elem {
                Type::Path(p) if p.path.is_ident("str") => "String".to_owned(),
                Type::Slice(slice) => format!("Vec<{}>", slice.elem.to_token_stream()),
                other => other.to_token_stream().to_string(),
            };
            self.errors.at(
                reference.and_token,
                format!(
                    "{} must be owned: it is deserialized from a payload, so it cannot borrow. Use `{owned}` instead of `{}`",
                    self.what,
                    reference.to_token_stream().to_string().replace("& ", "&")
                ),
            );
        }
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            if lifetime.ident != "static" {
                self.errors.at(
                    lifetime,
                    format!(
                        "{} must be owned: it is deserialized from a payload, so it cannot borrow for `{lifetime}`; use an owned type (or `'static`)",
                        self.what
                    ),
                );
            }
        }
        fn visit_type_impl_trait(&mut self, impl_trait: &'ast syn::TypeImplTrait) {
            self.errors.at(
                impl_trait,
                format!("{} must be a concrete type, not `impl Trait`", self.what),
            );
        }
    }
    Borrows { what, errors }.visit_type(ty);
}
