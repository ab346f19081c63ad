"""CLI commands: engine_cmds (filled in by its area)."""


def register(sub) -> None:
    pass
