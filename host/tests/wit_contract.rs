//! The built Salesforce component carries exactly the contract in `wit/`:
//! what `wasm-tools component wit` would print for it matches the source,
//! interface by interface (docs are not part of a component's types).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use wit_component::{DecodedWasm, WitPrinter};
use wit_parser::{PackageId, Resolve, WorldId, WorldItem, WorldKey};

const PACKAGE: &str = "registry:provisioning@0.1.0";

fn source() -> (Resolve, PackageId, WorldId) {
    let mut resolve = Resolve::default();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let (pkg, _) = resolve.push_dir(&wit).expect("wit/ parses");
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

fn find_package(resolve: &Resolve) -> PackageId {
    resolve
        .packages
        .iter()
        .find(|(_, p)| p.name.to_string() == PACKAGE)
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("{PACKAGE} not found"))
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

#[test]
fn component_interfaces_match_the_wit_source() {
    let (src, src_pkg, _) = source();
    let (built, _) = component(test_guests::salesforce_plugin());
    let expected = printed_interfaces(&src, src_pkg, false);
    let actual = printed_interfaces(&built, find_package(&built), false);
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        vec!["log", "oauth2-server", "plugin-info", "provisioning-target", "types"]
    );
    assert_eq!(actual.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (name, wit) in &expected {
        assert_eq!(actual.get(name), Some(wit), "interface {name} differs from wit/");
    }
}

#[test]
fn component_world_exports_and_imports_are_the_contract() {
    let (src, _, src_world) = source();
    let (built, world) = component(test_guests::salesforce_plugin());
    let src_world = &src.worlds[src_world];
    let world = &built.worlds[world];
    assert_eq!(names(&built, &world.exports), names(&src, &src_world.exports));

    // A component imports what it uses of its world (the linker drops the
    // rest), plus what Rust's std links (stdio, env, exit, clocks, random,
    // preopens) which the host grants nothing. Never sockets.
    let imports = names(&built, &world.imports);
    let contract = names(&src, &src_world.imports);
    assert!(imports.contains("registry:provisioning/log@0.1.0"), "{imports:?}");
    for import in imports.difference(&contract) {
        let from_std = ["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/"]
            .iter()
            .any(|prefix| import.starts_with(prefix));
        assert!(from_std, "unexpected import {import}");
    }
}

#[test]
fn a_component_using_http_imports_the_contract_handler() {
    let (src, _, src_world) = source();
    let (built, world) = component(test_guests::hostile_http());
    let imports = names(&built, &built.worlds[world].imports);
    let contract = names(&src, &src.worlds[src_world].imports);
    assert!(contract.contains("wasi:http/outgoing-handler@0.2.12"), "{contract:?}");
    assert!(imports.contains("wasi:http/outgoing-handler@0.2.12"), "{imports:?}");
}
