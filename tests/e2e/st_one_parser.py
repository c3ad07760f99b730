"""schemathesis' `st` command with `ast.parse` taken by one thread at a time.

With `--workers 2`, hypothesis (under schemathesis) describes the lambdas of its strategies by
parsing their source with `ast.parse`, from both worker threads. On CPython 3.11 the AST
constructor's recursion counter lives in per-interpreter state, which two threads parsing at
once share, and one of them fails with a spurious `SystemError: AST constructor recursion
depth mismatch` (python/cpython#106905 and its reports): a "Runtime Error" in schemathesis'
report that is not about our API. A lock around `ast.parse` removes the race and nothing else.

Usage: python -m tests.e2e.st_one_parser <st arguments>
"""

from __future__ import annotations

import ast
import sys
import threading
from typing import Any

_parse = ast.parse
_one_at_a_time = threading.Lock()


def _serial_parse(*args: Any, **kwargs: Any) -> Any:
    with _one_at_a_time:
        return _parse(*args, **kwargs)


if __name__ == "__main__":
    ast.parse = _serial_parse
    from schemathesis.cli import schemathesis

    sys.argv[0] = "st"
    sys.exit(schemathesis())
