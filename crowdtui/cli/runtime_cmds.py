"""CLI commands: runtime_cmds (filled in by its area)."""


def register(sub) -> None:
    pass
