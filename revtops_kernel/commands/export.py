"""``revtops export pdf|notebook``: a conversation or an artifact as a PDF, a conversation as a
notebook that papermill can re-run."""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from revtops_kernel.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help="export a conversation or artifact (PDF, .ipynb)")
    formats = parser.add_subparsers(dest="format", required=True)

    pdf = formats.add_parser("pdf", help="a conversation or one artifact as a PDF report")
    source = pdf.add_mutually_exclusive_group(required=True)
    source.add_argument("--conversation", type=uuid.UUID, help="conversation id")
    source.add_argument("--artifact", type=uuid.UUID, help="artifact id")
    pdf.add_argument("-o", "--output", type=Path, required=True, help="the PDF file to write")
    pdf.add_argument("--author", help="name in the page header (default: your login name)")
    pdf.add_argument("--timezone", help="IANA time zone of the header (default: REVTOPS_TIMEZONE)")
    pdf.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    pdf.set_defaults(handler=cmd_export_pdf)

    notebook = formats.add_parser("notebook", help="a conversation as a runnable .ipynb")
    notebook.add_argument("--conversation", type=uuid.UUID, required=True, help="conversation id")
    notebook.add_argument("-o", "--output", type=Path, required=True, help="the .ipynb to write")
    notebook.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    notebook.set_defaults(handler=cmd_export_notebook)


def cmd_export_pdf(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.artifacts.pdf import artifact_to_pdf, conversation_to_pdf
    from revtops_kernel.errors import RevtopsError
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store.database import Database

    db = Database.from_settings(settings)
    org = args.org or settings.org
    require_known_org(db, org)  # a mistyped --org: exit 2 naming the known ones
    author = args.author or getpass.getuser()
    timezone = args.timezone or settings.timezone
    try:
        if args.artifact is not None:
            pdf = artifact_to_pdf(db, args.artifact, org=org, author=author, timezone=timezone)
        else:
            pdf = conversation_to_pdf(
                db, args.conversation, org=org, author=author, timezone=timezone
            )
    except (RevtopsError, ValueError) as exc:
        print(f"revtops export: {exc}", file=sys.stderr)
        return 1
    args.output.write_bytes(pdf)
    print(f"wrote {args.output} ({len(pdf):,} bytes)")
    return 0


def cmd_export_notebook(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.artifacts.notebook import conversation_to_notebook, save_notebook
    from revtops_kernel.errors import RevtopsError
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store.database import Database

    db = Database.from_settings(settings)
    org = args.org or settings.org
    require_known_org(db, org)
    try:
        notebook = conversation_to_notebook(db, args.conversation, org=org)
    except RevtopsError as exc:
        print(f"revtops export: {exc}", file=sys.stderr)
        return 1
    path = save_notebook(notebook, args.output)
    print(f"wrote {path}: re-run it with `papermill {path} out.ipynb -p org ...`")
    return 0
