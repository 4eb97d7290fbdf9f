//! Every misuse of the macros is a compile error on the user's token, and every
//! supported form compiles. `.stderr` files are produced with `TRYBUILD=overwrite`
//! and reviewed; the toolchain is pinned in rust-toolchain.toml so they stay stable.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
