//! The `sluice` binary; everything but error reporting lives in the library.

fn main() -> std::process::ExitCode {
    // Reads FAILPOINTS (crash points for the crash-resume tests); inert when unset.
    let scenario = fail::FailScenario::setup();
    let code = sluice::cli::main();
    scenario.teardown();
    code
}
