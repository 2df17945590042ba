//! An error that knows which file (and line) it is about, so CI can annotate that spot
//! (`::error file=…,line=…::` on GitHub Actions). It displays as its message; find it in an
//! anyhow chain with [`find`].

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) file: PathBuf,
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Located {}

impl Located {
    pub(crate) fn new(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Located {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

/// The first located error in the chain, if any.
pub(crate) fn find(err: &anyhow::Error) -> Option<&Located> {
    err.chain().find_map(|e| e.downcast_ref::<Located>())
}
