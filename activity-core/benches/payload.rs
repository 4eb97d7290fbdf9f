//! Encoding and decoding on the hot path, no I/O: an activity's argument tuple to
//! and from its payloads (JSON, one payload per argument), and a schedule request
//! to and from the model bytes the store and the wire carry (MessagePack).
//!
//! `cargo bench -p activity-core --bench payload`

use activity_core::{
    codec, payload::ActivityInput, protocol::ScheduleActivityRequest, ActivityOptions, Payload,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn main() {
    divan::main();
}

/// A typical argument: a small struct with strings and numbers.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
struct Address {
    street: String,
    city: String,
    postcode: String,
    country: String,
}

/// `(order_id, amount_cents, items, address)`: the arguments of an order activity.
type Arguments = (String, u64, Vec<String>, Address);

fn arguments() -> Arguments {
    (
        "order-2026-12-04-000123".to_owned(),
        12_990,
        vec!["SKU-1001".into(), "SKU-2002".into(), "SKU-3003".into()],
        Address {
            street: "1 Long Street".into(),
            city: "Springfield".into(),
            postcode: "12345".into(),
            country: "NL".into(),
        },
    )
}

const NAMES: &[&str] = &["order_id", "amount_cents", "items", "address"];

#[divan::bench]
fn arguments_to_payloads(bencher: divan::Bencher<'_, '_>) {
    let input = arguments();
    bencher.bench_local(|| divan::black_box(&input).to_payloads().unwrap());
}

#[divan::bench]
fn arguments_from_payloads(bencher: divan::Bencher<'_, '_>) {
    let payloads = arguments().to_payloads().unwrap();
    bencher.bench_local(|| {
        Arguments::from_payloads(divan::black_box(&payloads), "place_order", NAMES).unwrap()
    });
}

fn request() -> ScheduleActivityRequest {
    ScheduleActivityRequest::new(
        "place_order",
        arguments().to_payloads().unwrap(),
        ActivityOptions::new().task_queue("orders"),
    )
}

#[divan::bench]
fn schedule_request_to_model_bytes(bencher: divan::Bencher<'_, '_>) {
    let request = request();
    bencher.bench_local(|| codec::to_vec(divan::black_box(&request)).unwrap());
}

#[divan::bench]
fn schedule_request_from_model_bytes(bencher: divan::Bencher<'_, '_>) {
    let bytes = codec::to_vec(&request()).unwrap();
    bencher.bench_local(|| {
        codec::from_slice::<ScheduleActivityRequest>(divan::black_box(&bytes)).unwrap()
    });
}

#[divan::bench]
fn result_payload_round_trip(bencher: divan::Bencher<'_, '_>) {
    let value = arguments().3;
    bencher.bench_local(|| {
        Payload::json(divan::black_box(&value))
            .unwrap()
            .decode::<Address>()
            .unwrap()
    });
}
