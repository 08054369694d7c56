//! The `tfesi-inference` binary.

tfesi_platform::service_allocator!();

fn main() -> std::process::ExitCode {
    tfesi_platform::run_main::<tfesi_inference::Config, _, _>(tfesi_inference::run)
}
