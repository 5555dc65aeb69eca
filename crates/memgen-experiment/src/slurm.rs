//! `memgen run --plan`: the jobs of an experiment as a manifest and Slurm job arrays, one array per
//! stage (each waiting for the previous one to succeed) and a final job that writes the report.
//!
//! ```text
//! ROOT/plan/manifest.json   every job: id, stage, command line, dependencies, output directory
//! ROOT/plan/<stage>.txt     the job ids of one stage, one per line (array task i runs line i + 1)
//! ROOT/plan/job.sh          one array task: memgen run EXPERIMENT --out ROOT --job <id>
//! ROOT/plan/report.sh       the final job: memgen run EXPERIMENT --out ROOT --report
//! ROOT/plan/submit.sh       submits the arrays and the report job with afterok dependencies
//! ```
//!
//! A task runs its job exactly as a local `memgen run` would (skipped when finished, a training
//! resumed from its checkpoint), so a failed or pre-empted array can simply be submitted again.

use crate::config::Experiment;
use crate::plan::{Plan, Stage};
use crate::{Error, Result};
use memgen_io::write_json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Single-quote `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Write the plan files for `plan` into `ROOT/plan`; `experiment` is the (absolute) path of the
/// experiment file the tasks re-read. Returns the path of submit.sh.
pub fn write_plan(exp: &Experiment, experiment: &Path, plan: &Plan) -> Result<PathBuf> {
    let dir = plan.root.join("plan");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let stages: Vec<(Stage, Vec<&str>)> = Stage::ALL
        .iter()
        .map(|&s| (s, plan.stage(s).map(|j| j.id.as_str()).collect::<Vec<_>>()))
        .filter(|(_, ids)| !ids.is_empty())
        .collect();
    let manifest = serde_json::json!({
        "experiment": experiment,
        "name": exp.name,
        "root": plan.root,
        "data_dir": plan.data_dir,
        "stages": stages.iter().map(|(s, ids)| serde_json::json!({"stage": s, "jobs": ids})).collect::<Vec<_>>(),
        "jobs": plan.jobs,
    });
    write_json(&dir.join("manifest.json"), &manifest)?;
    for (stage, ids) in &stages {
        let mut text = ids.join("\n");
        text.push('\n');
        memgen_io::write_atomic(&dir.join(format!("{}.txt", stage.name())), text.as_bytes())?;
    }
    let run = format!(
        "{} --threads {} run {} --out {}",
        quote(&exp.cluster.memgen),
        exp.cluster.threads,
        quote(&experiment.display().to_string()),
        quote(&plan.root.display().to_string())
    );
    let header = |name: &str| {
        let mut h = format!(
            "#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --cpus-per-task={}\n",
            exp.cluster.threads
        );
        let _ = writeln!(h, "#SBATCH --output={}/logs/slurm-%x-%A_%a.out", plan.root.display());
        for opt in &exp.cluster.sbatch {
            let _ = writeln!(h, "#SBATCH {opt}");
        }
        h.push_str("set -euo pipefail\n");
        h
    };
    let mut job = header(&format!("memgen-{}", exp.name));
    let _ = write!(
        job,
        "# usage (as an array task): sbatch --array=0-K job.sh STAGE\nstage=\"$1\"\n\
         id=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {}/\"$stage\".txt)\n\
         test -n \"$id\" || {{ echo \"no job $SLURM_ARRAY_TASK_ID in stage $stage\" >&2; exit 1; }}\n\
         exec {run} --job \"$id\"\n",
        quote(&dir.display().to_string())
    );
    write_script(&dir.join("job.sh"), &job)?;
    let mut report = header(&format!("memgen-{}-report", exp.name));
    let _ = writeln!(report, "exec {run} --report");
    write_script(&dir.join("report.sh"), &report)?;
    let mut submit = String::from("#!/bin/bash\n# Submit every stage of the experiment as a Slurm job array, then the report.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\ndep=()\n");
    for (stage, ids) in &stages {
        let extra = match stage {
            Stage::Train => &exp.cluster.train_sbatch,
            Stage::Evaluate => &exp.cluster.evaluate_sbatch,
            Stage::Data => &Vec::new(),
        };
        let extra = extra.iter().map(|o| quote(o)).collect::<Vec<_>>().join(" ");
        let _ = writeln!(
            submit,
            "id=$(sbatch --parsable \"${{dep[@]}}\" --array=0-{} {extra} job.sh {})\necho \"{}: job array $id ({} jobs)\"\ndep=(--dependency=afterok:\"${{id%%;*}}\")",
            ids.len() - 1,
            stage.name(),
            stage.name(),
            ids.len()
        );
    }
    submit.push_str("id=$(sbatch --parsable \"${dep[@]}\" report.sh)\necho \"report: job $id\"\n");
    let path = dir.join("submit.sh");
    write_script(&path, &submit)?;
    Ok(path)
}

fn write_script(path: &Path, text: &str) -> Result<()> {
    memgen_io::write_atomic(path, text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}
