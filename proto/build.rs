//! Generates the gRPC types from `proto/gitfleet/v1/*.proto` with the vendored protoc, so
//! building needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Every service and method, for checks that each route is authorised.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    config.file_descriptor_set_path(out.join("gitfleet_descriptor.bin"));
    tonic_prost_build::configure().compile_with_config(
        config,
        &[
            "proto/gitfleet/v1/application.proto",
            "proto/gitfleet/v1/applicationset.proto",
            "proto/gitfleet/v1/apply.proto",
            "proto/gitfleet/v1/cluster.proto",
            "proto/gitfleet/v1/project.proto",
            "proto/gitfleet/v1/repository.proto",
            "proto/gitfleet/v1/session.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
