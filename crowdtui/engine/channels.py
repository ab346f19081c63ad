"""Registered channels: who owns which chats, their tokens (hashed) and health.

They live in the store (:mod:`qms.channels`); the engine's API and health poller use these.
"""

from __future__ import annotations

from qms.channels import (
    Channel, channel_for_chat, channel_for_token, deregister_channel, hash_token, list_channels, record_health,
    register_channel,
)

__all__ = ["Channel", "channel_for_chat", "channel_for_token", "deregister_channel", "hash_token", "list_channels",
           "record_health", "register_channel"]
