"""Which Python `make` builds .venv with (scripts/find-python), and so the Lambda runtime.

Each test runs the script or make with a PATH and HOME of its own: fake pyenv trees whose
interpreters are links to the one running the tests (3.13), and a `python3.13` on PATH that
does not run, as pyenv's shim for a version not selected does not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIND_PYTHON = ROOT / "scripts" / "find-python"
# The interpreter under the tests' .venv: a 3.13, as `make` built it.
REAL_PYTHON = Path(sys._base_executable).resolve()
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
# What pyenv's shim does for a version that is installed but not selected.
SHIM = "#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n"


@pytest.fixture(autouse=True)
def _running_on_3_13() -> None:
    assert sys.version_info[:2] == (3, 13), "the tests run on .venv's Python, which is 3.13"


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def linked_python(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(REAL_PYTHON)
    return path


def find_python(home: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYENV_ROOT"}
    env.update(HOME=str(home), PATH=path)
    return subprocess.run([str(FIND_PYTHON)], env=env, capture_output=True, text=True)


def test_a_python3_13_on_path_that_runs_is_taken_first(tmp_path: Path) -> None:
    on_path = linked_python(tmp_path / "bin" / "python3.13")
    linked_python(tmp_path / "home" / ".pyenv" / "versions" / "3.13.1" / "bin" / "python3.13")
    found = find_python(tmp_path / "home", f"{tmp_path / 'bin'}:{SYSTEM_PATH}")
    assert (found.returncode, found.stdout.strip()) == (0, str(on_path))


def test_a_shim_that_does_not_run_is_passed_over_for_pyenvs_newest_3_13_without_pyenv(
    tmp_path: Path,
) -> None:
    executable(
        tmp_path / "bin" / "python3.13", "#!/bin/sh\necho 'pyenv: not selected' >&2\nexit 127\n"
    )
    versions = tmp_path / "home" / ".pyenv" / "versions"
    for version in ("3.13.2", "3.13.10", "3.12.9"):
        linked_python(versions / version / "bin" / f"python{version[:4]}")
    found = find_python(tmp_path / "home", f"{tmp_path / 'bin'}:{SYSTEM_PATH}")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(versions / "3.13.10" / "bin" / "python3.13")


def test_without_a_python_3_13_it_says_how_to_get_one_and_fails(tmp_path: Path) -> None:
    executable(tmp_path / "bin" / "python3.13", SHIM)
    linked_python(tmp_path / "home" / ".pyenv" / "versions" / "3.12.9" / "bin" / "python3.12")
    found = find_python(tmp_path / "home", f"{tmp_path / 'bin'}:{SYSTEM_PATH}")
    assert (found.returncode, found.stdout) == (1, "")
    assert "No Python 3.13 found" in found.stderr
    assert "pyenv install 3.13" in found.stderr
    assert "make PYTHON=/path/to/python3.13" in found.stderr


def project_copy(tmp_path: Path, venv_version: str) -> Path:
    """The Makefile and what .venv depends on, with a .venv whose python says `venv_version`
    and whose stamp is newer than its requirements."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copy(FIND_PYTHON, project / "scripts" / "find-python")
    executable(project / ".venv" / "bin" / "python", f"#!/bin/sh\necho {venv_version}\n")
    stamp = project / ".venv" / "bin" / ".installed"
    stamp.touch()
    newer = max((project / n).stat().st_mtime for n in ("Makefile", "pyproject.toml")) + 10
    os.utime(stamp, (newer, newer))
    return project


def make_plan(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-n", "--no-print-directory", ".venv/bin/.installed", f"PYTHON={REAL_PYTHON}"],
        cwd=project,
        capture_output=True,
        text=True,
    )


def test_make_removes_and_builds_again_a_venv_of_python_3_11(tmp_path: Path) -> None:
    plan = make_plan(project_copy(tmp_path, "3.11"))
    assert plan.returncode == 0, plan.stderr
    assert "rm -rf .venv" in plan.stdout
    assert f"{REAL_PYTHON} -m venv .venv" in plan.stdout


def test_make_keeps_an_up_to_date_venv_of_python_3_13(tmp_path: Path) -> None:
    plan = make_plan(project_copy(tmp_path, "3.13"))
    assert plan.returncode == 0, plan.stderr
    assert "-m venv" not in plan.stdout
    assert "is up to date" in plan.stdout


def test_make_which_python_prints_what_make_found_or_was_given(tmp_path: Path) -> None:
    given = subprocess.run(
        ["make", "-s", "--no-print-directory", "which-python", f"PYTHON={REAL_PYTHON}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert (given.returncode, given.stdout) == (0, f"{REAL_PYTHON}\n")
    found = subprocess.run(
        ["make", "-s", "--no-print-directory", "which-python"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr
    version = subprocess.run(
        [found.stdout.strip(), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    assert version.stdout == "(3, 13)\n"
