"""The sandbox's ``revtops`` commands: ``sandbox serve``, ``demo`` and ``eval``.

Registered through the ``revtops.commands`` entry point of the ``revtops-sandbox`` distribution;
the product's CLI never imports this package by name (it finds it only when it is installed).
"""

from __future__ import annotations

import argparse

from revtops_sandbox.commands import demo, eval


def register(commands: argparse._SubParsersAction) -> None:
    demo.register(commands)
    eval.register(commands)
