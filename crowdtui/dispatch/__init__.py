"""Dispatch, the chat side: chat channels, routing, onboarding and the scheduler (``crowdtui serve``).

Pure parts (no I/O): ``matching`` (route expressions, the decision for one message),
``schedules`` (cron / interval / one-shot times), ``clock``.
Store parts (tables from migrations 020-026): ``routes``, ``channels``, ``inbound``
(storage, the router, onboarding holds), ``outbound`` (the retry queue), ``tasks``,
``delivery`` (inbox delivery inside the router's transaction).
Running parts: ``service.Dispatch`` (the loops), ``api`` (the channel HTTP protocol),
``http_server``, ``launch`` (launch policies), ``mcp_tools`` (reply, routes, tasks for
the hub), ``lock`` and ``serve`` (``crowdtui serve``), ``local_channel``.
Nothing here imports textual.
"""
