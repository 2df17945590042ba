//! `sitebuild completions <shell>` and `sitebuild man`: generated from the clap definition, so
//! they always match the flags.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;

pub(super) fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sitebuild", &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("cannot write the completion script")
}

pub(super) fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .context("cannot render the man page")?;
    std::io::stdout()
        .write_all(&out)
        .context("cannot write the man page")
}
