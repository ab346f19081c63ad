"""The console's views, in tab order: the key that shows each, its tab label, its name (the
tab's id is ``view-NAME``), the widget and the widget's id. One list for the layout, the
keys, the command palette and the help."""

from __future__ import annotations

from crowdtui.tui.widgets.activity_view import ActivityView
from crowdtui.tui.widgets.channels_view import ChannelsView
from crowdtui.tui.widgets.documents_view import DocumentsView
from crowdtui.tui.widgets.inbox_view import InboxView
from crowdtui.tui.widgets.logs_view import LogsView
from crowdtui.tui.widgets.onboarding_view import OnboardingView
from crowdtui.tui.widgets.routes_view import RoutesView
from crowdtui.tui.widgets.secrets_view import SecretsView
from crowdtui.tui.widgets.tasks_view import TasksView
from crowdtui.tui.widgets.terminal_pane import TerminalPane

VIEWS = [
    ("1", "Terminal", "terminal", TerminalPane, "terminal-pane"),
    ("2", "Inbox", "inbox", InboxView, "inbox"),
    ("3", "Docs", "documents", DocumentsView, "documents"),
    ("4", "Activity", "activity", ActivityView, "activity"),
    ("5", "Logs", "logs", LogsView, "logs"),
    ("6", "Held", "held", OnboardingView, "held"),
    ("7", "Routes", "routes", RoutesView, "routes"),
    ("8", "Tasks", "tasks", TasksView, "tasks"),
    ("9", "Chans", "channels", ChannelsView, "channels"),
    ("0", "Secrets", "secrets", SecretsView, "secrets"),
]
VIEW_NAMES = [name for _, _, name, _, _ in VIEWS]
