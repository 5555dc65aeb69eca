//! What a command prints and how it exits: human-readable lines (stdout, or stderr under `--json`),
//! the one JSON object of `--json` mode, the usage and refusal errors of the command line, and the
//! exit code of an error chain.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Whether `--json` is in effect.
static JSON: AtomicBool = AtomicBool::new(false);

/// The `result` of the JSON object, set by the command that ran.
static RESULT: Mutex<Option<serde_json::Value>> = Mutex::new(None);

/// Print one line of human-readable output: on stdout, or on stderr under `--json` (where stdout
/// holds only the JSON object).
macro_rules! say {
    ($($arg:tt)*) => {
        if $crate::cli::output::json_mode() {
            eprintln!($($arg)*)
        } else {
            println!($($arg)*)
        }
    };
}

/// [`say!`] without the newline.
macro_rules! say_text {
    ($($arg:tt)*) => {
        if $crate::cli::output::json_mode() {
            eprint!($($arg)*)
        } else {
            print!($($arg)*)
        }
    };
}

/// Return a [`UsageError`] (exit code 2) with a message built like `format!`.
macro_rules! usage_bail {
    ($($arg:tt)*) => {
        return Err($crate::cli::output::usage(format!($($arg)*)))
    };
}

/// Turn `--json` mode on or off.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether `--json` is in effect.
pub fn json_mode() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Record the command's result (the files it wrote and its headline numbers) for `--json`; a later
/// call replaces an earlier one.
pub fn result(value: serde_json::Value) {
    if let Ok(mut r) = RESULT.lock() {
        *r = Some(value);
    }
}

/// The recorded result (an empty object when the command recorded none).
pub fn take_result() -> serde_json::Value {
    RESULT.lock().ok().and_then(|mut r| r.take()).unwrap_or_else(|| serde_json::json!({}))
}

/// A bad command line found before any work started: a flag value out of range, an input that does
/// not exist, a device this build cannot use (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as an `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The command refused to overwrite or mix up data already on disk (exit code 3), raised by the
/// command line itself (the library crates have their own `Refused` variants).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Exit code 0: the command did what it was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code 1: the work failed (I/O, a diverged training, a bad file met along the way).
pub const EXIT_FAILED: u8 = 1;
/// Exit code 2: the command line is wrong (flags, flag values, missing inputs); nothing was done.
pub const EXIT_USAGE: u8 = 2;
/// Exit code 3: refused to protect data (a run or experiment of another config or memgen version).
pub const EXIT_REFUSED: u8 = 3;

/// The exit code of a failed command, from the typed errors in its chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<UsageError>() || cause.is::<clap::Error>() {
            return EXIT_USAGE;
        }
        if cause.is::<Refused>()
            || matches!(cause.downcast_ref(), Some(memgen_io::FileError::Refused { .. }))
            || cause.downcast_ref::<memgen_diffusion::Error>().is_some_and(|e| e.is_refused())
            || cause.downcast_ref::<memgen_experiment::Error>().is_some_and(|e| e.is_refused())
        {
            return EXIT_REFUSED;
        }
    }
    EXIT_FAILED
}

/// Check that the input `path` given as `flag` exists, else a usage error saying what was expected.
pub fn input(flag: &str, path: &Path, expected: &str) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    Err(usage(format!("{flag} {}: no such file or directory (expected {expected})", path.display())))
}

/// The device named by `--device`: `cpu`, or `cuda:N` in a build with the `cuda` feature and a GPU N
/// ([`memgen_diffusion::run::parse_device`]). Anything else is a usage error naming the flag, raised
/// before any work.
pub fn device(name: &str) -> anyhow::Result<candle::Device> {
    memgen_diffusion::run::parse_device(name).map_err(|why| usage(format!("--device {name}: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn exit_codes_follow_the_typed_error_under_any_context() {
        let refused: anyhow::Error =
            memgen_diffusion::Error::refused("run/config.json", "another config").into();
        assert_eq!(exit_code(&refused.context("training run")), EXIT_REFUSED);
        let exp: anyhow::Error =
            memgen_experiment::Error::from(memgen_io::FileError::refused("exp", "changed")).into();
        assert_eq!(exit_code(&exp), EXIT_REFUSED);
        let exp: anyhow::Error = memgen_io::FileError::refused("exp", "changed").into();
        assert_eq!(exit_code(&exp), EXIT_REFUSED);
        let bad = Err::<(), _>(usage("--device gpu: expected cpu")).context("sampling").unwrap_err();
        assert_eq!(exit_code(&bad), EXIT_USAGE);
        let io: anyhow::Error =
            memgen_diffusion::Error::io("x", std::io::Error::from(std::io::ErrorKind::NotFound)).into();
        assert_eq!(exit_code(&io), EXIT_FAILED);
        assert_eq!(exit_code(&anyhow::anyhow!("the loss is NaN")), EXIT_FAILED);
    }

    #[test]
    fn devices_are_checked_before_any_work() {
        assert!(matches!(device("cpu"), Ok(candle::Device::Cpu)));
        for bad in ["gpu", "cuda", "cuda:x", "CPU"] {
            let err = device(bad).unwrap_err();
            assert_eq!(exit_code(&err), EXIT_USAGE, "{bad}");
            assert!(err.to_string().contains(&format!("--device {bad}")), "{err}");
        }
        if !cfg!(feature = "cuda") {
            let err = device("cuda:0").unwrap_err();
            assert!(err.to_string().contains("--features cuda"), "{err}");
            assert_eq!(exit_code(&err), EXIT_USAGE);
        }
    }
}
