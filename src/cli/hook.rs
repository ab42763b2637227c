//! `keyward hook install [--pre-push]` and `keyward hook uninstall`: git
//! hooks that run `keyward scan --staged` before a commit and
//! `keyward scan --pre-push` before a push.
//!
//! The hooks directory is git's own answer (`git rev-parse --git-path
//! hooks`), so `core.hooksPath` and worktrees are respected. A hook that was
//! there before is kept beside ours as `<name>.keyward-chained` and runs
//! first; uninstalling puts it back. git's `--no-verify` skips both.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::EXIT_CLEAN;

/// The line that marks a hook file as ours.
const MARKER: &str = "# keyward-hook";
const CHAINED_SUFFIX: &str = ".keyward-chained";

#[derive(clap::Subcommand)]
pub enum HookCommand {
    /// Install the pre-commit hook, or with --pre-push the pre-push hook.
    Install {
        /// Install the pre-push hook instead of the pre-commit hook.
        #[arg(long)]
        pre_push: bool,
        /// The repository (default: the current directory).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
    /// Remove keyward's hooks and put back the hooks they chained.
    Uninstall {
        /// The repository (default: the current directory).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
}

pub fn run(command: HookCommand) -> Result<u8> {
    match command {
        HookCommand::Install { pre_push, repo } => {
            let name = if pre_push { "pre-push" } else { "pre-commit" };
            let path = install(&hooks_dir(&repo)?, name)?;
            println!("installed {}", path.display());
            Ok(EXIT_CLEAN)
        }
        HookCommand::Uninstall { repo } => {
            let dir = hooks_dir(&repo)?;
            for name in ["pre-commit", "pre-push"] {
                if let Some(message) = uninstall(&dir, name)? {
                    println!("{message}");
                }
            }
            Ok(EXIT_CLEAN)
        }
    }
}

/// Where git looks for hooks in `repo`, honouring `core.hooksPath`.
fn hooks_dir(repo: &Path) -> Result<PathBuf> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .context("running git (is it installed?)")?;
    if !output.status.success() {
        bail!(
            "{} is not in a git repository: {}",
            repo.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    Ok(if dir.is_absolute() { dir } else { repo.join(dir) })
}

fn install(dir: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let hook = dir.join(name);
    let chained = dir.join(format!("{name}{CHAINED_SUFFIX}"));
    if hook.exists() && !is_ours(&hook) {
        if chained.exists() {
            bail!(
                "{} exists and so does {}; move one of them away first",
                hook.display(),
                chained.display()
            );
        }
        std::fs::rename(&hook, &chained).with_context(|| format!("keeping the existing hook as {}", chained.display()))?;
    }
    let exe = std::env::current_exe().context("locating the keyward binary")?;
    std::fs::write(&hook, script(name, &exe)).with_context(|| format!("writing {}", hook.display()))?;
    make_executable(&hook)?;
    Ok(hook)
}

fn uninstall(dir: &Path, name: &str) -> Result<Option<String>> {
    let hook = dir.join(name);
    if !is_ours(&hook) {
        return Ok(None);
    }
    std::fs::remove_file(&hook).with_context(|| format!("removing {}", hook.display()))?;
    let chained = dir.join(format!("{name}{CHAINED_SUFFIX}"));
    if chained.exists() {
        std::fs::rename(&chained, &hook).with_context(|| format!("restoring {}", hook.display()))?;
        return Ok(Some(format!("removed keyward's {name} hook and restored the previous one")));
    }
    Ok(Some(format!("removed {}", hook.display())))
}

fn is_ours(hook: &Path) -> bool {
    std::fs::read_to_string(hook).is_ok_and(|text| text.lines().any(|l| l.starts_with(MARKER)))
}

/// A POSIX shell hook. The chained hook runs first and its failure stops
/// the commit as it did before; the pre-push input is read once and handed
/// to both. The binary that installed the hook is preferred, then `keyward`
/// on PATH, so a moved binary still works.
fn script(name: &str, exe: &Path) -> String {
    let exe = shell_quote(&exe.to_string_lossy());
    let head = format!(
        "#!/bin/sh\n{MARKER} {name}: installed by `keyward hook install`; `keyward hook uninstall` removes it.\n\
         chained=\"$0{CHAINED_SUFFIX}\"\nKEYWARD={exe}\n[ -x \"$KEYWARD\" ] || KEYWARD=keyward\n"
    );
    let body = if name == "pre-push" {
        "input=$(cat)\n\
         if [ -x \"$chained\" ]; then\n    printf '%s\\n' \"$input\" | \"$chained\" \"$@\" || exit $?\nfi\n\
         printf '%s\\n' \"$input\" | \"$KEYWARD\" scan --pre-push --quiet --remote \"$1\"\n"
    } else {
        "if [ -x \"$chained\" ]; then\n    \"$chained\" \"$@\" || exit $?\nfi\n\
         exec \"$KEYWARD\" scan --staged --quiet\n"
    };
    head + body
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}
