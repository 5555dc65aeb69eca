//! Tests of the command-line definitions: the help examples and every planned job parse, and the
//! typed fields of a planned job reach their arguments.

use super::*;
use clap::{CommandFactory, FromArgMatches};

/// The example command lines of an `Examples:` section, as words after `memgen`: a trailing
/// `# comment`, leading `VAR=value` assignments and a `cargo run --release --` prefix are removed;
/// lines that run something else (a script) are skipped.
fn example_lines(after_help: &str) -> Vec<Vec<String>> {
    let Some((_, section)) = after_help.split_once("Examples:\n") else { return Vec::new() };
    let mut lines = Vec::new();
    for line in section.lines() {
        if line.trim().is_empty() {
            break;
        }
        let line = line.split(" #").next().unwrap_or_default();
        let mut words: Vec<&str> = line.split_whitespace().skip_while(|w| w.contains('=')).collect();
        if words.starts_with(&["cargo", "run", "--release", "--"]) {
            words.splice(0..4, ["memgen"]);
        }
        if words.first() == Some(&"memgen") {
            lines.push(words.into_iter().map(String::from).collect());
        }
    }
    lines
}

/// Every leaf subcommand below `cmd`, with its path of names.
fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|c| c.get_name() != "help").collect();
    if subs.is_empty() {
        out.push((path, cmd.clone()));
        return;
    }
    for sub in subs {
        let mut p = path.clone();
        p.push(sub.get_name().to_string());
        leaves(sub, p, out);
    }
}

#[test]
fn example_lines_are_cleaned_as_a_shell_would_read_them() {
    let text =
        "Examples:\n  RAYON_NUM_THREADS=2 memgen bench --steps 1   # note\n  cargo run --release -- demo\n  \
                sh scripts/x.sh\n\nSee also: memgen other";
    let got = example_lines(text);
    assert_eq!(got, vec![vec!["memgen", "bench", "--steps", "1"], vec!["memgen", "demo"]]);
}

#[test]
fn every_subcommand_has_examples_that_parse_as_that_subcommand() {
    let root = Cli::command();
    let mut all = Vec::new();
    leaves(&root, Vec::new(), &mut all);
    assert!(all.len() >= 19, "found only {} subcommands", all.len());
    for (path, cmd) in &all {
        let name = path.join(" ");
        let help = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(help.contains("Examples:\n"), "`memgen {name} --help` has no Examples: section");
        let examples = example_lines(&help);
        assert!(!examples.is_empty(), "`memgen {name} --help` has no example starting with memgen");
        for words in examples {
            let line = words.join(" ");
            let matches = Cli::command()
                .try_get_matches_from(&words)
                .unwrap_or_else(|e| panic!("example of `memgen {name}` does not parse: {line}\n{e}"));
            assert_eq!(command_name(&matches), name, "example `{line}` runs another subcommand");
            Cli::from_arg_matches(&matches).unwrap_or_else(|e| panic!("{line}: {e}"));
            // The repository's own files that examples name are there
            // (`models/unet-tiny.toml:16:32` names models/unet-tiny.toml).
            let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            for file in words.iter().map(|w| w.split(':').next().unwrap_or_default()) {
                if ["models/", "experiments/", "datasets/"].iter().any(|d| file.starts_with(d)) {
                    assert!(
                        repo.join(file).is_file(),
                        "example `{line}` names {file}, not in the repository"
                    );
                }
            }
        }
    }
    let top = root.get_after_help().map(|h| h.to_string()).unwrap_or_default();
    assert!(top.contains("Exit codes:"), "memgen --help does not list the exit codes");
    for words in example_lines(&top) {
        Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{}: {e}", words.join(" ")));
    }
}

#[test]
fn the_global_json_flag_goes_anywhere_on_the_line() {
    for line in [["memgen", "--json", "data", "recipes"], ["memgen", "data", "recipes", "--json"]] {
        assert!(Cli::try_parse_from(line).unwrap().json, "{line:?}");
    }
    assert!(!Cli::try_parse_from(["memgen", "data", "recipes"]).unwrap().json);
}

