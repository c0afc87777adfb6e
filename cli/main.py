"""The `tailor` entry point: `tailor query | like | tag` go to a running `tailor serve` when there is one
(:mod:`cli.client`, standard library only); everything else, and those without a server, load the full
command line (:mod:`cli.app`)."""

from __future__ import annotations

import sys


def main() -> None:
    from cli.client import run

    code = run(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from cli.app import main as full

    full()
