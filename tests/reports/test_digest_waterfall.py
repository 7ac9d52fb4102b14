"""The digest's movement without a store: the waterfall's rows, its drawings, the reconciliation
wording when the walk does not add up, and the summary line of every open deal."""

from __future__ import annotations

from datetime import date

from revtops_kernel.reports.digest import MOVEMENT_COLUMNS, Movement
from revtops_kernel.reports.waterfall import movement_frame, waterfall_figure, waterfall_svg

TOTALS = {
    "opening": 1000.0, "created": 300.0, "reopened": 0.0, "moved_in": 50.0, "pulled_in": 0.0,
    "increased": 20.0, "decreased": 10.0, "pushed_out": 40.0, "moved_out": 0.0, "won": 200.0,
    "lost": 70.0, "closing": 1050.0, "unexplained": 0.0,
}  # fmt: skip


def test_the_rows_walk_from_opening_to_closing() -> None:
    frame = movement_frame(TOTALS)
    # The steps the digest always shows, plus a move between pipelines only when it happened.
    assert list(frame["movement"]) == [
        "Opening", "Created", "Moved in", "Pulled in", "Increased", "Decreased", "Pushed out",
        "Won", "Lost", "Closing",
    ]  # fmt: skip
    amounts = dict(zip(frame["movement"], frame["amount"], strict=True))
    assert (amounts["Won"], amounts["Lost"], amounts["Decreased"]) == (-200.0, -70.0, -10.0)
    assert sum(list(amounts.values())[:-1]) == amounts["Closing"] == 1050.0
    assert list(frame["measure"]) == ["absolute", *["relative"] * 8, "total"]

    figure = waterfall_figure(frame, "Pipeline movement in the period")
    [trace] = figure.data
    assert trace.type == "waterfall" and list(trace.measure) == list(frame["measure"])
    assert list(trace.text) == [
        "$1k",
        "+$300",
        "+$50",
        "$0",
        "+$20",
        "-$10",
        "-$40",
        "-$200",
        "-$70",
        "$1.05k",
    ]

    svg = waterfall_svg(frame, width_inches=7.0, height_inches=3.2)
    assert svg.lstrip().startswith(("<?xml", "<svg"))
    for label in ("Opening", "Pushed", "Closing", "+$300", "-$200", "$1.05k"):
        assert label in svg  # text stays text: searchable in the PDF


def test_a_walk_that_does_not_add_up_says_so_and_by_how_much() -> None:
    values = {name: TOTALS[name] for name in MOVEMENT_COLUMNS}
    fine = Movement(**values, close_from=date(2026, 10, 1), close_to=date(2026, 12, 31))
    assert fine.reconciles and fine.net == 50.0
    assert fine.check() == "Reconciles: opening + movements = closing, to the cent."
    assert fine.scope() == "deals closing 01 Oct – 31 Dec 2026"
    off = Movement(**{**values, "unexplained": 125.0}, close_from=None, close_to=None)
    assert not off.reconciles
    assert off.check().startswith("Does not reconcile: $125 of the change is unexplained")
    assert off.scope() == "all open deals"
