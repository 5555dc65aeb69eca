//! The `memgen` command-line tool: parses arguments and hands each subcommand to the library crates.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Training steps free and reallocate the same tensor sizes: keep the memory for reuse.
    memgen_kernels::keep_freed_memory();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
