//! The progress display shared by the load generators: a bar on stderr, or nothing when
//! asked to be quiet or when stderr is not a terminal (so logs and pipes stay clean).

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar counting `unit`s out of `total` (a spinner when the total is unknown),
/// hidden when `quiet` or when stderr is not a terminal.
pub(crate) fn progress_bar(
    quiet: bool,
    total: Option<u64>,
    unit: &str,
) -> anyhow::Result<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(ProgressStyle::with_template(
            &format!(
                "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {unit} {{per_sec}} {{msg}}"
            ),
        )?),
        None => ProgressBar::new_spinner().with_style(ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{human_pos}} {unit} {{per_sec}} {{msg}}"
        ))?),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    Ok(bar)
}
