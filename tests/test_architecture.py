"""The one-way architecture, checked on every test run.

Two checks over grimp's import graph of the product, the extension and the sandbox, which has
every import statement: module-level, inside functions, and under ``TYPE_CHECKING``:

- no import cycles (strongly connected components of the module graph; a failure names one
  concrete cycle with the line of each import);
- the import-linter contracts in pyproject.toml (``[tool.importlinter]``): the layers, and the
  product never importing the sandbox; and every top-level module placed in a layer.

The last tests feed both checkers graphs that are broken on purpose, so a green run means the
checks can fail.
"""

from __future__ import annotations

import copy
import itertools
import sys
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import grimp
import importlinter.api  # noqa: F401  (configures import-linter: its readers and timers)
import pytest
from importlinter.application.use_cases import read_user_options
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.independence import IndependenceContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import Contract

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PACKAGES = ("revtops_kernel", "revtops_server", "revtops_sandbox")
CONTRACT_TYPES: dict[str, type[Contract]] = {
    "layers": LayersContract,
    "forbidden": ForbiddenContract,
    "independence": IndependenceContract,
}

# Cycles that exist today and are someone's work in progress, each with who removes it. A
# listed cycle that no longer exists fails `test_no_import_cycles` too: then delete its line.
KNOWN_CYCLES: dict[frozenset[str], str] = {}


# -- the checkers ------------------------------------------------------------------------------


def import_graph(*packages: str) -> grimp.ImportGraph:
    return grimp.build_graph(*packages, cache_dir=None)


