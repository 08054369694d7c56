//! The tfesi operator command.
fn main() {}
