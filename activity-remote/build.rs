//! Compiles `proto/activity/v1/activity.proto` with protox (a protobuf compiler
//! written in Rust) and generates the prost messages and tonic stubs into
//! `OUT_DIR`: no system `protoc` is needed. See the crate docs for why.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["activity/v1/activity.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Every `bytes` field is `bytes::Bytes`: payloads pass between the
        // message and the model without a copy.
        .bytes(".")
        // A request that does not decode (e.g. a string that is not UTF-8) is
        // answered InvalidArgument naming the field: src/codec.rs.
        .codec_path("crate::codec::WireCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
