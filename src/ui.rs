//! Terminal output: step lines, `-q` and `-v`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Ui {
    pub(crate) quiet: bool,
    pub(crate) verbose: bool,
    tty: bool,
}

impl Ui {
    pub(crate) fn new(quiet: bool, verbose: bool) -> Ui {
        Ui {
            quiet,
            verbose,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// A step worth telling (hidden with -q).
    pub(crate) fn step(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            self.clear();
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Detail shown only with -v.
    pub(crate) fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose {
            self.clear();
            eprintln!("  {}", msg.as_ref().trim_end());
        }
    }

    /// Erase the progress line.
    pub(crate) fn clear(&self) {
        if self.tty && !self.quiet && !self.verbose {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }

    /// The final result line (always shown, on stdout).
    pub(crate) fn result(&self, msg: impl AsRef<str>) {
        self.clear();
        println!("{}", msg.as_ref());
    }
}

/// Where an operation's time went, phase by phase (`watch` and `deploy` print it with `-v`).
pub(crate) struct Phases {
    last: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Phases {
    pub(crate) fn start() -> Phases {
        Phases {
            last: Instant::now(),
            done: Vec::new(),
        }
    }

    pub(crate) fn mark(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.done.push((phase, now - self.last));
        self.last = now;
    }

    pub(crate) fn line(&self) -> String {
        let parts: Vec<String> = self
            .done
            .iter()
            .map(|(p, d)| format!("{p} {:.1} ms", d.as_secs_f64() * 1000.0))
            .collect();
        format!("timings: {}", parts.join(", "))
    }
}
