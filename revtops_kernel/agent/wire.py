"""The Messages API request shape the loop sends: canonical content blocks and messages.

Requests are built only from stored blocks, in one canonical form, so a conversation reloaded
from the store produces byte for byte the request an uninterrupted session sends (which the
prompt cache needs: PostgreSQL's jsonb reorders object keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def canonical_block(block: dict[str, Any]) -> dict[str, Any]:
    """A content block with a fixed key order (tool inputs sorted), the same after a reload."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "tool_use":
        return {
            "type": "tool_use",
            "id": block["id"],
            "name": block["name"],
            "input": _sorted(block.get("input") or {}),
        }
    if kind == "tool_result":
        result = {
            "type": "tool_result",
            "tool_use_id": block["tool_use_id"],
            "content": _sorted(block.get("content", "")),
        }
        if block.get("is_error"):
            result["is_error"] = True
        return result
    return {key: _sorted(block[key]) for key in sorted(block) if key != "cache_control"}


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def api_messages(history: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Stored (role, blocks) in order → API messages; consecutive same-role rows merge (as the
    API itself merges them), e.g. a question after an interrupted one."""
    messages: list[dict[str, Any]] = []
    for role, blocks in history:
        content = [canonical_block(b) for b in blocks]
        if not content:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(content)
        else:
            messages.append({"role": role, "content": content})
    return messages
