//! Compiles the Kubernetes `.proto` files under `proto/` (k8s.io/api and apimachinery,
//! as published by kube-rs/k8s-pb) into one descriptor set that `src/protobuf.rs`
//! embeds. protox is a Rust protobuf compiler, so no `protoc` is needed.

use std::path::PathBuf;

use prost::Message;

fn main() {
    let files = [
        "api/core/v1/generated.proto",
        "api/apps/v1/generated.proto",
        "api/batch/v1/generated.proto",
        "api/networking/v1/generated.proto",
        "api/rbac/v1/generated.proto",
        "api/policy/v1/generated.proto",
        "api/autoscaling/v2/generated.proto",
        "apimachinery/pkg/apis/meta/v1/generated.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let set = protox::compile(files, ["proto"]).expect("the Kubernetes .proto files compile");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("k8s.fds"), set.encode_to_vec()).expect("OUT_DIR is writable");
}
