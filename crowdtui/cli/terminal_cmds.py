"""CLI commands: terminal_cmds (filled in by its area)."""


def register(sub) -> None:
    pass
