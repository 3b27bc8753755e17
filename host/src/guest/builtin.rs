//! The built-in transforms, compiled from `guests/` by `build.rs` and embedded
//! so that an installed binary needs no `.wasm` files.

/// `builtin:<name>` to the component's bytes.
pub const BUILTINS: &[(&str, &[u8])] = &[
    ("ddb-json", include_bytes!(concat!(env!("OUT_DIR"), "/ddb-json.wasm"))),
    ("s3-join", include_bytes!(concat!(env!("OUT_DIR"), "/s3-join.wasm"))),
];

pub fn lookup(name: &str) -> Option<&'static [u8]> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
}
