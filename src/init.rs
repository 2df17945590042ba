//! `sitebuild init`: look at a repository, find the site (or the static site generator that
//! makes it) and plan the files that deploy it: `sitebuild.toml`, a GitHub workflow that uses
//! the sitebuild Action and/or a `.gitlab-ci.yml` that includes the sitebuild CI/CD component.
//!
//! Pure logic: [`plan`] only reads the repository, [`write`] is the one function that writes,
//! and it never overwrites an existing file unless asked to.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The GitHub Action the generated workflow uses.
pub(crate) const ACTION: &str = "sitebuild/sitebuild@v1";

/// The GitLab CI/CD component the generated `.gitlab-ci.yml` includes (at this tool's version).
pub(crate) fn component() -> String {
    format!(
        "$CI_SERVER_FQDN/sitebuild/sitebuild/sitebuild@{}",
        crate::VERSION
    )
}

/// Which CI configuration `init` writes (`--ci github|gitlab|both`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CiKind {
    /// `.github/workflows/sitebuild.yml`
    Github,
    /// `.gitlab-ci.yml`
    Gitlab,
    /// Both files.
    Both,
}

impl CiKind {
    /// Without `--ci`: GitLab when the repository already has a `.gitlab-ci.yml` or its git
    /// remote is on a GitLab host, else GitHub.
    pub(crate) fn guess(repo: &Path) -> CiKind {
        let remote = std::fs::read_to_string(repo.join(".git/config")).unwrap_or_default();
        if repo.join(".gitlab-ci.yml").exists() || remote.contains("gitlab") {
            CiKind::Gitlab
        } else {
            CiKind::Github
        }
    }
}

/// What makes the site: files committed as they are, or a static site generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generator {
    /// Hand-written (or already built) files: no build step.
    Static,
    /// Hugo (`hugo.toml`, or `config.toml`/`config.yaml` with `baseURL`) → `public/`.
    Hugo,
    /// Jekyll (`_config.yml`) → `_site/`.
    Jekyll,
    /// Eleventy (`.eleventy.js`, `eleventy.config.*`) → `_site/`.
    Eleventy,
    /// Astro (`astro.config.*`) → `dist/`.
    Astro,
    /// Vite (`vite.config.*`) → `dist/`.
    Vite,
}

impl Generator {
    /// Human name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Generator::Static => "static files",
            Generator::Hugo => "Hugo",
            Generator::Jekyll => "Jekyll",
            Generator::Eleventy => "Eleventy",
            Generator::Astro => "Astro",
            Generator::Vite => "Vite",
        }
    }

    /// The directory the generator writes the site to (by default).
    fn output_dir(self) -> &'static str {
        match self {
            Generator::Static => ".",
            Generator::Hugo => "public",
            Generator::Jekyll | Generator::Eleventy => "_site",
            Generator::Astro | Generator::Vite => "dist",
        }
    }

    /// Config files that identify the generator (Hugo's `config.*` only count with `baseURL`).
    fn markers(self) -> &'static [&'static str] {
        match self {
            Generator::Static => &[],
            Generator::Hugo => &[
                "hugo.toml",
                "hugo.yaml",
                "hugo.yml",
                "hugo.json",
                "config.toml",
                "config.yaml",
                "config.yml",
            ],
            Generator::Jekyll => &["_config.yml", "_config.yaml"],
            Generator::Eleventy => &[
                ".eleventy.js",
                "eleventy.config.js",
                "eleventy.config.cjs",
                "eleventy.config.mjs",
                "eleventy.config.ts",
            ],
            Generator::Astro => &[
                "astro.config.mjs",
                "astro.config.js",
                "astro.config.ts",
                "astro.config.cjs",
                "astro.config.mts",
            ],
            Generator::Vite => &[
                "vite.config.js",
                "vite.config.ts",
                "vite.config.mjs",
                "vite.config.cjs",
                "vite.config.mts",
            ],
        }
    }
}

/// Generators in the order they are recognized (more specific first: an Astro project may
/// also carry a Vite config).
const GENERATORS: [Generator; 5] = [
    Generator::Hugo,
    Generator::Astro,
    Generator::Vite,
    Generator::Eleventy,
    Generator::Jekyll,
];

