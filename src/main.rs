use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sitebuild::cli::Cli::parse();
    match sitebuild::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if let Some(annotation) = sitebuild::ci::annotation(&err) {
                println!("{annotation}");
            }
            // The whole chain, once: "error: <what failed>\n  caused by: <why>".
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
