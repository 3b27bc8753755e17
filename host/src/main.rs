//! The `sluice` binary; everything but error reporting lives in the library.

// Lifting guest outcomes allocates several small strings per record; mimalloc
// does that markedly faster than glibc's malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Reads FAILPOINTS (crash points for the crash-resume tests); inert when unset.
    let scenario = fail::FailScenario::setup();
    let code = sluice::cli::main();
    scenario.teardown();
    code
}
