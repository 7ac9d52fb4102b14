"""``revtops notebooks list|copy``: the stock notebooks shipped with the package."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from revtops_kernel.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    notebooks = commands.add_parser(
        "notebooks", help="the stock notebooks (app, sync, reports, tutorial)"
    )
    sub = notebooks.add_subparsers(
        title="notebooks commands", metavar="NOTEBOOKS_COMMAND", required=True
    )
    listed = sub.add_parser("list", help="their names (what a workflow takes) and where they are")
    listed.set_defaults(handler=cmd_notebooks_list)
    copy = sub.add_parser("copy", help="copy them into a directory, to edit")
    copy.add_argument("directory", type=Path, help="where to put the copies (created)")
    copy.add_argument("--overwrite", action="store_true", help="replace files already there")
    copy.set_defaults(handler=cmd_notebooks_copy)


def cmd_notebooks_list(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.notebooks import stock_directory, stock_names

    print(f"stock notebooks in {stock_directory()}:")
    for name in stock_names():
        print(f"  {name}")
    return 0


def cmd_notebooks_copy(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.notebooks import copy_stock_notebooks, stock_names

    written = copy_stock_notebooks(args.directory, overwrite=args.overwrite)
    for path in written:
        print(f"wrote {path}")
    kept = len(stock_names()) - len(written)
    if kept:
        print(f"kept {kept} existing file(s) in {args.directory} (--overwrite replaces them)")
    return 0