/// Which subcommand each kind of planned job must run.
fn subcommand_of(kind: &memgen_experiment::JobKind) -> &'static str {
    use memgen_experiment::JobKind as K;
    match kind {
        K::Prepare => "data prepare",
        K::Train { .. } => "train",
        K::Compare { .. } | K::Oracle { .. } | K::LinearPair { .. } => "compare",
        K::DenoiseError { .. } => "denoise-error",
        K::Linear => "linear",
    }
}

#[test]
fn every_planned_job_parses_with_the_cli_definitions() {
    use memgen_experiment::{exec, Experiment, Plan};
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(repo.join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let mut checked = 0;
    for file in &files {
        let exp = Experiment::load(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Each shipped experiment as written, with the blind network (whose jobs add the blind
        // sampler's flags), and with both device keys set.
        let mut blind = exp.clone();
        blind.model = repo.join("models/blind-tiny.toml");
        let mut gpu = exp.clone();
        (gpu.train.device, gpu.sample.device) = (Some("cuda:1".into()), Some("cuda:2".into()));
        for (variant, exp) in [("", exp), (" (blind)", blind), (" (gpu)", gpu)] {
            let plan = Plan::new(&exp, file.parent().unwrap(), tmp.path());
            for job in &plan.jobs {
                for resume in [false, true] {
                    let mut words = vec!["memgen".to_string()];
                    words.extend(exec::argv(job, resume, 3));
                    let line = words.join(" ");
                    let what = format!("{}{variant}, job {}: `{line}`", file.display(), job.id);
                    let matches = Cli::command()
                        .try_get_matches_from(&words)
                        .unwrap_or_else(|e| panic!("{what} does not parse:\n{e}"));
                    assert_eq!(command_name(&matches), subcommand_of(&job.kind), "{what}");
                    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(cli.threads, Some(3), "{what}");
                    let command = exec::command(job, resume);
                    assert!(command_name(&matches).starts_with(command.subcommand()), "{what}");
                    let (_, sub) = matches.subcommand().unwrap();
                    fields_arrive(&command, sub, &what);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} command lines");
}

/// Every typed field of a planned command reaches the CLI argument it is meant for (clap's ids are
/// the argument structs' field names), with its value.
fn fields_arrive(command: &memgen_experiment::Command, m: &clap::ArgMatches, what: &str) {
    use memgen_experiment::command::{BaselinePair, Command as C, Sampling};
    use std::path::PathBuf;
    fn one<T: Clone + Send + Sync + 'static>(m: &clap::ArgMatches, id: &str) -> Option<T> {
        m.get_one::<T>(id).cloned()
    }
    let path = |id: &str| one::<PathBuf>(m, id);
    // An unset device writes no flag: the CLI's default, the CPU.
    let device = |d: &Option<String>| {
        assert_eq!(one::<String>(m, "device"), Some(d.clone().unwrap_or_else(|| "cpu".into())), "{what}");
    };
    let sampling = |s: &Sampling| {
        assert_eq!(one::<u64>(m, "noise_seed"), Some(s.noise_seed), "{what}");
        assert_eq!(one::<usize>(m, "count"), Some(s.count), "{what}");
    };
    match command {
        C::Prepare { source, out, .. } => {
            let (name, m) = m.subcommand().unwrap();
            assert_eq!(name, "prepare", "{what}");
            assert_eq!(one::<String>(m, "source").as_ref(), Some(source), "{what}");
            assert_eq!(one::<PathBuf>(m, "out").as_ref(), Some(out), "{what}");
        }
        C::Train(t) => {
            let (data, model, out) = (path("data"), path("model"), path("out"));
            assert_eq!(
                (data, model, out),
                (Some(t.data.clone()), Some(t.model.clone()), Some(t.out.clone())),
                "{what}"
            );
            let side = one::<train::SideArg>(m, "split").map(|s| format!("{s:?}").to_lowercase());
            assert_eq!(side, Some(t.split.to_string()), "{what}");
            assert_eq!(one::<usize>(m, "n"), Some(t.n), "{what}");
            assert_eq!(one::<usize>(m, "steps"), Some(t.steps), "{what}");
            assert_eq!(one::<u64>(m, "split_seed"), Some(t.split_seed), "{what}");
            assert_eq!(one::<u64>(m, "seed"), Some(t.seed), "{what}");
            assert_eq!(one::<usize>(m, "batch_size"), Some(t.batch_size), "{what}");
            assert_eq!(one::<usize>(m, "warmup"), Some(t.warmup), "{what}");
            assert_eq!(one::<usize>(m, "checkpoint_every"), Some(t.checkpoint_every), "{what}");
            assert_eq!(one::<f64>(m, "lr"), Some(t.lr), "{what}");
            assert_eq!(one::<f64>(m, "ema_decay"), Some(t.ema_decay), "{what}");
            assert_eq!(one::<f64>(m, "lr_halving"), t.lr_halving, "{what}");
            device(&t.device);
        }
        C::Resume { run, steps } => {
            assert_eq!(path("resume").as_ref(), Some(run), "{what}");
            assert_eq!(one::<usize>(m, "steps"), Some(*steps), "{what}");
        }
        C::Compare { run_a, run_b, sampling: s, device: d, out } => {
            assert_eq!((path("run_a"), path("run_b")), (Some(run_a.clone()), Some(run_b.clone())), "{what}");
            assert_eq!(path("out").as_ref(), Some(out), "{what}");
            sampling(s);
            device(d);
        }
        C::Baseline { pair, data, n, split_seed, sampling: s, out } => {
            let flag = |id: &str| m.get_flag(id);
            assert_eq!(
                (flag("oracle"), flag("linear")),
                (*pair == BaselinePair::Oracle, *pair == BaselinePair::Linear),
                "{what}"
            );
            assert_eq!((path("data").as_ref(), path("out").as_ref()), (Some(data), Some(out)), "{what}");
            assert_eq!(one::<usize>(m, "n"), Some(*n), "{what}");
            assert_eq!(one::<u64>(m, "split_seed"), Some(*split_seed), "{what}");
            sampling(s);
            device(&None);
        }
        C::DenoiseError { run, data, exclude_split, device: d, out, .. } => {
            assert_eq!((path("run").as_ref(), path("data").as_ref()), (Some(run), Some(data)), "{what}");
            assert_eq!(path("out").as_ref(), Some(out), "{what}");
            assert_eq!(one::<usize>(m, "exclude_split"), Some(*exclude_split), "{what}");
            device(d);
        }
        C::Linear { data, n, split_seed, out, .. } => {
            assert_eq!(one::<String>(m, "data"), Some(data.display().to_string()), "{what}");
            let sizes: Vec<usize> = m.get_many::<usize>("n").unwrap().copied().collect();
            assert_eq!(&sizes, n, "{what}");
            assert_eq!(one::<u64>(m, "split_seed"), Some(*split_seed), "{what}");
            assert_eq!(path("out").as_ref(), Some(out), "{what}");
        }
    }
}

#[test]
fn commands_run_on_the_worker_of_a_one_thread_pool_else_on_the_caller() {
    assert!(rayon::current_thread_index().is_none(), "a test thread is outside the pool");
    let (worker, threads) =
        super::on_global_pool(|| (rayon::current_thread_index(), rayon::current_num_threads()));
    assert_eq!(threads, rayon::current_num_threads());
    // One thread: on the worker, where loops run inline; more: on the caller, which hands the
    // batch shards over and sleeps.
    assert_eq!(worker.is_some(), threads == 1);
}
