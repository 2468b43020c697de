//! The built Salesforce component carries exactly the contract in `wit/`:
//! what `wasm-tools component wit` would print for it matches the source,
//! interface by interface (docs are not part of a component's types).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use wit_component::{DecodedWasm, WitPrinter};
use wit_parser::{PackageId, Resolve, WorldId, WorldItem, WorldKey};

/// The latest contract, which the Salesforce plugin targets.
const LATEST: &str = "0.2.0";

fn source(version: &str) -> (Resolve, PackageId, WorldId) {
    let mut resolve = Resolve::default();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit").join(version);
    let (pkg, _) = resolve.push_dir(&wit).unwrap_or_else(|e| panic!("wit/{version} parses: {e:#}"));
    let world = resolve.select_world(&[pkg], Some("provisioner")).expect("the provisioner world");
    (resolve, pkg, world)
}

fn component(path: &Path) -> (Resolve, WorldId) {
    let bytes = std::fs::read(path).unwrap();
    match wit_component::decode(&bytes).expect("the component decodes") {
        DecodedWasm::Component(resolve, world) => (resolve, world),
        DecodedWasm::WitPackage(..) => panic!("{} is a WIT package, not a component", path.display()),
    }
}

fn find_package(resolve: &Resolve, version: &str) -> PackageId {
    let package = format!("registry:provisioning@{version}");
    resolve
        .packages
        .iter()
        .find(|(_, p)| p.name.to_string() == package)
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("{package} not found"))
}

/// Each interface of `pkg` as its printed WIT definitions, sorted: a decoded
/// component lists types in order of first use, the source in writing order.
fn printed_interfaces(resolve: &Resolve, pkg: PackageId, docs: bool) -> BTreeMap<String, Vec<String>> {
    resolve.packages[pkg]
        .interfaces
        .iter()
        .map(|(name, id)| {
            let mut printer = WitPrinter::default();
            printer.emit_docs(docs);
            printer.print_interface(resolve, *id).unwrap();
            let text = printer.output.to_string();
            let mut items: Vec<String> = text.split("\n\n").map(|i| i.trim().to_string()).collect();
            items.sort();
            (name.clone(), items)
        })
        .collect()
}

/// A world's imports or exports as fully qualified interface names.
fn names(resolve: &Resolve, items: &indexmap::IndexMap<WorldKey, WorldItem>) -> BTreeSet<String> {
    items
        .iter()
        .map(|(key, item)| match (key, item) {
            (_, WorldItem::Interface { id, .. }) => resolve.id_of(*id).unwrap_or_else(|| resolve.name_world_key(key)),
            _ => resolve.name_world_key(key),
        })
        .collect()
}

fn interfaces_match(version: &str, path: &Path) {
    let (src, src_pkg, _) = source(version);
    let (built, _) = component(path);
    let expected = printed_interfaces(&src, src_pkg, false);
    let actual = printed_interfaces(&built, find_package(&built, version), false);
    // The data types' interface was renamed in 0.2.0 (no clash with
    // wasi:http/types for tools that flatten names).
    let types = if version == "0.1.0" { "types" } else { "registry-types" };
    let mut interfaces = vec!["log", "oauth2-server", "plugin-info", "provisioning-target", types];
    // Batches' requests are read from the host since 0.2.0.
    if version != "0.1.0" {
        interfaces.push("batch-input");
    }
    interfaces.sort();
    assert_eq!(expected.keys().collect::<Vec<_>>(), interfaces);
    // A component carries the interfaces it uses: every export (and what
    // they use), and `log` only if it logs.
    let uses: &[&str] = if version == "0.1.0" { &[] } else { &["batch-input"] };
    for export in ["oauth2-server", "plugin-info", "provisioning-target", types].iter().chain(uses) {
        assert!(actual.contains_key(*export), "{} lacks {export}", path.display());
    }
    for (name, wit) in &actual {
        // A plugin that never reads its batches (the example answers
        // `unsupported`) carries the resource type without its methods.
        if name == "batch-input" && wit == &["resource batch-requests;"] {
            continue;
        }
        assert_eq!(expected.get(name), Some(wit), "interface {name} differs from wit/{version}");
    }
}

#[test]
fn component_interfaces_match_the_wit_source() {
    interfaces_match(LATEST, test_guests::salesforce_plugin());
    interfaces_match(LATEST, test_guests::example_plugin());
}

#[test]
fn a_plugin_built_for_0_1_0_carries_the_frozen_contract() {
    interfaces_match("0.1.0", test_guests::example_plugin_v0_1_0());
}

#[test]
fn component_world_exports_and_imports_are_the_contract() {
    let (src, _, src_world) = source(LATEST);
    let (built, world) = component(test_guests::salesforce_plugin());
    let src_world = &src.worlds[src_world];
    let world = &built.worlds[world];
    assert_eq!(names(&built, &world.exports), names(&src, &src_world.exports));

    // A component imports what it uses of its world (the linker drops the
    // rest), plus what Rust's std links (stdio, env, exit, clocks, random,
    // preopens) which the host grants nothing. Never sockets.
    let imports = names(&built, &world.imports);
    let contract = names(&src, &src_world.imports);
    assert!(imports.contains(&format!("registry:provisioning/log@{LATEST}")), "{imports:?}");
    for import in imports.difference(&contract) {
        let from_std = ["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/"]
            .iter()
            .any(|prefix| import.starts_with(prefix));
        assert!(from_std, "unexpected import {import}");
    }
}

#[test]
fn a_component_using_http_imports_the_contract_handler() {
    let (src, _, src_world) = source(LATEST);
    let (built, world) = component(test_guests::hostile_http());
    let imports = names(&built, &built.worlds[world].imports);
    let contract = names(&src, &src.worlds[src_world].imports);
    assert!(contract.contains("wasi:http/outgoing-handler@0.2.12"), "{contract:?}");
    assert!(imports.contains("wasi:http/outgoing-handler@0.2.12"), "{imports:?}");
}
