//! The `tfesi-ingest` binary.
fn main() -> std::process::ExitCode {
    tfesi_platform::run_main::<tfesi_ingest::Config, _, _>(tfesi_ingest::run)
}
