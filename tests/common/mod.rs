//! Running the `memgen` binary as a user would, for the end-to-end tests.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Run memgen with `args` (2 threads).
pub fn memgen(args: &[&str]) -> Output {
    memgen_env(args, &[])
}

/// Run memgen with `args` and extra environment variables.
pub fn memgen_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memgen"));
    cmd.args(args).env("RAYON_NUM_THREADS", "2").env_remove("HF_HUB_OFFLINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("memgen runs")
}

/// Its stdout, after asserting success.
pub fn ok(out: &Output) -> String {
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "memgen failed\nstdout: {so}\nstderr: {se}");
    so.into_owned()
}

/// Its stderr, after asserting the exit code of a refused command (2).
pub fn fails(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit code 2, stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

