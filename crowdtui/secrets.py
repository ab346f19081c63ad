"""Secrets: encrypted at rest with AES-256-GCM, handed to an agent's process only.

The key comes from ``CROWD_SECRET_KEY`` (64 hex characters or urlsafe base64 of 32
bytes) or from a key file created with mode 0600 under the user's config folder
(``$XDG_CONFIG_HOME/crowdtui/keys/<workspace id>.key``), outside the workspace and
its tracked files. The database holds only nonce and ciphertext; the associated data
binds each ciphertext to its workspace and name, so a row copied elsewhere does not
decrypt. Values never appear in events (only names do). The rows live in the store
(:mod:`qms.secrets`); this module seals and opens them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qms import secrets as vault_rows
from qms.names import OPERATOR

from crowdtui.errors import CrowdError
from qms.names import OPERATOR

NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
MAX_VALUE_BYTES = 64 * 1024
KEY_ENV = "CROWD_SECRET_KEY"


class SecretError(CrowdError):
    pass


def validate_secret_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name)[:40]
        raise SecretError(
            f"bad secret name {shown}: use an environment-variable name "
            "(capital letters, digits, underscore; at most 64), e.g. GITHUB_TOKEN"
        )
    return name


def key_file_path(workspace) -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "crowdtui" / "keys" / f"{workspace.id}.key"


def _decode_key(text: str) -> bytes:
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SecretError(
            f"{KEY_ENV} must be 32 bytes as 64 hex characters or base64; "
            "generate one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return raw


def load_key(workspace, *, create: bool = True) -> bytes:
    """The workspace's secret key: from the environment, else the key file (made if missing)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return _decode_key(env)
    path = key_file_path(workspace)
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretError(f"key file {path} has mode {mode:o}; run: chmod 600 {path}")
        return _decode_key(path.read_text())
    if not create:
        raise SecretError(f"no secret key: set {KEY_ENV} or create secrets first with `crowdtui secret set`")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(os.urandom(32).hex() + "\n")
    return _decode_key(path.read_text())


class Vault:
    """Encrypted secrets of one workspace, stored in its qms database."""

    def __init__(self, workspace, store, key: bytes) -> None:
        self._ws = workspace
        self._store = store
        self._aead = AESGCM(key)

    @classmethod
    def open(cls, workspace, store, *, create_key: bool = True) -> "Vault":
        return cls(workspace, store, load_key(workspace, create=create_key))

    def _aad(self, name: str) -> bytes:
        return f"crowdtui:{self._ws.id}:{name}".encode()

    async def set(self, name: str, value: str, *, actor: str = OPERATOR) -> None:
        validate_secret_name(name)
        data = value.encode()
        if not data:
            raise SecretError(f"secret {name} is empty; give a value on stdin or at the prompt")
        if "\x00" in value:
            raise SecretError(f"secret {name} holds a NUL byte, which no environment variable can carry; "
                              "encode it (e.g. base64) and decode it in the agent")
        if len(data) > MAX_VALUE_BYTES:
            raise SecretError(f"secret {name} is {len(data)} bytes; the limit is {MAX_VALUE_BYTES}")
        nonce = os.urandom(12)
        blob = self._aead.encrypt(nonce, data, self._aad(name))
        await vault_rows.put_secret(self._store, name, nonce, blob, actor=actor, now=time.time())

    async def names(self) -> list[tuple[str, float]]:
        return await vault_rows.secret_names(self._store)

    async def remove(self, name: str, *, actor: str = OPERATOR) -> None:
        validate_secret_name(name)
        if not await vault_rows.delete_secret(self._store, name, actor=actor):
            raise SecretError(f"no secret named {name}; see `crowdtui secret ls`")

    async def reveal(self, names: list[str] | tuple[str, ...]) -> dict[str, str]:
        """Decrypt the named secrets (for handing to an agent's process). Missing ones raise."""
        out: dict[str, str] = {}
        for name in names:
            validate_secret_name(name)
            sealed = await vault_rows.sealed_secret(self._store, name)
            if sealed is None:
                raise SecretError(f"secret {name} is not set; run `crowdtui secret set {name}`")
            try:
                out[name] = self._aead.decrypt(sealed.nonce, sealed.ciphertext, self._aad(name)).decode()
            except InvalidTag:
                raise SecretError(
                    f"secret {name} does not decrypt with this key; was {KEY_ENV} or the key file changed?"
                ) from None
        return out
