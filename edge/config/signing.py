"""Ed25519 signatures that bind a config's exact bytes to one node and one version.

The signature lives in a detached ``FILE.sig`` (JSON) so the YAML a technician reads is the
YAML that was signed, byte for byte. What is signed is a small manifest,
``{node, version, sha256, size}``, where sha256 and size are those of the raw bytes: so a
board can check the signature (and refuse a file signed for another node, or an old version
replayed) before it parses a single byte of YAML. A board trusts the public keys in its
trust directory; a refusal says which thing went wrong: no signature, a key the board does
not trust, content that no longer matches what was signed, another node, an old version, or
a trust directory that cannot be read (then every config is refused: fail closed).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.config.limits import MAX_SIGNATURE_BYTES, LimitError, read_limited

SIGNATURE_FORMAT = "wolfpack-config-signature/2"
_OLD_FORMAT = "wolfpack-config-signature/1"
_DOMAIN = b"wolfpack-config-manifest/2\n"  # so the key signs nothing else by accident
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SIGNED_VERSION = 2**53  # stays exact in every JSON reader


class SignatureError(Exception):
    """A config refused by the signature policy; the message says why."""


@dataclass(frozen=True)
class Manifest:
    """What a signature vouches for: these bytes, for this node, as this version."""

    node: str
    version: int
    sha256: str
    size: int

    def signed_bytes(self) -> bytes:
        body = json.dumps(
            {"node": self.node, "sha256": self.sha256, "size": self.size, "version": self.version},
            sort_keys=True,
            separators=(",", ":"),
        )
        return _DOMAIN + body.encode("utf-8")

    @classmethod
    def from_dict(cls, raw: Any) -> Manifest:
        if not isinstance(raw, dict) or set(raw) != {"node", "version", "sha256", "size"}:
            raise ValueError("the manifest must have exactly node, version, sha256 and size")
        node, version, sha, size = raw["node"], raw["version"], raw["sha256"], raw["size"]
        if not isinstance(node, str) or not _NODE_ID.match(node):
            raise ValueError(f"manifest node {str(node)[:40]!r} is not a node id")
        for name, value in (("version", version), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"manifest {name} must be an integer")
        if not 1 <= version <= MAX_SIGNED_VERSION or not 0 <= size <= 2**40:
            raise ValueError("manifest version or size out of range")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ValueError("manifest sha256 must be 64 hex digits")
        return cls(node=node, version=version, sha256=sha, size=size)


@dataclass(frozen=True)
class Signature:
    key_id: str
    signer: str
    manifest: Manifest
    signature: bytes

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": SIGNATURE_FORMAT,
                "algorithm": "ed25519",
                "key_id": self.key_id,
                "signer": self.signer,
                "manifest": {
                    "node": self.manifest.node,
                    "version": self.manifest.version,
                    "sha256": self.manifest.sha256,
                    "size": self.manifest.size,
                },
                "signature": base64.b64encode(self.signature).decode("ascii"),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> Signature:
        if len(text) > MAX_SIGNATURE_BYTES:
            raise SignatureError(
                f"{where}: {len(text)} characters is over the limit of {MAX_SIGNATURE_BYTES} "
                "for a signature file"
            )
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object")
            if raw.get("format") == _OLD_FORMAT:
                raise SignatureError(
                    f"{where}: signature format {_OLD_FORMAT!r} binds neither a node nor a "
                    "version and is no longer accepted; sign the file again with "
                    "'wolfpack config sign FILE --key K'"
                )
            if raw.get("format") != SIGNATURE_FORMAT or raw.get("algorithm") != "ed25519":
                raise ValueError(f"expected format {SIGNATURE_FORMAT!r} with ed25519")
            return cls(
                key_id=str(raw["key_id"])[:64],
                signer=str(raw.get("signer", ""))[:200],
                manifest=Manifest.from_dict(raw["manifest"]),
                signature=base64.b64decode(raw["signature"], validate=True),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise SignatureError(f"{where}: not a readable signature file ({detail})") from None


def key_id(public: Ed25519PublicKey) -> str:
    """Short, stable name of a public key: first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700 whatever the umask; keep existing ones."""
    missing = []
    for parent in (path, *path.parents):
        if parent.exists():
            break
        missing.append(parent)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file, or a symlink that leads nowhere or in a loop
        raise NotADirectoryError(
            errno.ENOTDIR, "exists but is not a directory", str(path)
        ) from None
    for created in missing:
        os.chmod(created, 0o700)


def write_file_mode(path: Path, data: bytes, mode: int, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with exactly ``mode`` (the umask does not apply)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)


def generate_keypair(private_path: Path, signer: str) -> tuple[Path, str]:
    """Write a new private key (0600) and ``<name>.pub`` (0644), whatever the umask.

    A directory it creates for them is 0700. Returns the public key's path and id.
    """
    if private_path.exists() or private_path.is_symlink():
        raise FileExistsError(f"{private_path} exists; refusing to overwrite a signing key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    make_private_dir(private_path.parent)
    write_file_mode(private_path, pem, 0o600, exclusive=True)
    public_path = private_path.with_suffix(".pub")
    public = private.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    comment = f"# wolfpack config signing key {key_id(public)} of {signer}\n".encode()
    write_file_mode(public_path, comment + public_pem, 0o644)
    return public_path, key_id(public)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(
            read_limited(path, MAX_SIGNATURE_BYTES, "key"), password=None
        )
    except FileNotFoundError:
        raise SignatureError(f"{path}: signing key not found") from None
    except LimitError as exc:
        raise SignatureError(str(exc)) from None
    except OSError as exc:
        raise SignatureError(f"{path}: cannot read the signing key ({exc.strerror})") from None
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: expected an ed25519 key, got {type(key).__name__}")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """One PEM public key; SignatureError (never OSError) when it cannot be read or used."""
    try:
        content = read_limited(path, MAX_SIGNATURE_BYTES, "public key")
    except LimitError as exc:
        raise SignatureError(str(exc)) from None
    except OSError as exc:
        raise SignatureError(f"{path}: cannot read ({exc.strerror or exc})") from None
    data = b"".join(line + b"\n" for line in content.splitlines() if not line.startswith(b"#"))
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise SignatureError(f"{path}: not a PEM public key ({detail})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path}: expected an ed25519 public key")
    return key


def sign(
    content: bytes, private: Ed25519PrivateKey, signer: str, node: str, version: int
) -> Signature:
    """Sign ``content`` for ``node`` as ``version``."""
    manifest = Manifest.from_dict(
        {
            "node": node,
            "version": version,
            "sha256": hashlib.sha256(content).hexdigest(),
            "size": len(content),
        }
    )
    return Signature(
        key_id=key_id(private.public_key()),
        signer=signer,
        manifest=manifest,
        signature=private.sign(manifest.signed_bytes()),
    )


def load_trusted_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Every ``*.pub`` in the board's trust directory, by key id. Fails closed.

    No directory at all means no policy (an empty dict: unsigned configs are accepted). A
    directory that exists in any form but cannot be read completely (a dangling symlink, a
    loop, not a directory, no permission, a damaged key) raises SignatureError: a policy
    that cannot be read must refuse everything, never accept unsigned configs.
    """
    directory = Path(directory)
    try:
        os.lstat(directory)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise _unreadable_policy(directory, exc.strerror or str(exc)) from None
    try:
        paths = sorted(p for p in directory.iterdir() if p.name.endswith(".pub"))
    except OSError as exc:
        raise _unreadable_policy(directory, exc.strerror or str(exc)) from None
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            public = load_public_key(path)
        except SignatureError as exc:
            raise _unreadable_policy(directory, str(exc)) from None
        keys[key_id(public)] = public
    return keys


