//! The `tfesi-ingest` binary.

tfesi_platform::service_allocator!();
fn main() -> std::process::ExitCode {
    tfesi_platform::run_main::<tfesi_ingest::Config, _, _>(tfesi_ingest::run)
}
