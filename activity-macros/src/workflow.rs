//! Builds the tokens of `#[workflow]`: the user's function unchanged, a marker
//! type of the same name with the typed start stub, the trait impls and the
//! registration.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{spanned::Spanned, Path};

use crate::{
    attr::WorkflowArgs,
    expand::{expand_fn, respan},
    item::FnItem,
    signature::{self, Signature},
};

pub(crate) fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_fn(
        args,
        item,
        "#[workflow] applies to an `async fn`, e.g. `#[workflow] async fn checkout(ctx: WorkflowContext, order: Order) -> Result<Receipt, WorkflowError>`",
        WorkflowArgs::parse,
        signature::WORKFLOW,
        generate,
    )
}

fn generate(func: &FnItem, args: &WorkflowArgs, sig: &Signature) -> TokenStream {
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
    let vars: Vec<_> = (0..arg_types.len())
        .map(|i| format_ident!("__p{}", i))
        .collect();
    let client = if arg_name_strs.iter().any(|n| n == "client") {
        format_ident!("__client")
    } else {
        format_ident!("client")
    };
    let output = &sig.output;
    let checks = arg_types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> #p::assert_argument::<#ty>();));
    let convert = match &sig.error {
        Some(e) => {
            let trait_path = respan(quote!(#p::IntoWorkflowError), e.span());
            quote_spanned!(e.span()=> <#e as #trait_path>::into_workflow_error)
        }
        None => quote!(#p::into_workflow_error),
    };
    let run = quote_spanned! {ident.span()=>
        ::std::boxed::Box::pin(async move {
            #ident(__ctx, #(#vars),*).await.map_err(#convert)
        })
    };
    let params_span = func.sig.paren_token.span.join();
    let input_type = quote_spanned!(params_span=> (#(#arg_types,)*));
    let start_ident = syn::Ident::new("start", ident.span());
    let continue_ident = syn::Ident::new("continue_as_new", ident.span());
    let child_ident = syn::Ident::new("child", ident.span());
    let child_doc = format!(
        "A child workflow `{name}` of the workflow whose context is `ctx` (docs/semantics.md §3.1): \
         `{ident}::child(&ctx, {args}).await` starts it and waits for its typed result; \
         `{ident}::child(&ctx, {args}).start().await` answers a handle. Set `.workflow_id(…)`, \
         `.task_queue(…)` and `.parent_close_policy(…)` first.",
        args = arg_name_strs.join(", ")
    );
    let doc = format!(
        "Workflow `{name}`: the definition and typed start stub of [`{ident}`](fn@{ident}).\n\n\
         Start it with `{ident}::start(&client, {})`.",
        arg_name_strs.join(", ")
    );
    let start_doc = format!(
        "Starts workflow `{name}` through `{client}`; `.await` the returned stub for a typed handle. \
         Set `.workflow_id(…)` and `.task_queue(…)` before awaiting."
    );
    let continue_doc = format!(
        "Continues the run of workflow `{name}` as new (docs/semantics.md §3.1): \
         `return {ident}::continue_as_new(&ctx, {}).await;` ends this run as ContinuedAsNew \
         and starts a new run of the same workflow id with these arguments and an empty history.",
        arg_name_strs.join(", ")
    );

    // One constant per declared signal and query, typed by the workflow and
    // the payload (or answer) type.
    let message = |(msg, ty): &(syn::Ident, syn::Type), kind: &str, usage: &str| {
        let doc = format!(
            "{kind} `{msg}` of workflow `{name}`, of type `{}`: {}.",
            quote!(#ty).to_string().replace(' ', ""),
            usage
                .replace("{ident}", &ident.to_string())
                .replace("{msg}", &msg.to_string())
        );
        let msg_str = msg.to_string();
        let def = format_ident!("{}", kind);
        quote_spanned! {msg.span()=>
            #[doc = #doc]
            #[allow(non_upper_case_globals)]
            #vis const #msg: #krate::workflow::#def<#ident, #ty> =
                #krate::workflow::#def::new(#msg_str);
        }
    };
    let signals = args.signals.iter().map(|entry| {
        message(
            entry,
            "Signal",
            "send it with `handle.signal({ident}::{msg}, payload)`, receive it with `ctx.signal({ident}::{msg})`",
        )
    });
    let queries = args.queries.iter().map(|entry| {
        message(
            entry,
            "Query",
            "ask it with `handle.query({ident}::{msg})`, answer it with `ctx.on_query({ident}::{msg}, handler)`",
        )
    });
    let message_checks = args
        .signals
        .iter()
        .chain(&args.queries)
        .map(|(_, ty)| quote_spanned!(ty.span()=> #p::assert_argument::<#ty>();));

    quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {
            _private: (),
        }

        #[allow(dead_code, clippy::too_many_arguments)]
        impl #ident {
            /// The workflow type name.
            pub const NAME: &'static str = #name;

            #[doc = #continue_doc]
            pub fn #continue_ident<__T>(
                __ctx: &#krate::WorkflowContext,
                #(#arg_names: #arg_types),*
            ) -> #krate::workflow::ContinueAsNew<__T> {
                __ctx.continue_with(#p::ActivityInput::to_payloads(&(#(#arg_names,)*)))
            }

            #[doc = #child_doc]
            pub fn #child_ident(
                __ctx: &#krate::WorkflowContext,
                #(#arg_names: #arg_types),*
            ) -> #krate::workflow::ChildWorkflow<#ident> {
                #krate::workflow::ChildWorkflow::new(__ctx, (#(#arg_names,)*))
            }

            #[doc = #start_doc]
            pub fn #start_ident<'c, C: ?::core::marker::Sized>(
                #client: &'c C,
                #(#arg_names: #arg_types),*
            ) -> #krate::workflow::WorkflowStart<'c, C, #ident> {
                #krate::workflow::WorkflowStart::new(#client, (#(#arg_names,)*))
            }

            #(#signals)*
            #(#queries)*
        }

        const _: () = {
            impl #krate::WorkflowDefinition for #ident {
                const NAME: &'static str = #name;
                const ARGUMENTS: &'static [&'static str] = &[#(#arg_name_strs),*];
                type Input = #input_type;
                type Output = #output;
            }

            impl #krate::WorkflowImplementation for #ident {
                fn run(
                    __ctx: #krate::WorkflowContext,
                    __input: Self::Input,
                ) -> #p::BoxFuture<'static, ::core::result::Result<Self::Output, #krate::WorkflowError>> {
                    let (#(#vars,)*) = __input;
                    #run
                }
            }

            #p::inventory::submit! {
                #p::WorkflowRegistration::of::<#ident>(#p::SourceLocation {
                    file: ::core::file!(),
                    line: ::core::line!(),
                    module_path: ::core::module_path!(),
                })
            }

            #[allow(dead_code, clippy::all)]
            fn __workflow_bounds() {
                #(#checks)*
                #(#message_checks)*
            }
        };
    }
}
