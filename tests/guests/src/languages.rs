//! The example plugin in Python and JavaScript, built the way
//! docs/writing-a-plugin.md tells an author to build it: componentize-py
//! (from PyPI, in a venv under the target dir) and componentize-js (from
//! npm, pinned by `tests/example-plugin-js/package-lock.json`). The tools
//! are installed on first use and each component is built once per change
//! of its sources, the contract or the tool's pin; concurrent tests (and
//! test binaries) wait for one build.

use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

/// The Python example: a Contact provisioner like the Rust one.
pub fn python_example() -> PathBuf {
    python("app")
}

/// The Python example with a bug: an uncaught `KeyError: 'region'` in
/// `validate_settings`.
pub fn python_broken() -> PathBuf {
    python("broken_app")
}

/// The JavaScript example: a Contact provisioner like the Rust one, its HTTP
/// through `fetch()`.
pub fn js_example() -> PathBuf {
    javascript("app.js")
}

/// The JavaScript example with a bug: an uncaught `TypeError` in
/// `validateSettings`.
pub fn js_broken() -> PathBuf {
    javascript("broken.js")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("tests/guests is two levels down").to_path_buf()
}

/// Where the tools and the built components live (under the target dir).
fn work_dir() -> PathBuf {
    PathBuf::from(env!("GUEST_TARGET_DIR")).join("languages")
}

fn python(module: &str) -> PathBuf {
    let root = root();
    let src = root.join("tests/example-plugin-python");
    let wit = root.join("wit/0.2.0");
    build(&format!("python-{module}"), &[&src, &wit], |out| {
        let venv = python_venv(&src.join("requirements.txt"));
        let mut cmd = Command::new(venv.join("bin/componentize-py"));
        cmd.arg("-d").arg(&wit).args(["-w", "provisioner", "componentize", module, "-p"]).arg(&src).arg("-o").arg(out);
        // Keep the source folder clean of __pycache__.
        cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    })
}

fn javascript(file: &str) -> PathBuf {
    let root = root();
    let src = root.join("tests/example-plugin-js");
    let wit = root.join("wit/0.2.0");
    build(&format!("js-{}", file.trim_end_matches(".js")), &[&src, &wit], |out| {
        npm_ci(&src);
        let mut cmd = Command::new(src.join("node_modules/.bin/componentize-js"));
        cmd.arg("--wit").arg(&wit).args(["--world-name", "provisioner", "-o"]).arg(out).arg(src.join(file));
        cmd
    })
}

/// A venv with the pinned componentize-py, made on first use.
/// The venv with componentize-py, pinned by the example's requirements.
fn python_venv(requirements: &Path) -> PathBuf {
    venv(&work_dir().join("python-venv"), requirements)
}

/// A venv at `dir` with the pinned `requirements` installed, made once
/// (and again when the pins change), under a lock: tests and test binaries
/// run at once.
pub(crate) fn venv(dir: &Path, requirements: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.parent().expect("a venv dir has a parent")).expect("create the venv's parent dir");
    let lock = File::create(dir.with_extension("lock")).expect("create the venv lock file");
    lock.lock().expect("lock the venv");
    let pins = std::fs::read_to_string(requirements).unwrap_or_else(|e| panic!("{}: {e}", requirements.display()));
    let marker = dir.join("installed-requirements.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(pins.as_str()) {
        return dir.to_path_buf();
    }
    run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(dir), "python3 -m venv (Debian: apt install python3-venv)");
    run(Command::new(dir.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check", "-r"]).arg(requirements), &format!("pip install -r {}", requirements.display()));
    std::fs::write(&marker, pins).expect("write the venv marker");
    dir.to_path_buf()
}

/// `npm ci` in `dir` unless its pinned packages are there. The packages
/// live in the source folder, shared by every target dir: one install at a
/// time, under a lock there.
pub(crate) fn npm_ci(dir: &Path) {
    let lock = File::create(dir.join(".npm-ci.lock")).expect("create the npm lock file");
    lock.lock().expect("lock the package folder");
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if installed.exists() && fresh(&installed) >= fresh(&dir.join("package-lock.json")) {
        return;
    }
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(dir), "npm ci (Node.js and npm are needed)");
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Builds `name` with `command(out)` unless a build of the same inputs is
/// there; returns the component's path.
fn build(name: &str, inputs: &[&Path], command: impl FnOnce(&Path) -> Command) -> PathBuf {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let mut hasher = DefaultHasher::new();
    for input in inputs {
        hash_tree(input, &mut hasher);
    }
    let dir = work_dir();
    let out = dir.join(format!("{name}-{:016x}.wasm", hasher.finish()));
    if out.exists() {
        return out;
    }
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(&dir).expect("create the languages dir");
    // Other test binaries build these too: one at a time.
    let lock = File::create(dir.join(".lock")).expect("create the lock file");
    lock.lock().expect("lock the languages dir");
    if out.exists() {
        return out;
    }
    let partial = out.with_extension("partial");
    let started = Instant::now();
    run(&mut command(&partial), &format!("building {name}"));
    std::fs::rename(&partial, &out).expect("move the built component");
    // Earlier builds of this one (other sources) are of no more use.
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let hash = file.strip_prefix(name).and_then(|r| r.strip_prefix('-')).and_then(|r| r.strip_suffix(".wasm"));
        if hash.is_some_and(|h| h.len() == 16 && entry.path() != out) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    eprintln!("built {name} ({:.1} MB) in {:.1} s", size as f64 / 1e6, started.elapsed().as_secs_f64());
    out
}

/// Hashes the names and contents of the files under `path`, in order,
/// leaving out installed packages and caches.
fn hash_tree(path: &Path, hasher: &mut DefaultHasher) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path).expect("read a source dir").map(|e| e.unwrap().path()).collect();
        entries.sort();
        for entry in entries {
            let name = entry.file_name().unwrap_or_default();
            if name != "node_modules" && name != "__pycache__" {
                hash_tree(&entry, hasher);
            }
        }
    } else {
        path.file_name().hash(hasher);
        std::fs::read(path).expect("read a source file").hash(hasher);
    }
}
