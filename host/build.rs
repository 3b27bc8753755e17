//! Builds the built-in guest components from `guests/` for `wasm32-wasip2`,
//! so the host can embed them and an installed binary needs no `.wasm` files.
//!
//! Guests build in their own target folder under `OUT_DIR`, with the `guest`
//! profile from the workspace's `Cargo.toml`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// (file name in OUT_DIR, package, extra cargo arguments)
const GUESTS: &[(&str, &str, &[&str])] = &[
    ("ddb-json.wasm", "guest-ddb-json", &[]),
    ("s3-join.wasm", "guest-s3-join", &[]),
    // Misbehaves on request; only the tests use it (SLUICE_TEST_FAULTS_WASM).
    ("test-faults.wasm", "guest-ddb-json", &["--features", "test-faults"]),
];

fn main() {
    let host = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = host.parent().expect("host/ sits in the workspace root");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    for watched in ["guests", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    check_target_installed();

    let target_dir = out.join("guest-target");
    for (file, package, extra) in GUESTS {
        build_guest(root, &target_dir, package, extra);
        let built = target_dir.join(TARGET).join("guest").join(format!("{}.wasm", package.replace('-', "_")));
        std::fs::copy(&built, out.join(file))
            .unwrap_or_else(|e| panic!("copying {} to OUT_DIR: {e}", built.display()));
    }
    println!("cargo:rustc-env=SLUICE_TEST_FAULTS_WASM={}", out.join("test-faults.wasm").display());
}

fn build_guest(root: &Path, target_dir: &Path, package: &str, extra: &[&str]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--package", package, "--target", TARGET, "--profile", "guest"])
        .args(extra)
        .arg("--target-dir")
        .arg(target_dir);
    // The host's flags and wrappers (clippy, coverage) are not meant for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("running cargo for {package}: {e}"));
    assert!(status.success(), "building guest {package} for {TARGET} failed (see the output above)");
}

fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if !libdir.is_some_and(|dir| dir.is_dir()) {
        panic!(
            "the {TARGET} Rust target is not installed, and the built-in guests need it.\n\
             Run `rustup toolchain install` in the repository (it reads rust-toolchain.toml), \
             or `rustup target add {TARGET}`."
        );
    }
}
