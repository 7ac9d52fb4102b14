"""Subcommands of ``revtops``, one module each, registered through ``cli.COMMAND_MODULES``."""
