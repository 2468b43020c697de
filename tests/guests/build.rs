//! Builds the guest components with a nested `cargo build --target
//! wasm32-wasip2`, in a target directory of its own so it never waits on the
//! outer build's lock, and hands their paths to the crate as env vars.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// (env var, package, feature, output file name)
const GUESTS: &[(&str, &str, Option<&str>, &str)] = &[
    ("SALESFORCE_PLUGIN_WASM", "salesforce-provisioner", None, "salesforce_provisioner.wasm"),
    ("SCIM_PLUGIN_WASM", "scim-provisioner", None, "scim_provisioner.wasm"),
    ("HOSTILE_LOOP_WASM", "hostile-fixture", Some("loop-forever"), "hostile_fixture.wasm"),
    ("HOSTILE_ALLOC_WASM", "hostile-fixture", Some("alloc-unbounded"), "hostile_fixture.wasm"),
    ("HOSTILE_HTTP_WASM", "hostile-fixture", Some("forbidden-host"), "hostile_fixture.wasm"),
    ("HOSTILE_PANIC_WASM", "hostile-fixture", Some("panics"), "hostile_fixture.wasm"),
    ("HOSTILE_POISON_WASM", "hostile-fixture", Some("poison-person"), "hostile_fixture.wasm"),
    ("HOSTILE_HOARDER_WASM", "hostile-fixture", Some("hoarder"), "hostile_fixture.wasm"),
    ("EXAMPLE_PLUGIN_WASM", "example-plugin", None, "example_plugin.wasm"),
    ("EXAMPLE_PLUGIN_V0_1_0_WASM", "example-plugin", Some("contract-0-1-0"), "example_plugin.wasm"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().parent().unwrap().to_path_buf();
    for watched in ["plugin", "tests/fixtures", "tests/example-plugin", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out; share one guest
    // target dir per outer target dir so guests build incrementally.
    let guest_target = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("guests"))
        .unwrap_or_else(|| out_dir.join("guests"));

    // The other languages' examples build at run time, into this dir too.
    println!("cargo:rustc-env=GUEST_TARGET_DIR={}", guest_target.display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (var, package, feature, file) in GUESTS {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&root)
            .args(["build", "--locked", "--release", "--target", TARGET, "-p", package])
            .env("CARGO_TARGET_DIR", &guest_target)
            // Flags meant for the outer (native) build must not leak in.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_MAKEFLAGS");
        if let Some(f) = feature {
            cmd.args(["--features", f]);
        }
        let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
        if !status.success() {
            panic!(
                "building the {package} component failed (see above). If the target is missing, run: rustup target add {TARGET}"
            );
        }
        let built = guest_target.join(TARGET).join("release").join(file);
        let name = match feature {
            Some(f) => format!("{package}-{f}.wasm"),
            None => format!("{package}.wasm"),
        };
        let dest = out_dir.join(name);
        copy(&built, &dest);
        println!("cargo:rustc-env={var}={}", dest.display());
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}
