//! Compile-pass and compile-fail cases of the macros; see `tests/ui.rs`.
