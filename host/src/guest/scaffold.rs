//! `sluice guest new`: a ready guest project, outside any workspace, that
//! decodes exactly as `builtin:ddb-json` does, with a `./build` script and
//! passing test cases (a share of the built-in's own, `tests/cases`).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The languages a guest can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, on the `sluice-guest` crate (`guests/sdk`).
    Rust,
    /// Python, built with componentize-py, on the `sluice_guest` package.
    Python,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
        })
    }
}

/// Where `sluice-guest` was when this binary was built, for a path
/// dependency until the crate is on crates.io.
const SDK_BESIDE_THE_BUILD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/sdk");

/// Each case's input and expected outcomes, by file name.
macro_rules! cases {
    ($($name:literal),*) => {
        &[$(
            (concat!($name, ".in.jsonl"), include_str!(concat!("../../../tests/cases/ddb-json/", $name, ".in.jsonl"))),
            (concat!($name, ".out.jsonl"), include_str!(concat!("../../../tests/cases/ddb-json/", $name, ".out.jsonl"))),
        )*]
    };
}

/// The built-in's cases that make rows only: a start to change from.
const CASES: &[(&str, &str)] = cases!(
    "deletes",
    "escapes-and-unicode",
    "every-type",
    "keys",
    "numbers",
    "numeric-keys",
    "precision",
    "seed-insert",
    "seed-modify",
    "seed-remove"
);

/// A file of the project: where, what, and whether it is a script.
struct File {
    path: String,
    text: String,
    executable: bool,
}

/// Writes a project named `name` in a new folder `parent/name`; returns the
/// folder. `sdk` is the `sluice-guest` crate to depend on (Rust).
pub fn create(parent: &Path, name: &str, lang: Lang, sdk: Option<&Path>) -> Result<PathBuf> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "{name:?} cannot name a guest: use lower-case letters, digits, '-' and '_', starting with a letter"
        );
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} exists already; choose another name or folder", dir.display());
    }
    let files = match lang {
        Lang::Rust => rust(name, sdk)?,
        Lang::Python => python(name),
    };
    for file in files.into_iter().chain(CASES.iter().map(|(case, text)| File {
        path: format!("cases/{case}"),
        text: (*text).to_owned(),
        executable: false,
    })) {
        write(&dir.join(&file.path), &file.text, file.executable)?;
    }
    Ok(dir)
}

fn rust(name: &str, sdk: Option<&Path>) -> Result<Vec<File>> {
    let krate = name.replace('-', "_");
    let sdk = match sdk {
        Some(path) => Some(path.to_owned()),
        None => Path::new(SDK_BESIDE_THE_BUILD).canonicalize().ok(),
    };
    let dependency = match sdk {
        Some(path) => {
            let path =
                path.canonicalize().with_context(|| format!("finding sluice-guest at {}", path.display()))?;
            format!("sluice-guest = {{ path = {:?}, version = \"0.2\" }}", path.display().to_string())
        }
        None => {
            tracing::warn!(
                "the sluice-guest crate was not found beside this sluice's sources; the project depends \
                 on sluice-guest 0.2 from crates.io (or pass --sdk with the path of guests/sdk)"
            );
            "sluice-guest = \"0.2\"".to_owned()
        }
    };
    let fill = |template: &str| template.replace("{name}", name).replace("{crate}", &krate);
    Ok(vec![
        File {
            path: "Cargo.toml".into(),
            text: fill(include_str!("scaffold/rust/Cargo.toml")).replace("{sdk_dependency}", &dependency),
            executable: false,
        },
        File {
            path: "src/lib.rs".into(),
            text: fill(include_str!("scaffold/rust/lib.rs")),
            executable: false,
        },
        File { path: "build".into(), text: fill(include_str!("scaffold/rust/build")), executable: true },
        File {
            path: "README.md".into(),
            text: fill(include_str!("scaffold/rust/README.md")),
            executable: false,
        },
        File { path: ".gitignore".into(), text: "/target\n".into(), executable: false },
    ])
}

fn python(name: &str) -> Vec<File> {
    let fill = |template: &str| template.replace("{name}", name);
    vec![
        File { path: "app.py".into(), text: fill(include_str!("scaffold/python/app.py")), executable: false },
        File { path: "build".into(), text: fill(include_str!("scaffold/python/build")), executable: true },
        File {
            path: "README.md".into(),
            text: fill(include_str!("scaffold/python/README.md")),
            executable: false,
        },
        File {
            path: "sluice_guest/__init__.py".into(),
            text: include_str!("../../../guests/sdk-python/sluice_guest/__init__.py").into(),
            executable: false,
        },
        File {
            path: "sluice_guest/ddb.py".into(),
            text: include_str!("../../../guests/sdk-python/sluice_guest/ddb.py").into(),
            executable: false,
        },
        File {
            path: "wit/transform.wit".into(),
            text: include_str!("../../../wit/transform.wit").into(),
            executable: false,
        },
        File { path: ".gitignore".into(), text: "/*.wasm\n__pycache__/\n".into(), executable: false },
    ]
}

fn write(path: &Path, text: &str, executable: bool) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    Ok(())
}
