"""Docker labels that tie a container to its workspace and agent (used for re-adoption)."""

WORKSPACE = "crowdtui.workspace"  # Workspace.id
ROOT = "crowdtui.root"  # the workspace folder, for people reading `docker ps`
AGENT = "crowdtui.agent"  # agent name
KIND = "crowdtui.kind"  # "agent" (long-lived) or "per-message"
ENGINE = "crowdtui.engine"  # the engine (crowd.toml [engines.NAME], or local) it runs on


def for_agent(workspace, agent: str, kind: str = "agent") -> dict[str, str]:
    return {WORKSPACE: workspace.id, ROOT: str(workspace.root), AGENT: agent, KIND: kind}
