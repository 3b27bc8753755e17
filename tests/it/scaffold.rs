//! `sluice guest new`: the projects it writes build with their own `./build`,
//! pass their cases with `sluice guest test`, and run in a pipeline with
//! the very rows `builtin:ddb-json` makes. The Python project needs
//! componentize-py on the PATH (`./scripts/test` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice::generator::{self, GenOptions};

use crate::util::{dump, pipeline, run_ok, scratch, sluice, stdout};

/// Creates a guest project and builds it; returns the component's path.
fn new_guest(parent: &Path, name: &str, lang: &str) -> PathBuf {
    let out = stdout(&run_ok(sluice().args(["guest", "new", name, "--lang", lang, "--dir"]).arg(parent)));
    let project = parent.join(name);
    assert!(out.contains(&format!("created the {lang} guest {}", project.display())), "{out}");
    let mut build = Command::new(project.join("build"));
    // The project's own target folder: the test's cargo settings are not the user's.
    build.env_remove("CARGO_TARGET_DIR").env_remove("RUSTFLAGS").env_remove("CARGO_BUILD_TARGET");
    let built = stdout(&run_ok(&mut build));
    let wasm = PathBuf::from(built.lines().last().expect("./build prints the component's path last"));
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    wasm
}

/// The project passes the cases it was made with, and a pipeline through it
/// stores the rows `builtin:ddb-json` stores.
fn behaves_like_the_builtin(parent: &Path, wasm: &Path) {
    let project = wasm.ancestors().find(|p| p.join("cases").is_dir()).expect("the project folder");
    let tested = stdout(&run_ok(sluice().args(["guest", "test"]).arg(wasm).arg(project.join("cases"))));
    assert!(tested.contains("10 cases, 10 passed, 0 failed"), "{tested}");

    let g = generator::generate(&GenOptions { changes: 300, items: 40, seed: 12, ..Default::default() });
    let rows = |transform: &str, dir: &Path| {
        let tables: String = ["orders", "customers", "devices"]
            .iter()
            .map(|t| {
                format!("[[tables]]\nsource = \"{t}\"\ntarget = \"{t}_cdc\"\ntransform = \"{transform}\"\n")
            })
            .collect();
        run_ok(sluice().arg("run").arg(pipeline(dir, &g.records, 64, &tables)));
        ["orders", "customers", "devices"]
            .iter()
            .flat_map(|t| {
                dump(
                    &dir.join("out.db"),
                    &format!(
                        "SELECT table_name, keys, event_id, new_image, old_image, is_deleted, change_micros, \
                         change_seq FROM {t}_cdc ORDER BY keys"
                    ),
                )
            })
            .collect::<Vec<_>>()
    };
    let (ours, builtin) = (parent.join("ours"), parent.join("builtin"));
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&builtin).unwrap();
    let expected = rows("builtin:ddb-json", &builtin);
    assert!(expected.len() > 50, "the stream makes rows");
    assert_eq!(rows(&wasm.display().to_string(), &ours), expected);
}

#[test]
fn a_new_rust_guest_builds_passes_its_cases_and_stores_what_the_builtin_stores() {
    let dir = scratch();
    let wasm = new_guest(dir.path(), "orders-guest", "rust");
    behaves_like_the_builtin(dir.path(), &wasm);
}

#[test]
fn a_new_python_guest_builds_passes_its_cases_and_stores_what_the_builtin_stores() {
    let dir = scratch();
    let wasm = new_guest(dir.path(), "orders_py", "python");
    behaves_like_the_builtin(dir.path(), &wasm);
}

#[test]
fn a_guest_name_that_cannot_name_a_project_is_refused_and_nothing_is_written() {
    let dir = scratch();
    for bad in ["Orders", "1st", "a/b", ""] {
        let out =
            sluice().args(["guest", "new", bad, "--lang", "rust", "--dir"]).arg(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot name a guest"), "{bad:?}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    run_ok(sluice().args(["guest", "new", "twice", "--lang", "python", "--dir"]).arg(dir.path()));
    let again =
        sluice().args(["guest", "new", "twice", "--lang", "rust", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}
