"""Hub tokens and sealed secrets as the store keeps them (qms.tokens, qms.secrets), on a
real SQLite file: only hashes and ciphertexts are stored, and each change is an event."""

from __future__ import annotations

import pytest

from qms import secrets, tokens
from qms.errors import NotFound


async def test_a_token_is_kept_as_its_hash_and_revoked_for_everyone(store, snapshot):
    before = snapshot()
    with pytest.raises(NotFound, match="no agent named 'ghost'"):
        await tokens.add_token(store, "ghost", "crowd_secret0", prefix="crowd_s", actor="operator", now=1.0)
    assert snapshot() == before
    first = await tokens.add_token(store, "bob", "crowd_secret1", prefix="crowd_s", actor="operator", now=1.0)
    second = await tokens.add_token(store, "bob", "crowd_secret2", prefix="crowd_s", actor="operator", now=2.0)
    assert "crowd_secret1" not in repr(snapshot())
    assert await tokens.agent_for_token(store, "crowd_secret1") == "bob"
    assert await tokens.agent_for_token(store, "x" * 513) is None
    assert await tokens.revoke_tokens(store, "bob", actor="operator", now=3.0, token_id=first) == [first]
    assert await tokens.agent_for_token(store, "crowd_secret1") is None
    assert await tokens.revoke_tokens(store, "bob", actor="operator", now=4.0) == [second]
    assert await tokens.revoke_tokens(store, "bob", actor="operator", now=5.0) == []  # nothing left: no event
    assert [(t.id, t.revoked_at) for t in await tokens.list_tokens(store, "bob")] == [(first, 3.0), (second, 4.0)]
    events = [(e.kind, e.detail) for e in await store.events_after(0, kinds="hub.*")]
    assert events == [("hub.token_issued", {"token_id": first}), ("hub.token_issued", {"token_id": second}),
                      ("hub.token_revoked", {"token_ids": [first]}), ("hub.token_revoked", {"token_ids": [second]})]


async def test_a_sealed_secret_is_stored_as_given_and_its_events_carry_only_the_name(store):
    assert not await secrets.put_secret(store, "API_KEY", b"n" * 12, b"sealed-1", actor="operator", now=1.0)
    assert await secrets.put_secret(store, "API_KEY", b"m" * 12, b"sealed-2", actor="operator", now=2.0)
    sealed = await secrets.sealed_secret(store, "API_KEY")
    assert (sealed.nonce, sealed.ciphertext) == (b"m" * 12, b"sealed-2")
    assert await secrets.secret_names(store) == [("API_KEY", 2.0)]
    assert not await secrets.delete_secret(store, "OTHER", actor="operator")
    assert await secrets.delete_secret(store, "API_KEY", actor="operator")
    assert await secrets.sealed_secret(store, "API_KEY") is None
    events = [(e.kind, e.subject, e.detail) for e in await store.events_after(0, kinds="secret.*")]
    assert events == [("secret.created", "API_KEY", {}), ("secret.updated", "API_KEY", {}),
                      ("secret.removed", "API_KEY", {})]
