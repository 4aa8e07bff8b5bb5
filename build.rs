//! Generates the gRPC code from `proto/` at build time (nothing generated is committed).
//! The `.proto` files are compiled by `protox`, a protobuf compiler written in Rust: the
//! build needs no `protoc` on the machine (and ignores `PROTOC` if one is set).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["proto/grpc_service.proto", "proto/fti.proto"], ["proto"])?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