def strongly_connected(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's, iterative:
    import chains can be deeper than Python's recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, _successors(graph, root))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, _successors(graph, step)))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _successors(graph: grimp.ImportGraph, module: str) -> Iterator[str]:
    return iter(sorted(graph.find_modules_directly_imported_by(module)))


def one_cycle(graph: grimp.ImportGraph, component: frozenset[str]) -> list[str]:
    """A shortest cycle through the component's first module: [a, b, ..., a]."""
    start = min(component)
    paths: dict[str, list[str]] = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for step in sorted(graph.find_modules_directly_imported_by(module) & component):
                if step == start:
                    return [*paths[module], start]
                if step not in paths:
                    paths[step] = [*paths[module], step]
                    following.append(step)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def describe_cycle(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    """``a -> b`` per import, each with its line number and text."""
    lines = []
    for importer, imported in itertools.pairwise(cycle):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = "; ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
        lines.append(f"  {importer} -> {imported}   ({where or 'no detail'})")
    return "\n".join(lines)


def cycle_report(graph: grimp.ImportGraph, known: Iterable[frozenset[str]] = ()) -> list[str]:
    """One message per cycle not in ``known``, naming a concrete cycle through it."""
    known_set = set(known)
    messages = []
    for component in sorted(strongly_connected(graph), key=sorted):
        if component in known_set:
            continue
        cycle = one_cycle(graph, component)
        messages.append(
            f"import cycle among {len(component)} modules ({', '.join(sorted(component))}), "
            f"for example:\n{describe_cycle(graph, cycle)}"
        )
    return messages


def contracts(config: Path = PYPROJECT) -> list[tuple[Contract, dict[str, Any]]]:
    """The import-linter contracts of ``config``, ready to check against any graph."""
    options = read_user_options(str(config))
    built = []
    for contract_options in options.contracts_options:
        contract = CONTRACT_TYPES[contract_options["type"]](
            name=contract_options["name"],
            session_options=options.session_options,
            contract_options=contract_options,
        )
        built.append((contract, contract_options))
    return built


def broken_contracts(graph: grimp.ImportGraph) -> list[str]:
    """A message for each contract the graph breaks, listing the offending import chains."""
    messages = []
    for contract, _ in contracts():
        check = contract.check(copy.deepcopy(graph), verbose=False)
        if not check.kept:
            messages.append(f"{contract.name}: BROKEN\n{_chains(check.metadata)}")
        for warning in check.warnings:
            messages.append(f"{contract.name}: {warning}")
    return messages


def _chains(metadata: dict[str, Any]) -> str:
    """import-linter's findings (layers: ``invalid_dependencies``; forbidden:
    ``invalid_chains``) as ``importer -> imported`` lines."""
    lines = []
    for dependency in metadata.get("invalid_dependencies", []):
        for route in dependency.get("routes", []):
            for chain in route.get("chain", []):
                lines.append(f"  {chain['importer']} -> {chain['imported']}")
            for heads in route.get("heads", []):
                lines.append(f"  {heads['importer']} -> {heads['imported']} ...")
    for invalid in metadata.get("invalid_chains", []):
        for chain in invalid.get("chains", []):
            lines.append(
                "  " + " -> ".join([chain[0]["importer"], *(i["imported"] for i in chain)])
            )
    return "\n".join(lines) or f"  {metadata}"


def layered_modules() -> set[str]:
    """Every module named in a layer of the layers contract."""
    named: set[str] = set()
    for _, options in contracts():
        if options["type"] != "layers":
            continue
        for layer in options["layers"]:
            named.update(part.strip() for part in layer.replace("|", ":").split(":"))
    return named


# -- the real code -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return import_graph(*PACKAGES)


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    problems = cycle_report(graph, KNOWN_CYCLES)
    components = set(strongly_connected(graph))
    problems += [
        f"{sorted(cycle)} is listed in KNOWN_CYCLES but is gone: delete its line"
        for cycle in KNOWN_CYCLES
        if cycle not in components
    ]
    assert not problems, "\n\n".join(problems)


def test_import_contracts_are_kept(graph: grimp.ImportGraph) -> None:
    problems = broken_contracts(graph)
    assert not problems, "\n\n".join(problems)


def test_every_top_level_module_has_a_layer(graph: grimp.ImportGraph) -> None:
    top_level = {
        ".".join(module.split(".")[:2])
        for module in graph.find_descendants("revtops_kernel")
        if not module.endswith("__main__")
    }
    placed = layered_modules()
    unplaced = sorted(top_level - placed)
    assert not unplaced, (
        f"{unplaced} are in no layer: add each to a layer of [tool.importlinter] in "
        "pyproject.toml (edges, orchestration, copilot, services, adapters or core)"
    )
    missing = sorted(m for m in placed if m not in graph.modules)
    assert not missing, f"layers name modules that do not exist: {missing}"


# -- the checkers fail when they should --------------------------------------------------------


def test_a_deliberately_broken_layer_fails(graph: grimp.ImportGraph) -> None:
    """Core importing orchestration, the product importing the sandbox and one handler module
    importing another are caught."""
    broken = copy.deepcopy(graph)
    broken.add_import(
        importer="revtops_kernel.timeutil",
        imported="revtops_kernel.sync",
        line_number=1,
        line_contents="from revtops_kernel.sync import run_sync",
    )
    broken.add_import(
        importer="revtops_kernel.store.database",
        imported="revtops_sandbox.company",
        line_number=1,
        line_contents="from revtops_sandbox.company import Company",
    )
    broken.add_import(
        importer="revtops_server.handlers_workflows",
        imported="revtops_server.handlers_data",
        line_number=1,
        line_contents="from .handlers_data import _json",
    )
    problems = "\n".join(broken_contracts(broken))
    assert "Imports point down" in problems
    assert "revtops_kernel.timeutil -> revtops_kernel.sync" in problems
    assert "never imports the sandbox: BROKEN" in problems
    assert "revtops_kernel.store.database -> revtops_sandbox.company" in problems
    assert "Extension: the route table" in problems
    assert "revtops_server.handlers_workflows -> revtops_server.handlers_data" in problems


def test_a_deliberately_broken_package_has_its_cycle_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle closed by an import inside a function (invisible at import time) is found."""
    package = tmp_path / "cyclic_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic_pkg import b\n\nVALUE = b.VALUE\n")
    (package / "b.py").write_text(
        textwrap.dedent(
            """\
            VALUE = 1


            def later() -> int:
                from cyclic_pkg.c import back

                return back()
            """
        )
    )
    (package / "c.py").write_text(
        "from cyclic_pkg.a import VALUE\n\n\ndef back() -> int:\n    return VALUE\n"
    )
    (package / "d.py").write_text("from cyclic_pkg import a\n")  # on no cycle
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cyclic = import_graph("cyclic_pkg")
    finally:
        for name in [m for m in sys.modules if m.startswith("cyclic_pkg")]:
            del sys.modules[name]
    assert strongly_connected(cyclic) == [
        frozenset({"cyclic_pkg.a", "cyclic_pkg.b", "cyclic_pkg.c"})
    ]
    (message,) = cycle_report(cyclic)
    assert "cyclic_pkg.a -> cyclic_pkg.b" in message
    assert "cyclic_pkg.b -> cyclic_pkg.c" in message
    assert "from cyclic_pkg.c import back" in message  # the function-level line, named
    assert "cyclic_pkg.c -> cyclic_pkg.a" in message


def test_a_listed_cycle_is_not_reported(graph: grimp.ImportGraph) -> None:
    broken = copy.deepcopy(graph)
    broken.add_import(importer="revtops_kernel.errors", imported="revtops_kernel.settings")
    cycle = frozenset({"revtops_kernel.errors", "revtops_kernel.settings"})
    assert cycle in strongly_connected(broken)
    assert any(
        "revtops_kernel.errors -> revtops_kernel.settings" in m for m in cycle_report(broken)
    )
    assert not [m for m in cycle_report(broken, [cycle, *KNOWN_CYCLES]) if "errors" in m]
