//! Random DynamoDB items, rendered twice: as DynamoDB JSON for the stream,
//! and as the plain JSON sluice must turn them into. The second rendering is
//! written independently of the decoder, so tests can compare against it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Map, Value as Json};

/// One attribute value, with every DynamoDB type.
#[derive(Debug, Clone)]
pub enum Attr {
    S(String),
    /// DynamoDB's number text, also the JSON number's spelling.
    N(String),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(Vec<(String, Attr)>),
    L(Vec<Attr>),
    Ss(Vec<String>),
    Ns(Vec<String>),
    Bs(Vec<Vec<u8>>),
}

impl Attr {
    pub fn ddb(&self) -> Json {
        let (tag, value) = match self {
            Attr::S(s) => ("S", Json::String(s.clone())),
            Attr::N(n) => ("N", Json::String(n.clone())),
            Attr::B(b) => ("B", Json::String(BASE64.encode(b))),
            Attr::Bool(b) => ("BOOL", Json::Bool(*b)),
            Attr::Null => ("NULL", Json::Bool(true)),
            Attr::M(m) => ("M", Json::Object(m.iter().map(|(k, v)| (k.clone(), v.ddb())).collect())),
            Attr::L(l) => ("L", Json::Array(l.iter().map(Attr::ddb).collect())),
            Attr::Ss(s) => ("SS", s.iter().cloned().map(Json::String).collect()),
            Attr::Ns(n) => ("NS", n.iter().cloned().map(Json::String).collect()),
            Attr::Bs(b) => ("BS", b.iter().map(|b| Json::String(BASE64.encode(b))).collect()),
        };
        let mut m = Map::new();
        m.insert(tag.into(), value);
        Json::Object(m)
    }

    pub fn plain(&self) -> Json {
        match self {
            Attr::S(s) => Json::String(s.clone()),
            Attr::N(n) => number(n),
            Attr::B(b) => Json::String(BASE64.encode(b)),
            Attr::Bool(b) => Json::Bool(*b),
            Attr::Null => Json::Null,
            Attr::M(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), v.plain())).collect()),
            Attr::L(l) => Json::Array(l.iter().map(Attr::plain).collect()),
            Attr::Ss(s) => s.iter().cloned().map(Json::String).collect(),
            Attr::Ns(n) => n.iter().map(|n| number(n)).collect(),
            Attr::Bs(b) => b.iter().map(|b| Json::String(BASE64.encode(b))).collect(),
        }
    }
}

/// A JSON number keeping every digit (serde_json's `arbitrary_precision`).
fn number(text: &str) -> Json {
    serde_json::from_str(text).expect("generated numbers are valid JSON numbers")
}

/// An item as a map of attributes.
pub type Item = Vec<(String, Attr)>;

pub fn ddb_map(item: &Item) -> Json {
    Json::Object(item.iter().map(|(k, v)| (k.clone(), v.ddb())).collect())
}

pub fn plain_map(item: &Item) -> Json {
    Json::Object(item.iter().map(|(k, v)| (k.clone(), v.plain())).collect())
}

const WORDS: &[&str] = &[
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "café ☕",
    "naïve",
    "日本語",
    "emoji 🚀",
    "say \"hi\"",
    "back\\slash",
    "line\nbreak",
    "tab\there",
    "",
    "x",
    "zürich",
    "ünïcode",
];

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "42",
    "3.14159",
    "-0.001",
    "12.50",
    "1E-130",
    "-1E-130",
    "9.9999999999999999999999999999999999999E+125",
    "12345678901234567890123456789012345678",
    "-0.12345678901234567890123456789012345678",
    "1.5E+10",
    "2e-5",
    "1000000000000000000000000000000",
];

pub fn word(rng: &mut impl Rng) -> String {
    WORDS.choose(rng).expect("non-empty").to_string()
}

pub fn some_number(rng: &mut impl Rng) -> String {
    if rng.random_bool(0.5) {
        rng.random_range(-1_000_000i64..1_000_000).to_string()
    } else {
        NUMBERS.choose(rng).expect("non-empty").to_string()
    }
}

