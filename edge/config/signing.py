"""Ed25519 signatures over the exact bytes of a config file.

The signature lives in a detached ``FILE.sig`` (JSON) so the YAML a technician reads is the
YAML that was signed, byte for byte. A board trusts the public keys in its trust directory;
a refusal says which of the three things went wrong: no signature, a key the board does not
trust, or content that no longer matches what was signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_FORMAT = "wolfpack-config-signature/1"


class SignatureError(Exception):
    """A config refused by the signature policy; the message says why."""


@dataclass(frozen=True)
class Signature:
    key_id: str
    signer: str
    sha256: str
    signature: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": SIGNATURE_FORMAT,
                "algorithm": "ed25519",
                "key_id": self.key_id,
                "signer": self.signer,
                "sha256": self.sha256,
                "signature": base64.b64encode(self.signature).decode("ascii"),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> Signature:
        try:
            raw = json.loads(text)
            if raw.get("format") != SIGNATURE_FORMAT or raw.get("algorithm") != "ed25519":
                raise ValueError(f"expected format {SIGNATURE_FORMAT!r} with ed25519")
            return cls(
                key_id=str(raw["key_id"]),
                signer=str(raw.get("signer", "")),
                sha256=str(raw["sha256"]),
                signature=base64.b64decode(raw["signature"], validate=True),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SignatureError(f"{where}: not a readable signature file ({exc})") from None


def key_id(public: Ed25519PublicKey) -> str:
    """Short, stable name of a public key: first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(private_path: Path, signer: str) -> tuple[Path, str]:
    """Write a new private key (mode 0600) and ``<name>.pub``; return the public path and id."""
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists; refusing to overwrite a signing key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path = private_path.with_suffix(".pub")
    public = private.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    comment = f"# wolfpack config signing key {key_id(public)} of {signer}\n".encode()
    public_path.write_bytes(comment + public_pem)
    return public_path, key_id(public)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise SignatureError(f"{path}: signing key not found") from None
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: expected an ed25519 key, got {type(key).__name__}")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = b"".join(
        line + b"\n" for line in path.read_bytes().splitlines() if not line.startswith(b"#")
    )
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SignatureError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path}: expected an ed25519 public key")
    return key


def sign(content: bytes, private: Ed25519PrivateKey, signer: str) -> Signature:
    return Signature(
        key_id=key_id(private.public_key()),
        signer=signer,
        sha256=hashlib.sha256(content).hexdigest(),
        signature=private.sign(content),
    )


def load_trusted_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Every ``*.pub`` in the board's trust directory, by key id."""
    keys: dict[str, Ed25519PublicKey] = {}
    if directory.is_dir():
        for path in sorted(directory.glob("*.pub")):
            public = load_public_key(path)
            keys[key_id(public)] = public
    return keys


def verify(
    content: bytes, signature: Signature | None, trusted: dict[str, Ed25519PublicKey], name: str
) -> None:
    """Raise SignatureError unless ``content`` is signed by one of the ``trusted`` keys."""
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
    actual = hashlib.sha256(content).hexdigest()
    try:
        public.verify(signature.signature, content)
    except InvalidSignature:
        changed = (
            "its content changed after signing"
            if actual != signature.sha256
            else ("the signature itself is damaged")
        )
        raise SignatureError(
            f"{name}: tampered: the signature by key {signature.key_id} does not match; "
            f"{changed} (sha256 now {actual[:16]}..., signed {signature.sha256[:16]}...)"
        ) from None
