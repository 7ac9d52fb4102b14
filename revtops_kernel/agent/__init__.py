"""The copilot: the Claude tool loop, its tools, the SQL guard and the system prompt.

Front ends (chat panel, magics, CLI, tests) consume the typed events of `events.py` alike; nothing
here knows a widget.
"""
