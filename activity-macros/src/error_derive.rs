//! `#[derive(ActivityError)]`: error type names per variant, non-retryable variants,
//! and `From<YourError> for ActivityError`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Attribute, Data, DeriveInput, Ident, LitStr, Path};

use crate::ctxt::Errors;

#[derive(Default)]
struct Options {
    error_type: Option<LitStr>,
    non_retryable: bool,
    krate: Option<Path>,
}

fn parse_options(attrs: &[Attribute], container: bool, errors: &mut Errors) -> Options {
    let mut options = Options::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("activity_error")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("non_retryable") {
                options.non_retryable = true;
            } else if meta.path.is_ident("type") {
                let value: syn::Expr = meta.value()?.parse()?;
                let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                }) = value
                else {
                    errors.at(
                        &value,
                        "the error `type` must be a string literal, e.g. `#[activity_error(type = \"payments.Declined\")]`",
                    );
                    return Ok(());
                };
                if lit.value().trim().is_empty() {
                    errors.at(&lit, "the error `type` must not be empty");
                } else {
                    options.error_type = Some(lit);
                }
            } else if container && meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                options.krate = Some(lit.parse()?);
            } else {
                let valid = if container {
                    "non_retryable, type, crate"
                } else {
                    "non_retryable, type"
                };
                let hint = if !container && meta.path.is_ident("crate") {
                    "; `crate` goes on the type, not on a variant"
                } else {
                    ""
                };
                errors.at(
                    &meta.path,
                    format!("unknown key in #[activity_error]; valid keys are: {valid}{hint}"),
                );
                if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<syn::Expr>()?;
                }
            }
            Ok(())
        });
        if let Err(err) = result {
            errors.push(err);
        }
    }
    options
}

struct Variant {
    ident: Ident,
    error_type: String,
    non_retryable: bool,
}

pub(crate) fn derive(item: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(item) {
        Ok(input) => input,
        Err(err) => return err.to_compile_error(),
    };
    let mut errors = Errors::default();
    let container = parse_options(&input.attrs, true, &mut errors);
    let krate = container
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::activity_core));
    let name = &input.ident;
    let (variants, is_enum) = match &input.data {
        Data::Enum(data) => (
            data.variants
                .iter()
                .map(|v| {
                    let options = parse_options(&v.attrs, false, &mut errors);
                    Variant {
                        ident: v.ident.clone(),
                        error_type: options
                            .error_type
                            .map(|l| l.value())
                            .unwrap_or_else(|| v.ident.to_string()),
                        non_retryable: options.non_retryable || container.non_retryable,
                    }
                })
                .collect::<Vec<_>>(),
            true,
        ),
        Data::Struct(_) => (
            vec![Variant {
                ident: name.clone(),
                error_type: container
                    .error_type
                    .as_ref()
                    .map(|l| l.value())
                    .unwrap_or_else(|| name.to_string()),
                non_retryable: container.non_retryable,
            }],
            false,
        ),
        Data::Union(u) => {
            errors.at(
                u.union_token,
                "#[derive(ActivityError)] applies to an enum (one error type per variant) or a struct",
            );
            (Vec::new(), false)
        }
    };
    if is_enum {
        if let Some(lit) = &container.error_type {
            errors.at(
                lit,
                "on an enum, put `type = \"…\"` on a variant: each variant has its own error type",
            );
        }
    }
    if !errors.is_empty() {
        return errors.into_compile_errors();
    }

    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let p = quote!(#krate::__private);
    let table = variants.iter().map(|v| {
        let variant = v.ident.to_string();
        let error_type = &v.error_type;
        let non_retryable = v.non_retryable;
        quote! {
            #p::ErrorVariant { variant: #variant, error_type: #error_type, non_retryable: #non_retryable }
        }
    });
    let arms = variants.iter().enumerate().map(|(index, v)| {
        let ident = &v.ident;
        let pattern = if is_enum {
            quote!(Self::#ident { .. })
        } else {
            quote!(Self { .. })
        };
        quote!(#pattern => &<Self as #krate::ErrorTypes>::VARIANTS[#index])
    });
    let variant_of = if variants.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match self { #(#arms,)* })
    };
    let display = quote_spanned!(Span::call_site()=> ::std::string::ToString::to_string(&error));

    quote! {
        const _: () = {
            impl #impl_generics #name #ty_generics #where_clause {
                fn __activity_error_variant(&self) -> &'static #p::ErrorVariant {
                    #variant_of
                }
            }

            impl #impl_generics #krate::ErrorTypes for #name #ty_generics #where_clause {
                const VARIANTS: &'static [#p::ErrorVariant] = &[#(#table),*];

                fn error_type(&self) -> &'static str {
                    self.__activity_error_variant().error_type
                }
            }

            impl #impl_generics ::core::convert::From<#name #ty_generics> for #krate::ActivityError #where_clause {
                fn from(error: #name #ty_generics) -> Self {
                    let variant = error.__activity_error_variant();
                    #krate::ActivityError::Application(
                        #krate::ApplicationFailure::new(variant.error_type, #display)
                            .with_non_retryable(variant.non_retryable),
                    )
                }
            }
        };
    }
}
