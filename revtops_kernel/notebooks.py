"""The stock notebooks: the web app's page, the sync and the report notebooks, the tutorial.

They ship inside the package (the wheel maps the repository's ``notebooks/`` to
``revtops_kernel/stock_notebooks/``), so an installed product finds them as well as a source
checkout does. A workflow names one by its stem (``sync``, ``pipeline_digest``), from any
directory; ``revtops notebooks copy DIR`` gives a user editable copies.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from revtops_kernel.errors import WorkflowError

_PACKAGED = Path(__file__).resolve().parent / "stock_notebooks"  # in an installed wheel
_SOURCE = Path(__file__).resolve().parents[1] / "notebooks"  # in a source checkout


def stock_directory() -> Path:
    """Where the stock notebooks are: the package's copy when installed, else the checkout's."""
    return _PACKAGED if _PACKAGED.is_dir() else _SOURCE


def stock_names() -> list[str]:
    """The stock notebooks' names (file stems), sorted."""
    return sorted(path.stem for path in stock_directory().glob("*.ipynb"))


def stock_notebook(name: str) -> Path:
    """The stock notebook called ``name`` (``sync`` or ``sync.ipynb``)."""
    stem = name.removesuffix(".ipynb")
    path = stock_directory() / f"{stem}.ipynb"
    if "/" in stem or not path.is_file():
        raise WorkflowError(
            f"no stock notebook named {name!r}; stock notebooks: {', '.join(stock_names())}"
        )
    return path


def resolve_notebook(reference: str | Path) -> Path:
    """A workflow's notebook: a path to an ``.ipynb`` file, or a stock notebook's name.

    A path that exists wins, so a user's own ``sync.ipynb`` in the working directory is theirs.
    """
    text = str(reference)
    path = Path(text).expanduser().resolve()
    if path.is_file():
        if path.suffix != ".ipynb":
            raise WorkflowError(f"a workflow runs a notebook (.ipynb), got {text!r}")
        return path
    if "/" not in text and "\\" not in text:
        return stock_notebook(text)
    if path.suffix != ".ipynb":
        raise WorkflowError(f"a workflow runs a notebook (.ipynb), got {text!r}")
    raise WorkflowError(f"no notebook at {path}")


def copy_stock_notebooks(directory: Path, *, overwrite: bool = False) -> list[Path]:
    """Copy every stock notebook into ``directory`` (created); existing files are kept unless
    ``overwrite``. Returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in stock_names():
        target = directory / f"{name}.ipynb"
        if target.exists() and not overwrite:
            continue
        shutil.copyfile(stock_notebook(name), target)
        written.append(target)
    return written
