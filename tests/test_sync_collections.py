"""The sync reads its streams with fewer young-generation collections, and gives the process
its own collector settings back afterwards."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from revtops_kernel.sync import SYNC_GC_MIDDLE_THRESHOLD, SYNC_GC_THRESHOLD, _CollectionPause


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*saved)


def test_the_threshold_is_raised_while_streams_are_read_and_restored(
    thresholds: tuple[int, int, int],
) -> None:
    pause = _CollectionPause()
    with pause():
        assert gc.get_threshold() == (SYNC_GC_THRESHOLD, SYNC_GC_MIDDLE_THRESHOLD, 10)
    assert gc.get_threshold() == thresholds
    with pytest.raises(RuntimeError), pause():
        raise RuntimeError("a stream failed")
    assert gc.get_threshold() == thresholds


def test_overlapping_syncs_restore_once_the_last_one_ends(
    thresholds: tuple[int, int, int],
) -> None:
    pause = _CollectionPause()
    first, second = pause(), pause()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == SYNC_GC_THRESHOLD  # the second sync still reads
    second.__exit__(None, None, None)
    assert gc.get_threshold() == thresholds


def test_a_collector_turned_off_or_set_higher_is_left_alone(
    thresholds: tuple[int, int, int],
) -> None:
    pause = _CollectionPause()
    for setting in [(0, 10, 10), (SYNC_GC_THRESHOLD * 2, 5, 5)]:
        gc.set_threshold(*setting)
        with pause():
            assert gc.get_threshold() == setting
        assert gc.get_threshold() == setting


def test_what_existed_before_is_frozen_during_the_sync_and_thawed_after(
    thresholds: tuple[int, int, int],
) -> None:
    assert gc.get_freeze_count() == 0
    before = [object(), {"a": [1]}]  # tracked containers made before the sync
    pause = _CollectionPause()
    with pause():
        assert gc.get_freeze_count() > 0
        assert not any(o is before[1] for o in gc.get_objects())  # not in generations 0-2
    assert gc.get_freeze_count() == 0
    assert any(o is before[1] for o in gc.get_objects())


def test_a_process_that_froze_objects_itself_keeps_its_freeze(
    thresholds: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.freeze()
    try:
        # Spied, not counted: frozen objects other threads of a busy process free meanwhile
        # lower the count (seen in a parallel run: 10 of 928,411 went).
        calls: list[str] = []
        real_freeze, real_unfreeze = gc.freeze, gc.unfreeze
        monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze") or real_freeze())
        monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze") or real_unfreeze())
        with _CollectionPause()():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0
        assert calls == []
    finally:
        monkeypatch.undo()
        gc.unfreeze()