/// Directories searched for an `index.html` when no generator is recognized, in order; `.` is
/// the repository root.
pub(crate) const SITE_DIRS: [&str; 8] = [
    "public", "_site", "dist", "build", "out", "docs", "site", ".",
];

/// The site found in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Detected {
    /// What makes the site.
    pub generator: Generator,
    /// The config file that identified the generator (None for static files).
    pub marker: Option<String>,
    /// The directory to serve, relative to the repository (`.` for the root).
    pub site_dir: String,
    /// Shell command that builds the site (None: nothing to build).
    pub build_command: Option<String>,
}

/// One file `init` would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedFile {
    /// Path relative to the repository.
    pub path: PathBuf,
    /// Full contents.
    pub contents: String,
}

/// Everything `init` would do in a repository; [`write`] carries it out.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The repository directory.
    pub repo: PathBuf,
    /// The project name written to `sitebuild.toml` (from the directory name).
    pub name: String,
    /// The detected site.
    pub detected: Detected,
    /// The files to write, in order.
    pub files: Vec<PlannedFile>,
    /// What to do next, for people (several lines).
    pub next: String,
}

/// Find the site in `repo`: a generator's config first (its output directory need not exist
/// yet), else the first of [`SITE_DIRS`] holding an `index.html`.
pub(crate) fn detect(repo: &Path) -> Result<Detected> {
    if !repo.is_dir() {
        bail!("{} is not a directory", repo.display());
    }
    for generator in GENERATORS {
        for marker in generator.markers() {
            let path = repo.join(marker);
            if !path.is_file() {
                continue;
            }
            if generator == Generator::Hugo && marker.starts_with("config.") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if !text.contains("baseURL") && !text.contains("baseurl") {
                    continue;
                }
            }
            return Ok(Detected {
                generator,
                marker: Some(marker.to_string()),
                site_dir: generator.output_dir().to_string(),
                build_command: Some(build_command(repo, generator)),
            });
        }
    }
    for dir in SITE_DIRS {
        if repo.join(dir).join("index.html").is_file() {
            return Ok(Detected {
                generator: Generator::Static,
                marker: None,
                site_dir: dir.to_string(),
                build_command: None,
            });
        }
    }
    let mut looked = String::new();
    for generator in GENERATORS {
        let _ = writeln!(
            looked,
            "  - {} config: {}",
            generator.name(),
            generator.markers().join(", ")
        );
    }
    for dir in SITE_DIRS {
        let _ = writeln!(
            looked,
            "  - {}",
            Path::new(dir).join("index.html").display()
        );
    }
    bail!(
        "no site found in {}: no static site generator config and no index.html. Looked for:\n{looked}\
         Put the site's files (with an index.html) in one of those directories, or run `sitebuild init` \
         in the repository that holds the generator's config, or write sitebuild.toml by hand \
         with `site_dir = \"<dir>\"`.",
        repo.display()
    )
}

/// The command that builds a generator's site in CI.
fn build_command(repo: &Path, generator: Generator) -> String {
    let npm_install = if repo.join("package-lock.json").is_file() {
        "npm ci"
    } else {
        "npm install"
    };
    match generator {
        Generator::Static => String::new(),
        Generator::Hugo => "hugo --minify".into(),
        Generator::Jekyll => {
            if repo.join("Gemfile").is_file() {
                "bundle exec jekyll build".into()
            } else {
                "jekyll build".into()
            }
        }
        Generator::Eleventy => {
            if repo.join("package.json").is_file() {
                format!("{npm_install} && npx @11ty/eleventy")
            } else {
                "npx @11ty/eleventy".into()
            }
        }
        Generator::Astro | Generator::Vite => format!("{npm_install} && npm run build"),
    }
}

/// A project name sitebuild accepts (lowercase letters, digits, `-_.`, at most 48, starting
/// with a letter or digit), made from the repository directory's name.
pub(crate) fn project_name(repo: &Path) -> String {
    let base = repo
        .canonicalize()
        .unwrap_or_else(|_| repo.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mapped: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(48)
        .collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "site".into()
    } else {
        trimmed
    }
}

