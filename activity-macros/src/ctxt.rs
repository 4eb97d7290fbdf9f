//! Collects every error of one macro invocation, to report them all at once.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(existing) => existing.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// An error spanned on `tokens`.
    pub(crate) fn at<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.combined.is_none()
    }

    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.combined
    }

    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.combined
            .map(|e| e.to_compile_error())
            .unwrap_or_default()
    }
}
