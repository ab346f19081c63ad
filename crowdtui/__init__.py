"""crowdtui: operator console and coordination hub for a crew of AI agents."""

__version__ = "0.1.0"
