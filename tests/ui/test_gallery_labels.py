"""The Artifacts list: no two rows read alike, times in the user's timezone."""

from __future__ import annotations

import uuid
from datetime import datetime

from revtops_kernel.artifacts.service import ArtifactSummary
from revtops_kernel.ui.gallery import artifact_labels


def summary(title: str, created_at: datetime, short: str) -> ArtifactSummary:
    artifact_id = uuid.UUID(f"{short}-0000-4000-8000-000000000000")
    return ArtifactSummary(artifact_id, "chart", title, None, created_at, None)


def test_labels_show_local_minutes_and_tell_repeats_apart() -> None:
    items = [
        summary("Open pipeline by stage", datetime(2026, 12, 6, 15, 4, 10), "aaaaaaaa"),
        summary("Open pipeline by stage", datetime(2026, 12, 6, 15, 4, 50), "bbbbbbbb"),
        summary("Open pipeline by stage", datetime(2026, 12, 6, 16, 30), "cccccccc"),
        summary("Win rate", datetime(2026, 12, 6, 23, 30), "dddddddd"),
    ]
    labels = artifact_labels(items, "America/New_York")
    assert labels == [
        "Open pipeline by stage · chart · 2026-12-06 10:04 · #aaaaaaaa",
        "Open pipeline by stage · chart · 2026-12-06 10:04 · #bbbbbbbb",
        "Open pipeline by stage · chart · 2026-12-06 11:30",
        "Win rate · chart · 2026-12-06 18:30",
    ]
    assert len(set(labels)) == len(labels)
