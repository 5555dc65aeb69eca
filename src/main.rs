//! The `memgen` command-line tool: parses arguments and hands each subcommand to the library crates.

mod alloc;
mod cli;

use clap::{CommandFactory, FromArgMatches};
use cli::output::{self, exit_code, EXIT_OK, EXIT_USAGE};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Training steps free and reallocate the same tensor sizes: keep the memory for reuse.
    alloc::keep_freed_memory();
    // Batches run as one share per thread; Candle's elementwise ops run serially inside a share.
    memgen_diffusion::shards::serial_candle_ops();
    // Known before parsing, so that a usage error is also reported as JSON.
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    output::set_json(json);
    let parsed = cli::Cli::command()
        .try_get_matches()
        .and_then(|m| Ok((cli::command_name(&m), cli::Cli::from_arg_matches(&m)?)));
    let (name, args) = match parsed {
        Ok(p) => p,
        Err(err) if !err.use_stderr() => {
            // --help and --version: print them as clap does, and succeed.
            let _ = err.print();
            return ExitCode::from(EXIT_OK);
        }
        Err(err) => {
            let _ = err.print();
            if json {
                let msg = err.render().to_string();
                fail_json(msg.trim_end(), EXIT_USAGE);
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli::run(args) {
        Ok(()) => {
            if json {
                let out = serde_json::json!({ "ok": true, "command": name, "result": output::take_result() });
                println!("{out}");
            }
            ExitCode::from(EXIT_OK)
        }
        Err(err) => {
            let code = exit_code(&err);
            eprintln!("error: {err:#}");
            if json {
                fail_json(&format!("{err:#}"), code);
            }
            ExitCode::from(code)
        }
    }
}

/// The JSON object of a failed command, on stdout.
fn fail_json(message: &str, code: u8) {
    println!("{}", serde_json::json!({ "ok": false, "error": message, "exit_code": code }));
}
