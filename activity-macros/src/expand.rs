//! Builds the tokens of `#[activity]`: the user's function unchanged, a marker type
//! of the same name (type namespace) with the typed stub, the trait impls, the
//! registration, and bound checks spanned on the user's types.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{spanned::Spanned, Path};

use crate::{
    attr::{ActivityArgs, NonRetryable, RetryArgs},
    ctxt::Errors,
    duration::DurationLit,
    item::{FnItem, NotAFn},
    signature::{self, Param, Signature},
};

pub(crate) fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_fn(
        args,
        item,
        "#[activity] applies to an `async fn`, e.g. `#[activity] async fn charge(ctx: ActivityContext, cents: u64) -> Result<Receipt, ActivityError>`",
        ActivityArgs::parse,
        signature::ACTIVITY,
        generate,
    )
}

/// The shared frame of the attribute macros: parse the function and the
/// arguments, check the signature, and emit the function unchanged, what
/// `generate` builds (only when nothing is wrong with the signature), and every
/// error at once.
pub(crate) fn expand_fn<A>(
    args: TokenStream,
    item: TokenStream,
    not_a_fn: &str,
    parse_args: fn(TokenStream, &mut Errors) -> syn::Result<A>,
    kind: signature::Kind,
    generate: fn(&FnItem, &A, &Signature) -> TokenStream,
) -> TokenStream {
    let func = match FnItem::parse(item.clone()) {
        Ok(func) => func,
        Err(not_a_fn_at) => {
            let error = match not_a_fn_at {
                NotAFn::Other(span) => syn::Error::new(span, not_a_fn),
                NotAFn::BadSignature(error) => error,
            };
            let errors = error.to_compile_error();
            return quote!(#item #errors);
        }
    };
    let mut errors = Errors::default();
    let args = match parse_args(args, &mut errors) {
        Ok(args) => Some(args),
        Err(err) => {
            errors.push(err);
            None
        }
    };
    let mut sig_errors = Errors::default();
    let sig = signature::check(&func.sig, kind, &mut sig_errors);
    let expanded = match (args, sig, sig_errors.is_empty()) {
        (Some(args), Some(sig), true) => generate(&func, &args, &sig),
        _ => TokenStream::new(),
    };
    if let Some(e) = sig_errors.into_error() {
        errors.push(e);
    }
    let errors = errors.into_compile_errors();
    quote! {
        #func
        #expanded
        #errors
    }
}

fn generate(func: &FnItem, args: &ActivityArgs, sig: &Signature) -> TokenStream {
    let krate: Path = args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::activity_core));
    let p = quote!(#krate::__private);
    let vis = &func.vis;
    let ident = &func.sig.ident;
    let name = args
        .name
        .as_ref()
        .map(|n| n.value())
        .unwrap_or_else(|| ident.to_string());

    let arg_names: Vec<_> = sig.arguments().map(|(n, _)| n).collect();
    let arg_name_strs: Vec<String> = arg_names.iter().map(|n| n.to_string()).collect();
    let arg_types: Vec<_> = sig.arguments().map(|(_, t)| t).collect();
    let caller = if arg_name_strs.iter().any(|n| n == "caller") {
        format_ident!("__caller")
    } else {
        format_ident!("caller")
    };

    // Positional variables for invoke: arguments come from the input tuple,
    // states from the state map.
    let mut call_args = Vec::new();
    let mut input_vars = Vec::new();
    let mut state_lets = Vec::new();
    let mut state_types = Vec::new();
    if sig.has_context {
        call_args.push(quote!(__ctx));
    }
    for (index, param) in sig.params.iter().enumerate() {
        let var = format_ident!("__p{}", index);
        match param {
            Param::Argument { .. } => input_vars.push(var.clone()),
            Param::State { inner } => {
                state_lets.push(quote! {
                    let #var = __state.require::<#inner>(#name)?;
                });
                state_types.push(inner);
            }
        }
        call_args.push(quote!(#var));
    }

    let output = &sig.output;
    let checks = {
        let arguments = arg_types
            .iter()
            .map(|ty| quote_spanned!(ty.span()=> #p::assert_argument::<#ty>();));
        let states = state_types
            .iter()
            .map(|ty| quote_spanned!(ty.span()=> #p::assert_state::<#ty>();));
        quote! {
            #[allow(dead_code, clippy::all)]
            fn __activity_bounds() {
                #(#arguments)*
                #(#states)*
            }
        }
    };
    let defaults = default_options(&krate, &p, args);
    let doc = format!(
        "Activity `{name}`: the definition and typed stub of [`{ident}`](fn@{ident}).\n\n\
         Call it with `{ident}::call(&caller, {})` from a workflow, a client or the test environment.",
        arg_name_strs.join(", ")
    );
    let has_close_timeout = args.start_to_close.is_some() || args.schedule_to_close.is_some();
    let call_doc = format!(
        "Calls activity `{name}` through `{caller}` (a workflow context, `ctx.local()`, a client \
         or the test environment); `.await` the returned stub for the result. \
         Call-site options (`.start_to_close(…)`, `.task_queue(…)`, …) override the definition's, field by field.{}",
        if has_close_timeout {
            ""
        } else {
            " The definition declares no close timeout: set `.start_to_close(…)` or \
             `.schedule_to_close(…)` before awaiting, or the call does not compile."
        }
    );
    // Converting the error is checked on the error type, so a type that does not
    // convert is reported there, once.
    let convert = match &sig.error {
        Some(e) => {
            let trait_path = respan(quote!(#p::IntoActivityError), e.span());
            quote_spanned!(e.span()=> <#e as #trait_path>::into_activity_error)
        }
        None => quote!(#p::into_activity_error),
    };
    let send_check = quote_spanned! {ident.span()=>
        ::std::boxed::Box::pin(async move {
            #ident(#(#call_args),*).await.map_err(#convert)
        })
    };
    // Errors about the input tuple point at the parameter list.
    let params_span = func.sig.paren_token.span.join();
    let input_type = quote_spanned!(params_span=> (#(#arg_types,)*));
    let call_ident = syn::Ident::new("call", ident.span());
    // A call of an activity that declares no close timeout cannot be awaited
    // until the call site sets one (the engine would refuse it, SEMANTICS 1.1).
    let (timeouts, stub_new) = if has_close_timeout {
        (quote!(#krate::caller::CloseTimeoutChecked), quote!(new))
    } else {
        (
            quote!(#krate::caller::NoCloseTimeout),
            quote!(without_close_timeout),
        )
    };

    quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {
            _private: (),
        }

        #[allow(dead_code, clippy::too_many_arguments)]
        impl #ident {
            /// The activity type name.
            pub const NAME: &'static str = #name;

            #[doc = #call_doc]
            pub fn #call_ident<'c, C: ?::core::marker::Sized>(
                #caller: &'c C,
                #(#arg_names: #arg_types),*
            ) -> #krate::ActivityStub<'c, C, #ident, #timeouts> {
                #krate::ActivityStub::#stub_new(#caller, (#(#arg_names,)*))
            }
        }

        const _: () = {
            impl #krate::ActivityDefinition for #ident {
                const NAME: &'static str = #name;
                const ARGUMENTS: &'static [&'static str] = &[#(#arg_name_strs),*];
                type Input = #input_type;
                type Output = #output;

                fn default_options() -> #krate::ActivityOptions {
                    #defaults
                }
            }

            impl #krate::ActivityImplementation for #ident {
                fn required_state() -> #p::Vec<#p::StateType> {
                    ::std::vec![#(#p::StateType::of::<#state_types>()),*]
                }

                #[allow(unused_variables)]
                fn invoke(
                    __ctx: #krate::ActivityContext,
                    __state: &#krate::StateMap,
                    __input: Self::Input,
                ) -> ::core::result::Result<
                    #p::BoxFuture<'static, ::core::result::Result<Self::Output, #krate::ActivityError>>,
                    #krate::ActivityError,
                > {
                    let (#(#input_vars,)*) = __input;
                    #(#state_lets)*
                    ::core::result::Result::Ok(#send_check)
                }
            }

            #p::inventory::submit! {
                #p::ActivityRegistration::of::<#ident>(#p::SourceLocation {
                    file: ::core::file!(),
                    line: ::core::line!(),
                    module_path: ::core::module_path!(),
                })
            }

            #checks
        };
    }
}

fn duration(p: &TokenStream, d: &DurationLit) -> TokenStream {
    let millis = d.millis;
    quote!(#p::Duration::from_millis(#millis))
}

fn default_options(krate: &Path, p: &TokenStream, args: &ActivityArgs) -> TokenStream {
    let mut steps = Vec::new();
    let setters = [
        ("schedule_to_close", &args.schedule_to_close),
        ("start_to_close", &args.start_to_close),
        ("schedule_to_start", &args.schedule_to_start),
        ("heartbeat_timeout", &args.heartbeat),
    ];
    for (setter, value) in setters {
        if let Some(d) = value {
            let setter = format_ident!("{}", setter);
            let d = duration(p, d);
            steps.push(quote!(__options = __options.#setter(#d);));
        }
    }
    if let Some(queue) = &args.task_queue {
        steps.push(quote!(__options = __options.task_queue(#queue);));
    }
    if let Some(retry) = &args.retry {
        let retry = retry_options(krate, p, retry);
        steps.push(quote!(__options = __options.retry(#retry);));
    }
    quote! {
        let mut __options = #krate::ActivityOptions::new();
        #(#steps)*
        __options
    }
}

fn retry_options(krate: &Path, p: &TokenStream, retry: &RetryArgs) -> TokenStream {
    let mut steps = Vec::new();
    if let Some(d) = &retry.initial_interval {
        let d = duration(p, d);
        steps.push(quote!(__retry = __retry.initial_interval(#d);));
    }
    if let Some(c) = retry.backoff_coefficient {
        steps.push(quote!(__retry = __retry.backoff_coefficient(#c);));
    }
    if let Some(d) = &retry.maximum_interval {
        let d = duration(p, d);
        steps.push(quote!(__retry = __retry.maximum_interval(#d);));
    }
    if let Some(n) = retry.maximum_attempts {
        steps.push(quote!(__retry = __retry.maximum_attempts(#n);));
    }
    for entry in &retry.non_retryable {
        match entry {
            NonRetryable::Name(lit) => steps.push(quote!(__retry = __retry.non_retryable(#lit);)),
            NonRetryable::Variant { path } => {
                let mut ty = path.clone();
                let variant = ty
                    .segments
                    .pop()
                    .map(|s| s.into_value().ident.to_string())
                    .unwrap_or_default();
                // `Type::` has a trailing separator after `pop`; drop it.
                let ty_segments = ty.segments.iter();
                let leading = &ty.leading_colon;
                let ty = quote!(#leading #(#ty_segments)::*);
                steps.push(quote_spanned! {path.span()=>
                    let _ = |__e: &#ty| ::core::matches!(__e, #path { .. });
                    __retry = __retry.non_retryable(#p::variant_error_type::<#ty>(#variant));
                });
            }
        }
    }
    quote! {{
        let mut __retry = #krate::RetryOptions::new();
        #(#steps)*
        __retry
    }}
}

/// `tokens` with every span set to `span`, so that errors in them point there.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(group) = &tree {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = proc_macro2::TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}
