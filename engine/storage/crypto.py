"""Sensitive fields encrypted at rest: AES-256-GCM with a key derived from the CRM_SECRET_KEY environment variable.

A stored value is `v1:` + base64(nonce || ciphertext+tag); the nonce is random per value, so equal values look
different in the database (which is why sensitive fields cannot be unique, indexed, searched, sorted or filtered)."""

from __future__ import annotations

import base64
import os
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import CrmError
from engine.schema.model import SENSITIVE_KINDS

__all__ = ["KEY_ENV", "SENSITIVE_KINDS", "EncryptedText", "KeyMissing", "decrypt", "encrypt", "has_key", "mask"]

#: The environment variable holding the secret the encryption key is derived from.
KEY_ENV = "CRM_SECRET_KEY"

_VERSION = "v1:"
_INFO = b"crm-builder sensitive fields v1"
_NONCE_BYTES = 12


class KeyMissing(CrmError):
    """Sensitive values cannot be written or read: CRM_SECRET_KEY is not set, or it is not the key they were
    written with."""


@lru_cache(maxsize=4)
def _aead(secret: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode("utf-8"))
    return AESGCM(key)


def has_key() -> bool:
    """Whether CRM_SECRET_KEY is set (non-empty)."""
    return bool(os.environ.get(KEY_ENV))


def _current() -> AESGCM:
    secret = os.environ.get(KEY_ENV)
    if not secret:
        raise KeyMissing(f"sensitive fields need the encryption key: set the {KEY_ENV} environment variable")
    return _aead(secret)


def encrypt(text: str) -> str:
    """A text value as stored ciphertext (`v1:...`)."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _current().encrypt(nonce, text.encode("utf-8"), None)
    return _VERSION + base64.b64encode(nonce + sealed).decode("ascii")


def decrypt(stored: str) -> str:
    """Stored ciphertext back to text; KeyMissing when the key is absent or wrong, or the value was tampered with."""
    if not stored.startswith(_VERSION):
        raise KeyMissing("a sensitive value is not in the encrypted format (v1:...); was it written unencrypted?")
    try:
        raw = base64.b64decode(stored[len(_VERSION):], validate=True)
        return _current().decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None).decode("utf-8")
    except (InvalidTag, ValueError):
        raise KeyMissing(f"a sensitive value cannot be decrypted: {KEY_ENV} is not the key it was written with,"
                         " or the stored value was changed") from None


class EncryptedText(sa.types.TypeDecorator[str]):
    """A text column whose values are encrypted on the way in and decrypted on the way out."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else encrypt(str(value))

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else decrypt(value)


def mask(value: Any) -> str:
    """A sensitive value as lists show it: bullets and the last two characters ("•••••34"); empty stays empty."""
    if value is None or value == "":
        return ""
    text = str(value)
    return "•••••" + (text[-2:] if len(text) > 4 else "")
