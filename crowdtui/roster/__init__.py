"""The roster: agents defined as folders under ``agents/``.

Each ``agents/<path>/AGENT.md`` is Markdown with YAML front matter: Claude Code's
subagent keys (name, description, tools, model) plus crowd keys (image, command,
mounts, env, secrets, network, egress, resources, launch, shutdown, grants,
capabilities, workspace, announce) and the runner keys (runner, permission_mode,
mode — terminal or acp —, base_url; see crowdtui.runners). The body is the agent's persona. Folder depth is
the tier (``agents/x/AGENT.md`` is tier 0); an AGENT.md in a folder below another
agent's folder is that agent's child. ``skills/<name>/SKILL.md`` beside an AGENT.md
are that agent's skills.

Loading never stops at the first mistake. Every mistake becomes a :class:`Problem`
(file, line, key, what is allowed):

- ``error``: the definition is not loaded (a broken file, a value that is not
  allowed, a bad or duplicate name). On a reload (``previous`` given) an agent whose
  file turns bad keeps its last good definition, so a half-saved edit never stops or
  forgets a running agent.
- ``warning``: the agent loads and the problem is pointed out (an unknown key, which is
  ignored; a child whose parent did not load, which loads without a parent and so
  escalates to the operator until the parent is fixed).

``watch_roster`` reloads on change (watchfiles) and yields what was added, changed
and removed; ``record_roster_changes`` / ``sync_roster`` put that into the store.

One module per job: ``model`` (the definitions, the roster's tree and tiers),
``fields`` (each front-matter key's checks), ``agent_file`` (reading one AGENT.md),
``loader`` (the whole folder), ``watch`` (following it), ``sync`` (into the store).
"""

from crowdtui.roster.agent_file import split_front_matter
from crowdtui.roster.fields import KNOWN_KEYS
from crowdtui.roster.loader import load_roster, workspace_root
from crowdtui.roster.model import (
    AGENT_FILE,
    CAPABILITIES,
    LAUNCH_POLICIES,
    MAX_FILE_BYTES,
    NETWORK_POLICIES,
    PERMISSION_MODES,
    RESERVED_NAMES,
    RESTART_DEFAULTS,
    RESTART_POLICIES,
    RUNNERS,
    SHUTDOWN_POLICIES,
    SKILL_FILE,
    SKILLS_DIR,
    WORKSPACE_MODES,
    AgentDef,
    Mount,
    Problem,
    Resources,
    Roster,
    RosterDiff,
    RosterUpdate,
    restart_policy,
)
from crowdtui.roster.sync import follow_roster, record_roster_changes, sync_roster
from crowdtui.roster.watch import diff_rosters, watch_roster

__all__ = [
    "AGENT_FILE", "CAPABILITIES", "KNOWN_KEYS", "LAUNCH_POLICIES", "MAX_FILE_BYTES",
    "NETWORK_POLICIES", "PERMISSION_MODES", "RESERVED_NAMES", "RESTART_DEFAULTS",
    "RESTART_POLICIES", "RUNNERS", "SHUTDOWN_POLICIES", "SKILL_FILE", "SKILLS_DIR",
    "WORKSPACE_MODES", "AgentDef", "Mount", "Problem", "Resources", "Roster", "RosterDiff",
    "RosterUpdate", "diff_rosters", "follow_roster", "load_roster", "record_roster_changes",
    "restart_policy", "split_front_matter", "sync_roster", "watch_roster", "workspace_root",
]
