//! Generates the GoBGP gRPC client (EVPN) from the `.proto` files Debian's
//! `golang-github-osrg-gobgp-dev` installs, with `protoc` from
//! `protobuf-compiler` and the `google/protobuf` imports from
//! `libprotobuf-dev`. Nothing third-party is copied into the repository.
//!
//! Without those files the switch still builds: the `gobgp_api` cfg stays
//! unset and `vsctl evpn set` answers that this build has no EVPN
//! (docs/evpn.md). Paths are overridable:
//! - `GOBGP_PROTO_DIR`: directory holding `gobgp.proto`, `attribute.proto`…
//! - `PROTOBUF_INCLUDE`: directory holding `google/protobuf/any.proto`
//! - `PROTOC`: the compiler (read by prost-build)

use std::path::{Path, PathBuf};

const DEFAULT_PROTO_DIR: &str = "/usr/share/gocode/src/github.com/osrg/gobgp/api";
const DEFAULT_PROTOBUF_INCLUDE: &str = "/usr/include";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gobgp_api)");
    for var in ["GOBGP_PROTO_DIR", "PROTOBUF_INCLUDE", "PROTOC"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let proto_dir = dir_from_env("GOBGP_PROTO_DIR", DEFAULT_PROTO_DIR);
    let include = dir_from_env("PROTOBUF_INCLUDE", DEFAULT_PROTOBUF_INCLUDE);
    let gobgp_proto = proto_dir.join("gobgp.proto");
    let any_proto = include.join("google/protobuf/any.proto");
    let protoc = std::env::var_os("PROTOC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("protoc"));
    let protoc_ok = std::process::Command::new(&protoc)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let missing: Vec<String> = [
        (!gobgp_proto.is_file())
            .then(|| format!("{} (golang-github-osrg-gobgp-dev)", gobgp_proto.display())),
        (!any_proto.is_file()).then(|| format!("{} (libprotobuf-dev)", any_proto.display())),
        (!protoc_ok).then(|| format!("{} (protobuf-compiler)", protoc.display())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        println!(
            "cargo::warning=building without EVPN (the GoBGP gRPC client): missing {}",
            missing.join(", ")
        );
        return;
    }
    println!("cargo::rerun-if-changed={}", proto_dir.display());
    tonic_prost_build::configure()
        .build_client(true)
        // The unit tests run a fake GoBGP, a tonic server; the daemon
        // needs none.
        .build_server(true)
        .server_mod_attribute("apipb", "#[cfg(test)]")
        .generate_default_stubs(true)
        // The path attributes and NLRIs travel as `Any`s of attribute.proto's
        // messages (same package).
        .compile_protos(
            &[gobgp_proto, proto_dir.join("attribute.proto")],
            &[proto_dir, include],
        )
        .unwrap_or_else(|e| panic!("generating the GoBGP client: {e}"));
    println!("cargo::rustc-cfg=gobgp_api");
}

fn dir_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(default).to_path_buf())
}
