//! The `tfesi-registry` binary.

tfesi_platform::service_allocator!();

fn main() -> std::process::ExitCode {
    tfesi_platform::run_main::<tfesi_registry::Config, _, _>(tfesi_registry::run)
}
