//! The host side of `wit/transform.wit`, generated once for the whole host.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "transformer",
});

pub use self::sluice::transform::host;
pub use self::sluice::transform::types;
