"""Channels to real chat networks (Telegram, email), each a separate process that speaks
dispatch's channel protocol (:mod:`crowdtui.dispatch.api`): :mod:`.base` holds what they
share (registering, the callback server, inbound with retries, the persisted cursor),
one module per network holds the rest. Layered above dispatch; never imports textual.
"""
