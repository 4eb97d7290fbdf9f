//! The function an attribute macro is put on, parsed without its body.
//!
//! Only the signature is parsed; the body stays the tokens it was. A mistake in
//! the body (a missing `;`, an unclosed expression) is then the compiler's to
//! report, where it is, and the macro still generates the definition and the
//! stub, so that callers see no second, unrelated error.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{ToTokens, TokenStreamExt};
use syn::{parse::ParseStream, Attribute, Signature, Visibility};

pub(crate) struct FnItem {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    body: TokenTree,
}

/// Why the item could not be read as a function.
pub(crate) enum NotAFn {
    /// Not a function at all (a struct, an impl block…): the span of its first
    /// token after the visibility.
    Other(Span),
    /// A function whose signature does not parse: syn's error, where it is.
    BadSignature(syn::Error),
}

impl FnItem {
    pub(crate) fn parse(tokens: TokenStream) -> Result<FnItem, NotAFn> {
        match syn::parse::Parser::parse2(parse_item, tokens) {
            Ok(Ok(item)) => Ok(item),
            Ok(Err(span)) => Err(NotAFn::Other(span)),
            Err(err) => Err(NotAFn::BadSignature(err)),
        }
    }
}

/// The function, or the span of what stands where `fn` should.
fn parse_item(input: ParseStream<'_>) -> syn::Result<Result<FnItem, Span>> {
    let attrs = input.call(Attribute::parse_outer)?;
    let vis: Visibility = input.parse()?;
    if !has_fn_keyword(input) {
        let span = input.span();
        input.parse::<TokenStream>()?;
        return Ok(Err(span));
    }
    let sig: Signature = input.parse()?;
    let body: TokenTree = input.parse()?;
    if !matches!(&body, TokenTree::Group(group) if group.delimiter() == Delimiter::Brace) {
        return Err(syn::Error::new_spanned(
            &body,
            "expected the function's body `{ … }`: the macro applies to a free `async fn` with a \
             body, not to a declaration in a trait or an `extern` block",
        ));
    }
    if !input.is_empty() {
        return Err(input.error("unexpected tokens after the function's body"));
    }
    Ok(Ok(FnItem {
        attrs,
        vis,
        sig,
        body,
    }))
}

/// Whether an `fn` comes before the first `{ … }` or `;`: a function, even if
/// its signature then fails to parse.
fn has_fn_keyword(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    while let Ok(tree) = fork.parse::<TokenTree>() {
        match tree {
            TokenTree::Ident(ident) if ident == "fn" => return true,
            TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => return false,
            TokenTree::Punct(punct) if punct.as_char() == ';' => return false,
            _ => {}
        }
    }
    false
}

impl ToTokens for FnItem {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.append_all(&self.attrs);
        self.vis.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        self.body.to_tokens(tokens);
    }
}
