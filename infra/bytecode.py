"""Bytecode in the Lambda bundle: compile every module of a deployment zip, in place.

    python -m infra.bytecode build/package/deployment.zip   # a zip `chalice package` wrote
    python -m infra.bytecode --cached                       # the zip `chalice deploy` uploads

`chalice package` and `chalice deploy` zip app.py, chalicelib/ and the wheels' modules as
source only, and Lambda unpacks the bundle read-only into /var/task: without .pyc files every
cold start compiles each module it imports (the API's first request: ~570 ms from source
against ~190 ms from bytecode on the bench machine, bench/NOTES.md). This unpacks the zip,
compiles every .py with the running Python (the one chalice packages the functions for, so
the runtime's) into `__pycache__/*.cpython-3XX.pyc` with unchecked-hash invalidation (the
runtime never stats the source nor compares a timestamp, which the zip does not keep
faithfully anyway), keeps the .py files, and zips it again deterministically: entries sorted,
every date 1980-01-01, the modes as they were.

`--cached` compiles the package `chalice deploy` reuses: chalice names it in
`.chalice/deployments/` by a hash of requirements.txt, app.py, chalicelib/ and vendor/, and
uploads it as it is when it exists, so `make deploy` first has `chalice package` build it and
then compiles it here. A file that does not compile (some wheels ship Python 2 or template
`.py` files no import reaches) is left as source and counted on stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import py_compile
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644 << 16  # a regular file, rw-r--r--, for the .pyc entries


def compile_zip(path: Path) -> tuple[int, int]:
    """Add unchecked-hash bytecode of every .py in the zip at `path`, rewriting it in place.

    Returns (the .py files compiled, the .py files that did not compile).
    """
    with tempfile.TemporaryDirectory(prefix="nexus-bytecode-") as tmp:
        tree = Path(tmp) / "bundle"
        modes: dict[str, int] = {}
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                modes[info.filename] = info.external_attr
                archive.extract(info, tree)
        sources = [name for name in modes if name.endswith(".py")]
        failed = 0
        for name in sources:
            source = tree / name
            target = importlib.util.cache_from_source(str(source))
            try:
                py_compile.compile(
                    str(source),
                    cfile=target,
                    dfile=name,
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
            except (py_compile.PyCompileError, SyntaxError, ValueError):
                failed += 1
                continue
            modes.setdefault(Path(target).relative_to(tree).as_posix(), FILE_MODE)
        rewritten = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(modes):
                info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
                info.external_attr = modes[name] or FILE_MODE
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, (tree / name).read_bytes())
        rewritten.replace(path)
    return len(sources) - failed, failed


def cached_package(project_dir: Path = ROOT) -> Path:
    """The zip `chalice deploy` uploads for the project as it is now (it may not exist yet)."""
    from chalice.deploy.packager import LambdaDeploymentPackager
    from chalice.utils import UI, OSUtils

    config = json.loads((project_dir / ".chalice" / "config.json").read_text())
    packager = LambdaDeploymentPackager(
        osutils=OSUtils(),
        dependency_builder=None,  # type: ignore[arg-type]  # naming the zip builds nothing
        ui=UI(),
        architecture=config.get("lambda_architecture", "x86_64"),
    )
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return Path(packager.deployment_package_filename(str(project_dir), runtime))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bytecode", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("zip", nargs="?", type=Path, help="a deployment zip to compile in place")
    where.add_argument(
        "--cached", action="store_true", help="the zip chalice deploy reuses from .chalice/"
    )
    args = parser.parse_args(argv)
    path: Path = cached_package() if args.cached else args.zip
    if not path.is_file():
        hint = " (run chalice package first: it builds it)" if args.cached else ""
        print(f"no deployment zip at {path}{hint}", file=sys.stderr)
        return 1
    compiled, failed = compile_zip(path)
    print(f"{path}: {compiled} modules compiled to bytecode", file=sys.stderr)
    if failed:
        print(f"{path}: {failed} .py files do not compile and stay source only", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
