//! Runs the generator from the command line (the same flags as `tfesi synth`); also the
//! benchmark: `cargo run --release -p tfesi-synth --example synth -- --patients 500 --threads 2`.

use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    synth: tfesi_synth::SynthArgs,
}

fn main() -> Result<(), tfesi_synth::Error> {
    let cli = Cli::parse();
    let summary = tfesi_synth::run(&cli.synth)?;
    println!("{summary}");
    Ok(())
}
