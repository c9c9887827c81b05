//! Generates the gRPC code of flagd's evaluation protocol (`proto/`, versions 1 and 2) with
//! the protoc binary vendored by `protoc-bin-vendored`, so that a build needs no system
//! protoc: the server side for the crate (`$OUT_DIR/server/`) and a client for the
//! integration tests (`$OUT_DIR/client/`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    let protos = [
        PathBuf::from("proto/flagd/evaluation/v1/evaluation.proto"),
        PathBuf::from("proto/flagd/evaluation/v2/evaluation.proto"),
    ];
    let includes = [PathBuf::from("proto"), well_known];
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for (side, server) in [("server", true), ("client", false)] {
        let dir = out.join(side);
        std::fs::create_dir_all(&dir)?;
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(&protoc);
        tonic_prost_build::configure()
            .build_server(server)
            .build_client(!server)
            .build_transport(false)
            .out_dir(dir)
            .compile_with_config(config, &protos, &includes)?;
    }
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
