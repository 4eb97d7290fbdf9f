//! Task tokens (`activity_engine::token`): every claim signs one, every
//! completion, heartbeat and workflow task answer verifies one before anything is
//! read. HMAC-SHA256 over 13 bytes, no I/O.
//!
//! `cargo bench -p activity-engine --bench token`

use activity_engine::token::TokenSigner;

fn main() {
    divan::main();
}

fn signer() -> TokenSigner {
    TokenSigner::new([7; activity_engine::token::KEY_LEN])
}

#[divan::bench]
fn sign(bencher: divan::Bencher<'_, '_>) {
    let signer = signer();
    bencher.bench_local(|| signer.sign(divan::black_box(123_456), divan::black_box(3)));
}

#[divan::bench]
fn verify(bencher: divan::Bencher<'_, '_>) {
    let signer = signer();
    let token = signer.sign(123_456, 3);
    bencher.bench_local(|| signer.verify(divan::black_box(&token)).unwrap());
}

#[divan::bench]
fn verify_refuses_an_altered_token(bencher: divan::Bencher<'_, '_>) {
    let signer = signer();
    let mut bytes = signer.sign(123_456, 3).as_bytes().to_vec();
    bytes[12] ^= 1;
    let token = activity_core::TaskToken::from_bytes(bytes);
    bencher.bench_local(|| signer.verify(divan::black_box(&token)).unwrap_err());
}
