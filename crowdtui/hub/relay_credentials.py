"""Credentials of the relays: the hub's TLS identity and one client certificate per engine.

Made by crowdtui under the workspace's ``.crowd/relay/`` (folder 0700, keys 0600):

    hub.crt, hub.key      the hub's self-signed server certificate; a relay trusts exactly
                          this certificate (it is the relay's only trust anchor: pinned)
    ca.crt, ca.key        the workspace's relay CA; it signs the engines' certificates
    engines/NAME.crt/.key one engine's client certificate (CN = the engine's name); the key
                          is handed to that engine's relay and kept here so the relay can
                          be made again without issuing anew

The hub trusts a relay connection when its certificate is signed by the CA, its CN names
an engine, *and* it is the certificate currently issued for that engine (fingerprint):
issuing anew or revoking an engine invalidates its old certificate at once, in every
process, without reloading anything.

    cred = issue_engine_credential(workspace, "gpu-box")     # new key + certificate
    cred = engine_credential(workspace, "gpu-box")           # the current one (or None)
    revoke_engine_credential(workspace, "gpu-box")
    engine_for_certificate(workspace, der_bytes)             # -> "gpu-box" or None
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from crowdtui.errors import CrowdError

HUB_NAME = "crowdtui-hub"
VALID_DAYS = 3650
_ENGINE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class RelayCredentialError(CrowdError):
    pass


@dataclass(frozen=True)
class EngineCredential:
    """What an engine's relay needs: its certificate and key, and the hub's certificate (PEM)."""

    engine: str
    cert_pem: bytes
    key_pem: bytes
    hub_cert_pem: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint_pem(self.cert_pem)


def check_engine_name(engine: str) -> str:
    if not isinstance(engine, str) or not _ENGINE_NAME.match(engine):
        raise RelayCredentialError(
            f"engine name {engine!r} is not valid: use 1-63 lower-case letters, digits, '-', '_' or '.', "
            f"starting with a letter or digit")
    return engine


def relay_dir(workspace) -> Path:
    return Path(workspace.crowd_dir) / "relay"


def _ensure_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject_cn: str, key, *, issuer_cn: str, issuer_key, ca: bool, usage: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        eku = ExtendedKeyUsageOID.SERVER_AUTH if usage == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        if usage == "server":
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(HUB_NAME)]), critical=False)
    from cryptography.hazmat.primitives import serialization

    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _load_key(pem: bytes):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, password=None)


def fingerprint_pem(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def hub_identity(workspace) -> tuple[Path, Path]:
    """The hub's server certificate and key (made on first use); (cert path, key path)."""
    folder = _ensure_dir(relay_dir(workspace))
    cert, key = folder / "hub.crt", folder / "hub.key"
    if not (cert.is_file() and key.is_file()):
        k = _new_key()
        _write(key, _key_pem(k), 0o600)
        _write(cert, _certificate(HUB_NAME, k, issuer_cn=HUB_NAME, issuer_key=k, ca=False, usage="server"), 0o644)
    return cert, key


def _ca(workspace):
    folder = _ensure_dir(relay_dir(workspace))
    cert, key = folder / "ca.crt", folder / "ca.key"
    if not (cert.is_file() and key.is_file()):
        k = _new_key()
        _write(key, _key_pem(k), 0o600)
        _write(cert, _certificate("crowdtui relay CA", k, issuer_cn="crowdtui relay CA", issuer_key=k,
                                  ca=True, usage=""), 0o644)
    return cert, _load_key(key.read_bytes())


def ca_certificate(workspace) -> Path:
    """The CA the hub checks relay certificates against (made on first use)."""
    return _ca(workspace)[0]


def issue_engine_credential(workspace, engine: str) -> EngineCredential:
    """A new key and certificate for ``engine``'s relay; the engine's previous one stops working."""
    check_engine_name(engine)
    _ca_cert, ca_key = _ca(workspace)
    hub_cert, _ = hub_identity(workspace)
    folder = _ensure_dir(relay_dir(workspace) / "engines")
    k = _new_key()
    cert_pem = _certificate(engine, k, issuer_cn="crowdtui relay CA", issuer_key=ca_key, ca=False, usage="client")
    key_pem = _key_pem(k)
    _write(folder / f"{engine}.key", key_pem, 0o600)
    _write(folder / f"{engine}.crt", cert_pem, 0o644)
    return EngineCredential(engine, cert_pem, key_pem, hub_cert.read_bytes())


def engine_credential(workspace, engine: str, *, issue: bool = False) -> EngineCredential | None:
    """The engine's current credential; a new one when it has none and ``issue``."""
    check_engine_name(engine)
    folder = relay_dir(workspace) / "engines"
    cert, key = folder / f"{engine}.crt", folder / f"{engine}.key"
    if cert.is_file() and key.is_file():
        hub_cert, _ = hub_identity(workspace)
        return EngineCredential(engine, cert.read_bytes(), key.read_bytes(), hub_cert.read_bytes())
    return issue_engine_credential(workspace, engine) if issue else None


def revoke_engine_credential(workspace, engine: str) -> bool:
    """Forget the engine's credential: its relay is refused from its next connection on."""
    check_engine_name(engine)
    folder = relay_dir(workspace) / "engines"
    found = False
    for suffix in (".crt", ".key"):
        try:
            (folder / f"{engine}{suffix}").unlink()
            found = True
        except FileNotFoundError:
            pass
    return found


def engine_for_certificate(workspace, der: bytes | None) -> str | None:
    """The engine whose *current* certificate is ``der`` (as the TLS peer presented it), or None.

    The TLS layer has already checked the CA's signature; this checks that the certificate
    was not replaced or revoked since."""
    if not der:
        return None
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_der_x509_certificate(der)
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    if len(names) != 1:
        return None
    engine = str(names[0].value)
    if not _ENGINE_NAME.match(engine):
        return None
    path = relay_dir(workspace) / "engines" / f"{engine}.crt"
    try:
        current = path.read_bytes()
    except OSError:
        return None
    return engine if fingerprint_pem(current) == hashlib.sha256(der).hexdigest() else None
