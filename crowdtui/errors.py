"""Errors crowdtui shows to a person: one line that says what was wrong and what to do."""


class CrowdError(Exception):
    """An error with a message fit for the operator. ``exit_code`` is the CLI's exit status."""

    exit_code = 1


class WorkspaceNotFound(CrowdError):
    pass


class UsageError(CrowdError):
    exit_code = 2


class EngineUnavailable(CrowdError):
    """No Docker engine answers."""

    exit_code = 3
