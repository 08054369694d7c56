//! The `tfesi-registry` binary.

fn main() -> std::process::ExitCode {
    tfesi_platform::run_main::<tfesi_registry::Config, _, _>(tfesi_registry::run)
}
