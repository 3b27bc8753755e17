//! The built-in transforms, compiled from `guests/` by `build.rs` and embedded
//! so that an installed binary needs no `.wasm` files. Each states what it
//! needs from its table's manifest entry.

pub struct Builtin {
    pub name: &'static str,
    pub wasm: &'static [u8],
    /// It reads objects through `fetch`, so its table needs `[tables.join]`.
    pub needs_join: bool,
}

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "ddb-json",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/ddb-json.wasm")),
        needs_join: false,
    },
    Builtin {
        name: "s3-join",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/s3-join.wasm")),
        needs_join: true,
    },
];

pub fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.name)
}
