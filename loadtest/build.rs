//! Client stubs for the server's gRPC contracts, generated from the same `proto/` files
//! the server compiles (nothing generated is committed), by `protox`: no `protoc` needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto");
    let descriptors = protox::compile(["../proto/grpc_service.proto", "../proto/fti.proto"], ["../proto"])?;
    tonic_prost_build::configure().build_server(false).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
