//! The `tfesi-preprocess` binary.

tfesi_platform::service_allocator!();
fn main() -> std::process::ExitCode {
    tfesi_platform::run_main::<tfesi_preprocess::Config, _, _>(tfesi_preprocess::run)
}
