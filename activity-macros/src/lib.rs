//! Procedural macros of `activity-core`: `#[activity]`, `#[workflow]`, `#[derive(ActivityError)]`. Use them through `activity_core`, which
//! re-exports them and documents them with examples.
//!
//! Entry points only dispatch: argument parsing lives in `attr`, the annotated
//! function (its signature parsed, its body kept as tokens) in `item`, signature
//! checks in `signature`, token building in `expand`, the error derive in
//! `error_derive`. Every misuse becomes a compile error spanned on the user's
//! token; on error the user's item is still emitted so that the IDE keeps working.

use proc_macro::TokenStream;

mod attr;
mod ctxt;
mod duration;
mod error_derive;
mod expand;
mod item;
mod signature;
mod workflow;

/// Turns an `async fn` into a typed, registered activity. See `activity_core::activity`.
#[proc_macro_attribute]
pub fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::activity(args.into(), item.into()).into()
}

/// Turns an `async fn(ctx: WorkflowContext, …)` into a typed, registered workflow.
/// See `activity_core::workflow`.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    workflow::workflow(args.into(), item.into()).into()
}

/// Gives each variant of an error type an activity error type name, and converts
/// the type into `ActivityError`. See `activity_core::ActivityError`.
#[proc_macro_derive(ActivityError, attributes(activity_error))]
pub fn derive_activity_error(item: TokenStream) -> TokenStream {
    error_derive::derive(item.into()).into()
}