def _unreadable_policy(directory: Path, why: str) -> SignatureError:
    return SignatureError(
        f"{directory}: the trust policy cannot be read ({why}); every config is refused until "
        "it is fixed (fail closed)"
    )


def verify(
    content: bytes, signature: Signature | None, trusted: dict[str, Ed25519PublicKey], name: str
) -> Manifest:
    """The verified manifest of ``content``; SignatureError unless a trusted key signed it."""
    if signature is None:
        raise SignatureError(
            f"{name}: unsigned, and this board accepts only configs signed by one of its "
            f"{len(trusted)} trusted key(s); sign it with 'wolfpack config sign {name} --key K'"
        )
    public = trusted.get(signature.key_id)
    if public is None:
        raise SignatureError(
            f"{name}: signed by key {signature.key_id} ({signature.signer or 'unknown signer'}), "
            f"which this board does not trust (trusted: {', '.join(sorted(trusted)) or 'none'})"
        )
    manifest = signature.manifest
    try:
        public.verify(signature.signature, manifest.signed_bytes())
    except InvalidSignature:
        raise SignatureError(
            f"{name}: tampered: the signature by key {signature.key_id} does not match its "
            "manifest (the signature file was edited or damaged)"
        ) from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != manifest.sha256 or len(content) != manifest.size:
        raise SignatureError(
            f"{name}: tampered: the signature by key {signature.key_id} does not match; "
            f"its content changed after signing (sha256 now {actual[:16]}..., signed "
            f"{manifest.sha256[:16]}...)"
        )
    return manifest