/// Plan `init` for `repo`: detect the site and render every file for `ci`. Reads only.
pub(crate) fn plan(repo: &Path, ci: CiKind) -> Result<Plan> {
    let detected = detect(repo)?;
    let name = project_name(repo);
    let mut files = vec![PlannedFile {
        path: PathBuf::from("sitebuild.toml"),
        contents: sitebuild_toml(&name, &detected),
    }];
    if matches!(ci, CiKind::Github | CiKind::Both) {
        files.push(PlannedFile {
            path: PathBuf::from(".github/workflows/sitebuild.yml"),
            contents: github_workflow(repo, &detected),
        });
    }
    if matches!(ci, CiKind::Gitlab | CiKind::Both) {
        files.push(PlannedFile {
            path: PathBuf::from(".gitlab-ci.yml"),
            contents: gitlab_ci(&detected),
        });
    }
    let next = next_steps(&detected, ci, &files);
    Ok(Plan {
        repo: repo.to_path_buf(),
        name,
        detected,
        files,
        next,
    })
}

/// Write the plan's files. An existing file is an error naming it unless `force`; nothing is
/// written when any file is in the way. Returns the paths written.
pub(crate) fn write(plan: &Plan, force: bool) -> Result<Vec<PathBuf>> {
    if !force {
        for f in &plan.files {
            let path = plan.repo.join(&f.path);
            if path.exists() || path.is_symlink() {
                bail!(
                    "{} already exists: nothing was written. Rerun with --force to overwrite it \
                     (or move it away first).",
                    path.display()
                );
            }
        }
    }
    let mut written = Vec::new();
    for f in &plan.files {
        let path = plan.repo.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &f.contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn sitebuild_toml(name: &str, d: &Detected) -> String {
    let origin = match (&d.marker, &d.build_command) {
        (Some(marker), Some(cmd)) => format!(
            "# {} site ({marker}): `{cmd}` writes it to {}/.\n",
            d.generator.name(),
            d.site_dir
        ),
        _ => format!("# Static files in {}/.\n", d.site_dir),
    };
    format!(
        "# sitebuild settings (written by `sitebuild init`); every key is optional, see\n\
         # sitebuild's README → Configuration. Flags and SITEBUILD_* variables override them.\n\
         {origin}name = \"{name}\"\n\
         site_dir = \"{}\"\n",
        d.site_dir
    )
}

/// GitHub steps that install the generator's toolchain and build the site (indented for a job).
fn github_build_steps(repo: &Path, d: &Detected) -> String {
    let Some(cmd) = &d.build_command else {
        return String::new();
    };
    let setup = match d.generator {
        Generator::Static => String::new(),
        Generator::Hugo => "      - name: Install Hugo\n        run: sudo apt-get update -qq && sudo apt-get install -y -qq hugo\n".to_string(),
        Generator::Jekyll => {
            if repo.join("Gemfile").is_file() {
                "      - uses: ruby/setup-ruby@v1\n        with:\n          ruby-version: \"3.3\"\n          bundler-cache: true\n".to_string()
            } else {
                "      - uses: ruby/setup-ruby@v1\n        with:\n          ruby-version: \"3.3\"\n      - run: gem install jekyll\n".to_string()
            }
        }
        Generator::Eleventy | Generator::Astro | Generator::Vite => {
            let cache = if repo.join("package-lock.json").is_file() {
                "\n          cache: npm"
            } else {
                ""
            };
            format!("      - uses: actions/setup-node@v5\n        with:\n          node-version: 22{cache}\n")
        }
    };
    let env = if d.generator == Generator::Jekyll {
        "        env:\n          JEKYLL_ENV: production\n"
    } else {
        ""
    };
    format!(
        "{setup}      - name: Build the site ({})\n{env}        run: {cmd}\n",
        d.generator.name()
    )
}

fn github_workflow(repo: &Path, d: &Detected) -> String {
    let build = github_build_steps(repo, d);
    let remote = "          docker-host: ${{ secrets.SITEBUILD_DOCKER_HOST }}\n          \
                  ssh-key: ${{ secrets.SITEBUILD_SSH_KEY }}\n          \
                  known-hosts: ${{ secrets.SITEBUILD_KNOWN_HOSTS }}\n";
    format!(
        r"# Deploy the site with sitebuild (written by `sitebuild init`): every push to main goes live;
# every pull request gets a preview (its URL on the pull request, removed when it closes), or,
# without SITEBUILD_DOCKER_HOST, builds the site image as a check.
#
# Repository secrets:
#   SITEBUILD_DOCKER_HOST   the Docker engine to deploy to, e.g. ssh://deploy@example.com
#   SITEBUILD_SSH_KEY       private key of that user
#   SITEBUILD_KNOWN_HOSTS   the host's key: run `ssh-keyscan -p 22 example.com` on a machine you trust
name: sitebuild

on:
  push:
    branches: [main]
  pull_request:
    types: [opened, synchronize, reopened, closed]
  workflow_dispatch:

permissions:
  contents: read

jobs:
  deploy:
    if: github.event_name != 'pull_request'
    runs-on: ubuntu-latest
    timeout-minutes: 30
    environment:
      name: production
      url: ${{{{ steps.sitebuild.outputs.url }}}}
    concurrency:
      group: sitebuild-production
      cancel-in-progress: false
    steps:
      - uses: actions/checkout@v5
{build}      - name: Deploy
        id: sitebuild
        uses: {ACTION}
        with:
          command: deploy
{remote}
  preview:
    if: github.event_name == 'pull_request' && github.event.action != 'closed'
    runs-on: ubuntu-latest
    timeout-minutes: 30
    environment:
      name: preview-pr-${{{{ github.event.number }}}}
      url: ${{{{ steps.sitebuild.outputs.url }}}}
    concurrency:
      group: sitebuild-preview-${{{{ github.event.number }}}}
      cancel-in-progress: true
    env:
      SB_DOCKER_HOST: ${{{{ secrets.SITEBUILD_DOCKER_HOST }}}}
    steps:
      - uses: actions/checkout@v5
{build}      - name: Build the site image (no SITEBUILD_DOCKER_HOST, no preview)
        if: env.SB_DOCKER_HOST == ''
        uses: {ACTION}
        with:
          command: build
      - name: Preview
        id: sitebuild
        if: env.SB_DOCKER_HOST != ''
        uses: {ACTION}
        with:
          command: preview
{remote}
  preview-down:
    if: github.event_name == 'pull_request' && github.event.action == 'closed'
    runs-on: ubuntu-latest
    timeout-minutes: 10
    concurrency:
      group: sitebuild-preview-${{{{ github.event.number }}}}
      cancel-in-progress: false
    env:
      SB_DOCKER_HOST: ${{{{ secrets.SITEBUILD_DOCKER_HOST }}}}
    steps:
      - uses: actions/checkout@v5
      - name: Remove the preview
        if: env.SB_DOCKER_HOST != ''
        uses: {ACTION}
        with:
          command: preview-down
{remote}"
    )
}

fn gitlab_ci(d: &Detected) -> String {
    let component = component();
    let header = "# Deploy the site with sitebuild (written by `sitebuild init`): the default branch goes live,\n\
                  # merge requests build the site image (a check; nothing is deployed).\n\
                  #\n\
                  # CI/CD variables (masked, protected where possible):\n\
                  #   SITEBUILD_DOCKER_HOST   the Docker engine to deploy to, e.g. ssh://deploy@example.com\n\
                  #   SITEBUILD_SSH_KEY       private key of that user\n\
                  #   SITEBUILD_KNOWN_HOSTS   the host's key: run `ssh-keyscan -p 22 example.com` on a machine you trust\n\
                  #   SITE_URL                URL of the production environment\n";
    let Some(cmd) = &d.build_command else {
        return format!(
            "{header}\nstages: [build, deploy]\n\ninclude:\n  - component: {component}\n"
        );
    };
    let (image, setup) = match d.generator {
        Generator::Hugo => (
            "debian:bookworm-slim",
            "    - apt-get update -qq && apt-get install -y -qq hugo >/dev/null\n",
        ),
        Generator::Jekyll => ("ruby:3.3", "    - bundle install || gem install jekyll\n"),
        _ => ("node:22", ""),
    };
    let jekyll_env = if d.generator == Generator::Jekyll {
        "  variables:\n    JEKYLL_ENV: production\n"
    } else {
        ""
    };
    format!(
        r#"{header}
stages: [site, build, deploy]

include:
  - component: {component}

# Build the site ({name}); the sitebuild jobs take {dir}/ from its artifacts.
site:
  stage: site
  image: {image}
{jekyll_env}  script:
{setup}    - {cmd}
  artifacts:
    paths: [{dir}/]
    expire_in: 1 day
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
    - if: $CI_PIPELINE_SOURCE == "web"

build:
  needs: [site]

deploy:
  needs: [site, build]
"#,
        name = d.generator.name(),
        dir = d.site_dir,
    )
}

fn next_steps(d: &Detected, ci: CiKind, files: &[PlannedFile]) -> String {
    let list: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    let mut s = match &d.build_command {
        Some(cmd) => format!(
            "Found a {} site ({}, built to {}/).\nTry it locally: `{cmd} && sitebuild up`\n",
            d.generator.name(),
            d.marker.as_deref().unwrap_or_default(),
            d.site_dir
        ),
        None => format!(
            "Found static files in {}/.\nTry it locally: `sitebuild up`\n",
            d.site_dir
        ),
    };
    let where_ = match ci {
        CiKind::Github => "repository secrets",
        CiKind::Gitlab => "CI/CD variables",
        CiKind::Both => "repository secrets (GitHub) / CI/CD variables (GitLab)",
    };
    let _ = write!(
        s,
        "Then set the {where_} SITEBUILD_DOCKER_HOST (e.g. ssh://deploy@example.com), \
         SITEBUILD_SSH_KEY and SITEBUILD_KNOWN_HOSTS (`ssh-keyscan -p 22 example.com`), and:\n  \
         git add {} && git commit -m \"Deploy with sitebuild\" && git push",
        list.join(" ")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn repo_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::Builder::new()
            .prefix("my-site")
            .tempdir()
            .unwrap();
        for (path, body) in files {
            let p = d.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        d
    }

    fn file<'a>(plan: &'a Plan, path: &str) -> &'a str {
        &plan
            .files
            .iter()
            .find(|f| f.path == Path::new(path))
            .unwrap_or_else(|| panic!("{path} not planned"))
            .contents
    }

    /// The generated files, with the temp dir's random name suffix made stable.
    fn stable(plan: &Plan, path: &str) -> String {
        file(plan, path).replace(&plan.name, "my-site")
    }

    #[test]
    fn static_layouts_are_found_in_order() {
        for dir in SITE_DIRS {
            let index = Path::new(dir).join("index.html");
            let d = repo_with(&[(index.to_str().unwrap(), "<h1>hi</h1>")]);
            let found = detect(d.path()).unwrap();
            assert_eq!(found.site_dir, dir);
            assert_eq!(found.generator, Generator::Static);
            assert_eq!(found.build_command, None);
        }
        // public/ wins over docs/ and the root.
        let d = repo_with(&[
            ("index.html", "root"),
            ("docs/index.html", "docs"),
            ("public/index.html", "public"),
        ]);
        assert_eq!(detect(d.path()).unwrap().site_dir, "public");
        // A directory without index.html does not count.
        let d = repo_with(&[("public/app.js", ""), ("site/index.html", "")]);
        assert_eq!(detect(d.path()).unwrap().site_dir, "site");
    }

    #[test]
    fn generators_are_found_before_their_output_exists() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Generator, &'a str, &'a str);
        let cases: &[Case] = &[
            (
                &[("hugo.toml", "title = 'x'\n")],
                Generator::Hugo,
                "public",
                "hugo --minify",
            ),
            (
                &[("config.toml", "baseURL = 'https://example.org/'\n")],
                Generator::Hugo,
                "public",
                "hugo --minify",
            ),
            (
                &[("_config.yml", "title: x\n"), ("Gemfile", "gem 'jekyll'\n")],
                Generator::Jekyll,
                "_site",
                "bundle exec jekyll build",
            ),
            (
                &[("_config.yml", "title: x\n")],
                Generator::Jekyll,
                "_site",
                "jekyll build",
            ),
            (
                &[(".eleventy.js", ""), ("package.json", "{}")],
                Generator::Eleventy,
                "_site",
                "npm install && npx @11ty/eleventy",
            ),
            (
                &[("eleventy.config.mjs", "")],
                Generator::Eleventy,
                "_site",
                "npx @11ty/eleventy",
            ),
            (
                &[
                    ("astro.config.mjs", ""),
                    ("vite.config.ts", ""),
                    ("package-lock.json", "{}"),
                ],
                Generator::Astro,
                "dist",
                "npm ci && npm run build",
            ),
            (
                &[("vite.config.ts", ""), ("package-lock.json", "{}")],
                Generator::Vite,
                "dist",
                "npm ci && npm run build",
            ),
        ];
        for (files, generator, dir, cmd) in cases {
            let d = repo_with(files);
            let found = detect(d.path()).unwrap();
            assert_eq!(found.generator, *generator, "{files:?}");
            assert_eq!(found.site_dir, *dir, "{files:?}");
            assert_eq!(found.build_command.as_deref(), Some(*cmd), "{files:?}");
        }
        // A config.toml without baseURL is not Hugo's: the static index.html is used.
        let d = repo_with(&[("config.toml", "x = 1\n"), ("index.html", "")]);
        let found = detect(d.path()).unwrap();
        assert_eq!(
            (found.generator, found.site_dir.as_str()),
            (Generator::Static, ".")
        );
    }

    #[test]
    fn no_site_lists_every_place_it_looked() {
        let d = repo_with(&[("README.md", "hello")]);
        let err = format!("{:#}", detect(d.path()).unwrap_err());
        for dir in SITE_DIRS {
            let want = Path::new(dir).join("index.html");
            assert!(err.contains(&*want.to_string_lossy()), "{want:?}: {err}");
        }
        for g in GENERATORS {
            for m in g.markers() {
                assert!(err.contains(m), "{m}: {err}");
            }
        }
        assert!(err.contains("site_dir"), "{err}");
    }

    #[test]
    fn project_names_are_valid() {
        assert_eq!(project_name(Path::new("/x/My Site!")), "my-site");
        assert_eq!(project_name(Path::new("/x/__")), "site");
        assert_eq!(
            project_name(Path::new("/x/blog.example.org")),
            "blog.example.org"
        );
        assert_eq!(
            project_name(&PathBuf::from("/x").join("a".repeat(60))).len(),
            48
        );
    }

    #[test]
    fn write_refuses_existing_files_without_force() {
        let d = repo_with(&[("public/index.html", ""), ("sitebuild.toml", "mine\n")]);
        let p = plan(d.path(), CiKind::Both).unwrap();
        let err = format!("{:#}", write(&p, false).unwrap_err());
        assert!(
            err.contains("sitebuild.toml") && err.contains("--force"),
            "{err}"
        );
        assert!(!d.path().join(".gitlab-ci.yml").exists(), "nothing written");
        assert_eq!(
            std::fs::read_to_string(d.path().join("sitebuild.toml")).unwrap(),
            "mine\n"
        );
        let written = write(&p, true).unwrap();
        assert_eq!(written.len(), 3);
        for (f, path) in p.files.iter().zip(&written) {
            assert_eq!(std::fs::read_to_string(path).unwrap(), f.contents);
        }
        assert!(
            p.next
                .contains("git add sitebuild.toml .github/workflows/sitebuild.yml .gitlab-ci.yml")
        );
    }

    #[test]
    fn ci_kind_selects_files() {
        let d = repo_with(&[("index.html", "")]);
        let paths = |ci| {
            plan(d.path(), ci)
                .unwrap()
                .files
                .into_iter()
                .map(|f| f.path.display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(CiKind::Github),
            ["sitebuild.toml", ".github/workflows/sitebuild.yml"]
        );
        assert_eq!(paths(CiKind::Gitlab), ["sitebuild.toml", ".gitlab-ci.yml"]);
        assert_eq!(paths(CiKind::Both).len(), 3);
        assert!(<CiKind as clap::ValueEnum>::from_str("bitbucket", false).is_err());
        assert_eq!(
            <CiKind as clap::ValueEnum>::from_str("gitlab", false).unwrap(),
            CiKind::Gitlab
        );
        let gitlab = repo_with(&[
            ("index.html", ""),
            (".git/config", "url = git@gitlab.com:a/b.git\n"),
        ]);
        assert_eq!(CiKind::guess(gitlab.path()), CiKind::Gitlab);
        assert_eq!(CiKind::guess(d.path()), CiKind::Github);
    }

    #[test]
    fn snapshots_static() {
        let d = repo_with(&[("public/index.html", "")]);
        let p = plan(d.path(), CiKind::Both).unwrap();
        insta::assert_snapshot!("static_toml", stable(&p, "sitebuild.toml"));
        insta::assert_snapshot!(
            "static_github",
            stable(&p, ".github/workflows/sitebuild.yml")
        );
        insta::assert_snapshot!("static_gitlab", stable(&p, ".gitlab-ci.yml"));
        insta::assert_snapshot!("static_next", p.next.replace(&p.name, "my-site"));
    }

    #[test]
    fn snapshots_generators() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "hugo",
                &[("hugo.toml", "baseURL = 'https://example.org/'\n")],
            ),
            ("jekyll", &[("_config.yml", ""), ("Gemfile", "")]),
            ("eleventy", &[(".eleventy.js", ""), ("package.json", "{}")]),
            (
                "astro",
                &[("astro.config.mjs", ""), ("package-lock.json", "{}")],
            ),
            (
                "vite",
                &[("vite.config.js", ""), ("package-lock.json", "{}")],
            ),
        ];
        for (label, files) in cases {
            let d = repo_with(files);
            let p = plan(d.path(), CiKind::Both).unwrap();
            insta::assert_snapshot!(format!("{label}_toml"), stable(&p, "sitebuild.toml"));
            insta::assert_snapshot!(
                format!("{label}_github"),
                stable(&p, ".github/workflows/sitebuild.yml")
            );
            insta::assert_snapshot!(format!("{label}_gitlab"), stable(&p, ".gitlab-ci.yml"));
        }
    }

    /// Is `tool` installed? Missing: skip (a note), or fail under CI=true.
    fn tool(tool: &str) -> bool {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "{tool} is missing (scripts/test.sh installs it)"
            );
            eprintln!("SKIPPED: {tool} is missing (scripts/test.sh installs it)");
        }
        found
    }

    fn check(cmd: &mut Command) {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn generated_pipelines_lint_clean() {
        if !(tool("actionlint") && tool("check-jsonschema")) {
            return;
        }
        let cases: &[&[(&str, &str)]] = &[
            &[("index.html", "")],
            &[("hugo.toml", "")],
            &[("_config.yml", ""), ("Gemfile", "")],
            &[("_config.yml", "")],
            &[(".eleventy.js", "")],
            &[("astro.config.mjs", ""), ("package-lock.json", "{}")],
            &[("vite.config.js", "")],
        ];
        for files in cases {
            let d = repo_with(files);
            let written = write(&plan(d.path(), CiKind::Both).unwrap(), false).unwrap();
            let workflow = &written[1];
            let gitlab = &written[2];
            check(
                Command::new("actionlint")
                    .arg(workflow)
                    .current_dir(d.path()),
            );
            check(
                Command::new("check-jsonschema")
                    .args(["--builtin-schema", "vendor.github-workflows"])
                    .arg(workflow),
            );
            check(
                Command::new("check-jsonschema")
                    .args(["--builtin-schema", "vendor.gitlab-ci"])
                    .arg(gitlab),
            );
        }
    }
}
