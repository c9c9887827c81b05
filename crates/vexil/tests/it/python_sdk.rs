//! The Python SDK's own checks (`sdks/python`), run by `cargo test`: `ruff check`, `mypy`
//! (strict) and `pytest`, whose real-server tests start this build's `vexil` binary. The
//! tools live in a virtual environment under the cargo target directory, created once and
//! rebuilt when `pyproject.toml` changes. Without a `python3` (3.9 or later, able to create
//! a virtual environment) the test says it is skipped and passes, unless
//! `VEXIL_REQUIRE_PYTHON=1` (CI), where that is a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_vexil");

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdks/python")
}

/// `target/sdk-python-venv`, next to cargo's own scratch directory for integration tests.
fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("../sdk-python-venv")
}

pub(crate) fn venv_tool(venv: &Path, tool: &str) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join(format!("{tool}.exe"))
    } else {
        venv.join("bin").join(tool)
    }
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `command`, failing the test with its output unless it succeeds.
pub(crate) fn run(what: &str, command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({})\n{}",
        output.status,
        text(&output)
    );
    output
}

/// The `python3` version as (major, minor), or why it is unusable (missing, too old, or
/// unable to create a virtual environment).
/// The Python of `target/<name>`, a venv with `packages` (pinned) installed once and
/// reinstalled when they or the Python version change; `None` after a visible notice that
/// `test` is skipped when there is no Python, which `VEXIL_REQUIRE_PYTHON=1` makes a failure.
pub(crate) fn package_venv(name: &str, test: &str, packages: &[&str]) -> Option<PathBuf> {
    let python = match python_version() {
        Ok(v) => v,
        Err(reason) if std::env::var("VEXIL_REQUIRE_PYTHON").as_deref() == Ok("1") => {
            panic!("VEXIL_REQUIRE_PYTHON=1 but {reason}")
        }
        Err(reason) => {
            // Written past libtest's output capture so that the skip is visible.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** {test} SKIPPED: it needs python3: {reason} ***\n"
            );
            return None;
        }
    };
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("..").join(name);
    let stamp = format!("python {}.{} {}", python.0, python.1, packages.join(" "));
    let stamp_file = venv.join("vexil-stamp.txt");
    if fs::read_to_string(&stamp_file).ok().as_deref() != Some(stamp.as_str()) {
        let _ = fs::remove_dir_all(&venv);
        create_venv(&venv, &format!("the {test}"), packages);
        fs::write(&stamp_file, stamp).expect("write the stamp");
    }
    Some(venv_tool(&venv, "python"))
}

pub(crate) fn python_version() -> Result<(u32, u32), String> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .map_err(|e| format!("python3 not found ({e})"))?;
    if !output.status.success() {
        return Err(format!(
            "python3 cannot create virtual environments (no venv/ensurepip module; on Debian: \
             apt install python3-venv)\n{}",
            text(&output)
        ));
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let parsed = version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    match parsed {
        Some(v) if v >= (3, 9) => Ok(v),
        Some(_) => Err(format!("python3 is {version}; the SDK needs 3.9 or later")),
        None => Err(format!("cannot read the python3 version from {version:?}")),
    }
}

/// Creates the virtual environment with the SDK (editable) and its test tools, unless the
/// one already there was made from the same `pyproject.toml` and Python.
fn ensure_venv(venv: &Path, python: (u32, u32)) {
    let pyproject =
        fs::read_to_string(sdk_dir().join("pyproject.toml")).expect("sdks/python/pyproject.toml");
    let stamp = format!("python {}.{}\n{pyproject}", python.0, python.1);
    let stamp_file = venv.join("vexil-stamp.txt");
    if fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp)
        && venv_tool(venv, "pytest").exists()
    {
        return;
    }
    eprintln!(
        "python_sdk: creating {} (first run, or pyproject.toml changed)",
        venv.display()
    );
    if venv.exists() {
        fs::remove_dir_all(venv).expect("remove the old virtual environment");
    }
    let sdk = format!("{}[test,openfeature]", sdk_dir().display());
    create_venv(venv, "the SDK's tests", ["-e", sdk.as_str()]);
    fs::write(&stamp_file, stamp).expect("write the virtual environment's stamp");
}

/// A new virtual environment at `venv` with `pip install` of `args` (for `what`).
fn create_venv<S: AsRef<std::ffi::OsStr>>(
    venv: &Path,
    what: &str,
    args: impl IntoIterator<Item = S>,
) {
    run(
        "python3 -m venv",
        Command::new("python3").arg("-m").arg("venv").arg(venv),
    );
    run(
        &format!("pip install for {what}"),
        Command::new(venv_tool(venv, "python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(args),
    );
}

#[test]
fn python_sdk_lints_types_and_tests() {
    let python = match python_version() {
        Ok(v) => v,
        Err(reason) if std::env::var("VEXIL_REQUIRE_PYTHON").as_deref() == Ok("1") => {
            panic!("VEXIL_REQUIRE_PYTHON=1 but {reason}")
        }
        Err(reason) => {
            eprintln!("skipped: the Python SDK's tests need python3 3.9 or later: {reason}");
            return;
        }
    };
    let venv = venv_dir();
    ensure_venv(&venv, python);
    let caches = venv.join("caches");
    let tool = |name: &str| {
        let mut command = Command::new(venv_tool(&venv, name));
        command
            .current_dir(sdk_dir())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("RUFF_CACHE_DIR", caches.join("ruff"))
            .env("MYPY_CACHE_DIR", caches.join("mypy"));
        command
    };
    run("ruff check (sdks/python)", tool("ruff").arg("check"));
    run("mypy --strict (sdks/python)", &mut tool("mypy"));
    let output = run(
        "pytest (sdks/python)",
        tool("pytest")
            .args(["-q", "-ra", "-p", "no:cacheprovider"])
            .env("VEXIL_BIN", BIN),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "python_sdk: {}",
        stdout.lines().last().unwrap_or("pytest printed nothing")
    );
}
