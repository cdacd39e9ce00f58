//! Generates the gRPC code from every `.proto` under `proto/` with a vendored
//! `protoc`, so a fresh machine needs nothing installed; also writes the descriptor
//! set that gRPC server reflection serves.

use std::path::{Path, PathBuf};

fn protos(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            protos(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            found.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut files = Vec::new();
    protos(&root, &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed={}", root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    // prost-build finds protoc through this variable; the vendored binary means no
    // system protoc is needed.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let descriptor = PathBuf::from(std::env::var("OUT_DIR")?).join("switchyard_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(descriptor)
        // The sync stream's document is the environment's shared `Bytes`: a reference
        // count per message, not a copy.
        .bytes(".switchyard.v1.SyncEvent.document")
        .compile_protos(&files, std::slice::from_ref(&root))?;
    // The server side of `switchyard.v1.Evaluation` once more, answering `EvaluateAll`
    // with a message written straight to protobuf bytes (`grpc::encoded`): the same
    // bytes on the wire as the generated `EvaluateAllResponse`, without a map of
    // owned strings and value trees per call. Every other type is the one above.
    let server_side = PathBuf::from(std::env::var("OUT_DIR")?).join("server_side");
    std::fs::create_dir_all(&server_side)?;
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&server_side)
        .extern_path(
            ".switchyard.v1.EvaluateAllResponse",
            "crate::grpc::encoded::EvaluateAllAnswer",
        )
        .extern_path(".switchyard.v1", "crate::grpc::proto::switchyard")
        .compile_protos(&[root.join("switchyard/v1/evaluation.proto")], &[root])?;
    Ok(())
}
