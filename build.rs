//! Generates the gRPC code from `proto/` at build time (nothing generated is committed).
//! Needs `protoc` (Debian: protobuf-compiler), or PROTOC pointing at one.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["proto/grpc_service.proto", "proto/fti.proto"], &["proto"])?;
    Ok(())
}
