//! With the `grpc` feature, generates the `switchyard.v1.Sync` client from
//! `proto/switchyard/v1/sync.proto` with a vendored `protoc` (nothing to install).
//! Without it, does nothing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "grpc")]
    {
        let root =
            std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
        let sync = root.join("switchyard/v1/sync.proto");
        println!("cargo:rerun-if-changed={}", sync.display());
        // prost-build finds protoc through this variable.
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
        tonic_prost_build::configure()
            .build_server(false)
            .compile_protos(&[sync], &[root])?;
    }
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
