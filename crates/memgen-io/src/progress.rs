//! The progress bars of long stages: one look for all of them,
//! `<what> [elapsed] ████░░ pos/len unit (eta) message`, drawn on stderr, hidden when asked to be quiet
//! (indicatif itself hides them when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `what` (e.g. "training", "sampling"), counting `unit` (empty for
/// none), or a hidden bar when `quiet`.
pub fn bar(len: u64, what: &str, unit: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(style(what, unit));
    bar
}

/// The style of [`bar`], for bars that a caller adds to an `indicatif::MultiProgress` itself.
pub fn style(what: &str, unit: &str) -> ProgressStyle {
    let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
    let what = what.replace('{', "{{").replace('}', "}}");
    let template =
        format!("{what:<8} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}}{unit} ({{eta}}) {{msg}}");
    ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A bar counting `len` bytes of a transfer labelled `what`: `what [elapsed] ████░░ 1.2 MiB/4 MiB (eta)`.
pub fn bytes_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let what = what.replace('{', "{{").replace('}', "}}");
    let template = format!("{what} [{{elapsed_precise}}] {{wide_bar}} {{bytes}}/{{total_bytes}} ({{eta}})");
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_bars_are_hidden_and_others_count() {
        assert!(bar(10, "training", "", true).is_hidden());
        let b = bar(10, "sampling {x}", "steps", false);
        b.inc(3);
        assert_eq!((b.position(), b.length()), (3, Some(10)));
        assert_eq!(bytes_bar(100, "a {file}").length(), Some(100));
    }
}
