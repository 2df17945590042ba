use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sitebuild::cli::Cli::parse();
    match sitebuild::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole chain, once: "error: <what failed>\n  caused by: <why>".
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
