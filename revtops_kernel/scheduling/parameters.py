"""What a workflow may inject into its notebook: the parameters the notebook declares, as scalars.

Papermill writes every parameter into the notebook as a line of Python, ``name = value``. It
renders values safely (``repr``-like escaping), but writes names as given, so a name carrying a
newline and code would run that code. Therefore:

- a name must be one the notebook declares in its ``parameters``-tagged cell, read with
  papermill's own inspection (``papermill.inspect_notebook``); names the runner sets itself
  (``RUNNER_PARAMETERS``) are not the user's to set;
- a value is a JSON scalar of the kind the declaration implies (its type annotation, else its
  default): ``None`` default → text or null; ``bool`` → bool; ``int`` → int; ``float`` → int or
  float; ``str`` → text. Lists and objects are refused, text is at most ``MAX_TEXT_LENGTH``
  characters without NUL or other control characters (tab and newline are allowed).

``check_parameters`` is called on every path that stores or runs parameters: adding and updating
a workflow, a manual run's overrides, and the runner, just before it executes a stored run.
"""

from __future__ import annotations

import ast
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from revtops_kernel.errors import WorkflowError, WorkflowParameterError

# Set by the runner for each run, for notebooks that declare them; never taken from a user.
RUNNER_PARAMETERS = frozenset({"revtops_run_id", "revtops_scheduled_for"})
MAX_TEXT_LENGTH = 1_000
_ALLOWED_CONTROLS = frozenset("\t\n")

Scalar = str | int | float | bool | None

# Kinds, by the Python types a value of the kind may have.
_TEXT = (str,)
_KINDS: dict[str, tuple[type, ...]] = {
    "str": _TEXT,
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "None": (str, type(None)),  # a None default usually means "text, or the default behaviour"
    "any": (str, int, float, bool, type(None)),
}
_KIND_WORDS = {
    "str": "text",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "None": "text or null",
    "any": "a JSON scalar (text, number, true/false or null)",
}


@dataclass(frozen=True)
class DeclaredParameter:
    """One assignment of a notebook's parameters cell, as papermill reads it."""

    name: str
    kind: str  # a key of _KINDS
    optional: bool  # null accepted besides the kind (an ``Optional[...]`` annotation)
    default: str  # the default's source text

    def accepts(self, value: object) -> bool:
        if value is None and self.optional:
            return True
        # Exact types: bool is an int subclass, and a str subclass could render itself.
        return type(value) in _KINDS[self.kind]

    def describe(self) -> str:
        words = _KIND_WORDS[self.kind]
        return f"{words} or null" if self.optional and self.kind not in ("None", "any") else words


def declared_parameters(notebook: Path) -> dict[str, DeclaredParameter]:
    """The parameters ``notebook`` declares, by name, in the order of its parameters cell."""
    import papermill

    try:
        inspected = papermill.inspect_notebook(str(notebook))
    except Exception as exc:  # papermill raises plain ValueError/OSError/nbformat errors
        raise WorkflowError(
            f"cannot read the parameters of {notebook.name}: {type(exc).__name__}: {exc}"
        ) from exc
    found: dict[str, DeclaredParameter] = {}
    for name, info in inspected.items():
        kind, optional = _kind(str(info.get("inferred_type_name", "None")), str(info["default"]))
        found[name] = DeclaredParameter(name, kind, optional, str(info["default"]))
    return found


def check_parameters(
    parameters: Mapping[str, object],
    notebook: Path,
    *,
    declared: Mapping[str, DeclaredParameter] | None = None,
) -> dict[str, Scalar]:
    """``parameters`` if ``notebook`` can take them all; else ``WorkflowParameterError`` naming
    the first offending one. ``declared`` skips reading the notebook again."""
    known = declared_parameters(notebook) if declared is None else declared
    checked: dict[str, Scalar] = {}
    for name, value in parameters.items():
        _check_name(name, notebook, known)
        checked[name] = _check_value(name, value, notebook, known)
    return checked


def _check_name(name: object, notebook: Path, known: Mapping[str, DeclaredParameter]) -> None:
    if not isinstance(name, str):
        raise WorkflowParameterError(str(name), notebook.name, "is not a name (expected text)")
    if name in RUNNER_PARAMETERS:
        raise WorkflowParameterError(
            name, notebook.name, "is set by the runner for each run and cannot be given"
        )
    if name not in known:
        listed = ", ".join(n for n in known if n not in RUNNER_PARAMETERS) or "none"
        raise WorkflowParameterError(
            name, notebook.name, f"is not declared by {notebook.name} (declared: {listed})"
        )


def _check_value(
    name: str, value: object, notebook: Path, known: Mapping[str, DeclaredParameter]
) -> Scalar:
    declaration = known[name]
    if isinstance(value, (list, tuple, dict, set)):
        raise WorkflowParameterError(
            name, notebook.name, f"must be {declaration.describe()}; lists and objects are refused"
        )
    if not declaration.accepts(value):
        raise WorkflowParameterError(
            name,
            notebook.name,
            f"must be {declaration.describe()} (declared as {name} = {declaration.default}), "
            f"got {_shown(value)}",
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise WorkflowParameterError(name, notebook.name, f"must be a finite number, got {value}")
    if isinstance(value, str):
        _check_text(name, value, notebook)
    return value  # type: ignore[return-value]  # accepts() narrowed it to a Scalar


def _check_text(name: str, value: str, notebook: Path) -> None:
    if len(value) > MAX_TEXT_LENGTH:
        raise WorkflowParameterError(
            name,
            notebook.name,
            f"is {len(value):,} characters long; at most {MAX_TEXT_LENGTH:,} are allowed",
        )
    for position, char in enumerate(value):
        if unicodedata.category(char) == "Cc" and char not in _ALLOWED_CONTROLS:
            raise WorkflowParameterError(
                name,
                notebook.name,
                f"contains the control character {char!r} at position {position}; only tab and "
                "newline are allowed",
            )


def _kind(annotation: str, default: str) -> tuple[str, bool]:
    """``(kind, optional)`` from a type annotation if there is one, else from the default."""
    optional = annotation.startswith("Optional[")
    core = annotation.removeprefix("Optional[").removesuffix("]") if optional else annotation
    if core in ("str", "int", "float", "bool"):
        return core, optional
    if core not in ("None", "NoneType"):  # an annotation we do not map (list, Any, a class…)
        return "any", False
    try:
        literal = ast.literal_eval(default)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return "any", False  # an expression (os.environ.get(...)): any scalar
    if literal is None:
        return "None", False
    kinds: dict[type, str] = {bool: "bool", int: "int", float: "float", str: "str"}
    return kinds.get(type(literal), "any"), False


def _shown(value: object) -> str:
    """A value as the error shows it: its JSON kind and a short ``repr``."""
    if value is None:
        return "null"
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "text"}
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{kinds.get(type(value), type(value).__name__)} {text}"