fn bytes(rng: &mut impl Rng) -> Vec<u8> {
    let n = rng.random_range(0..24);
    (0..n).map(|_| rng.random()).collect()
}

/// Distinct values for a set (DynamoDB sets are non-empty and unique).
fn distinct<T: PartialEq>(rng: &mut impl Rng, mut make: impl FnMut(&mut dyn rand::RngCore) -> T) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for _ in 0..rng.random_range(1..5) {
        let v = make(rng);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// A random value; `depth` bounds nesting.
pub fn attr(rng: &mut impl Rng, depth: u32) -> Attr {
    let kinds = if depth == 0 { 9 } else { 11 };
    match rng.random_range(0..kinds) {
        0 | 1 => Attr::S(word(rng)),
        2 | 3 => Attr::N(some_number(rng)),
        4 => Attr::B(bytes(rng)),
        5 => Attr::Bool(rng.random()),
        6 => Attr::Null,
        7 => Attr::Ss(distinct(rng, |r| {
            format!("{}-{}", WORDS[r.next_u32() as usize % WORDS.len()], r.next_u32() % 100)
        })),
        8 => Attr::Ns(distinct(rng, |r| (r.next_u32() % 1000).to_string())),
        9 => Attr::M((0..rng.random_range(0..4)).map(|i| (format!("f{i}"), attr(rng, depth - 1))).collect()),
        _ => Attr::L((0..rng.random_range(0..4)).map(|_| attr(rng, depth - 1)).collect()),
    }
}

/// A realistic item: fixed business attributes plus random extras.
pub fn item(rng: &mut impl Rng, key: &Item, version: u64) -> Item {
    let mut item: Item = key.clone();
    item.push(("version".into(), Attr::N(version.to_string())));
    item.push(("name".into(), Attr::S(word(rng))));
    item.push((
        "price".into(),
        Attr::N(format!("{}.{:02}", rng.random_range(0..500), rng.random_range(0..100))),
    ));
    item.push(("active".into(), Attr::Bool(rng.random())));
    if rng.random_bool(0.3) {
        item.push(("avatar".into(), Attr::B(bytes(rng))));
    }
    if rng.random_bool(0.3) {
        item.push((
            "tags".into(),
            Attr::Ss(distinct(rng, |r| WORDS[r.next_u32() as usize % WORDS.len()].to_owned())),
        ));
    }
    if rng.random_bool(0.2) {
        item.push((
            "blobs".into(),
            Attr::Bs(distinct(rng, |r| (r.next_u32() % 5000).to_le_bytes().to_vec())),
        ));
    }
    if rng.random_bool(0.2) {
        item.push((
            "scores".into(),
            Attr::Ns(distinct(rng, |r| NUMBERS[r.next_u32() as usize % NUMBERS.len()].to_owned())),
        ));
    }
    if rng.random_bool(0.5) {
        item.push((
            "address".into(),
            Attr::M(vec![
                ("street".into(), Attr::S(word(rng))),
                ("zip".into(), Attr::N(rng.random_range(10000..99999).to_string())),
                (
                    "geo".into(),
                    Attr::M(vec![
                        ("lat".into(), Attr::N("47.3769".into())),
                        ("lon".into(), Attr::N("8.5417".into())),
                    ]),
                ),
            ]),
        ));
    }
    if rng.random_bool(0.3) {
        item.push(("history".into(), Attr::L((0..rng.random_range(0..5)).map(|_| attr(rng, 2)).collect())));
    }
    if rng.random_bool(0.1) {
        item.push(("nothing".into(), Attr::Null));
    }
    if rng.random_bool(0.05) {
        // DynamoDB allows 32 levels; go to 20.
        let mut deep = Attr::S("bottom".into());
        for level in 0..20 {
            deep = if level % 2 == 0 { Attr::M(vec![("d".into(), deep)]) } else { Attr::L(vec![deep]) };
        }
        item.push(("deep".into(), deep));
    }
    if rng.random_bool(0.2) {
        item.push(("extra ünïcode \"name\"".into(), attr(rng, 3)));
    }
    item
}
