"""Compliance controls at the store and log boundaries (docs/compliance.md).

- :class:`FieldCipher` — AES-256-GCM for transcript fields at rest. Chosen over
  Fernet because GCM takes *associated data*: each ciphertext is bound to its row
  (session id and turn index), so a ciphertext copied into another row fails to
  decrypt instead of showing there; it is also one pass with a 12-byte nonce and a
  16-byte tag, where Fernet is AES-128-CBC plus HMAC with base64 and a timestamp.
  Keys come from settings as ``kid:base64key`` pairs; the first encrypts, all
  decrypt (rotation: add the new key first, keep the old until its rows are purged).
- :class:`ProtectedSessionStore` — wraps any ``SessionStore``: on the way in it
  redacts PII from turn text and metadata (when ``redact``) and encrypts turn text,
  metadata and config (when a cipher is given); on the way out it decrypts. Owner ids
  and times stay clear, since listings and purges query them.
- :class:`RedactingFilter` — a ``logging.Filter`` that redacts every record's message.
- :class:`CompliancePolicy` — the switches, with ``compliance_mode="HIPAA"`` meaning:
  no audio retained, transcripts redacted and encrypted at rest, ``synchronous=FULL``,
  retention in days enforced by :class:`RetentionJob`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parley.conversation.pii import redact_pii
from parley.errors import ConfigError
from parley.store._sqlite import Synchronous
from parley.store.records import (
    SessionRecord,
    SessionStatus,
    SessionStore,
    StoredSession,
    StoredTurn,
)
from parley.tasks import cancel_and_wait

__all__ = [
    "ENCRYPTED_PREFIX",
    "CompliancePolicy",
    "FieldCipher",
    "ProtectedSessionStore",
    "RedactingFilter",
    "Redactor",
    "RetentionJob",
    "default_redactor",
    "generate_key",
]

log = logging.getLogger("parley.compliance")

ENCRYPTED_PREFIX: Final = "enc:v1:"
Redactor = Callable[[str], str]


def default_redactor(text: str) -> str:
    """Parley's PII redactor (e-mail, card, SSN, phone), as one ``str → str``."""
    return redact_pii(text)[0]


def generate_key() -> str:
    """A new 256-bit key in the settings form (base64url)."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _key(raw: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError:
        raise ConfigError("an encryption key is base64", field="encryption_key") from None
    if len(key) != 32:
        raise ConfigError("an encryption key has 32 bytes (AES-256)", field="encryption_key")
    return key


class FieldCipher:
    """Encrypts text fields: ``enc:v1:{kid}:{base64(nonce ‖ ciphertext ‖ tag)}``."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ConfigError("the current key id is not among the keys", field="encryption_key")
        self._aead = {kid: AESGCM(k) for kid, k in keys.items()}
        self.current = current

    @classmethod
    def from_setting(cls, value: str) -> FieldCipher:
        """``"kid:key,kid2:key2"`` (the first encrypts) or a single ``key`` (kid ``k1``)."""
        pairs: dict[str, bytes] = {}
        first = ""
        for part in (p.strip() for p in value.split(",") if p.strip()):
            kid, sep, raw = part.rpartition(":")
            kid = kid if sep else "k1"
            if not kid.isalnum():
                raise ConfigError("a key id is letters and digits", field="encryption_key")
            pairs[kid] = _key(raw)
            first = first or kid
        if not pairs:
            raise ConfigError("no encryption key given", field="encryption_key")
        return cls(pairs, first)

    def encrypt(self, text: str, aad: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead[self.current].encrypt(nonce, text.encode(), aad.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{ENCRYPTED_PREFIX}{self.current}:{body}"

    def decrypt(self, value: str, aad: str) -> str:
        """The plaintext; a value without the prefix (written before encryption was
        turned on) is returned as it is."""
        if not value.startswith(ENCRYPTED_PREFIX):
            return value
        kid, _, body = value[len(ENCRYPTED_PREFIX) :].partition(":")
        aead = self._aead.get(kid)
        if aead is None:
            raise ConfigError(f"no key {kid!r} to decrypt with", field="encryption_key")
        raw = base64.urlsafe_b64decode(body)
        try:
            return aead.decrypt(raw[:12], raw[12:], aad.encode()).decode()
        except InvalidTag:
            raise ConfigError(
                "a stored field does not decrypt: wrong key, or it was altered or moved",
                field="encryption_key",
            ) from None


@dataclass(frozen=True, slots=True)
class CompliancePolicy:
    mode: Literal["none", "HIPAA"] = "none"
    redact_at_rest: bool = False
    cipher: FieldCipher | None = None
    retain_audio: bool = True
    retention_days: float | None = None
    synchronous: Synchronous = "NORMAL"

    @classmethod
    def from_settings(
        cls,
        compliance_mode: str | None = None,
        *,
        encryption_key: str | None = None,
        retention_days: float | None = None,
        redact_at_rest: bool | None = None,
    ) -> CompliancePolicy:
        cipher = FieldCipher.from_setting(encryption_key) if encryption_key else None
        if compliance_mode in (None, "", "none"):
            return cls(
                redact_at_rest=bool(redact_at_rest), cipher=cipher, retention_days=retention_days
            )
        if compliance_mode.upper() != "HIPAA":
            raise ConfigError(
                f"unknown compliance_mode {compliance_mode!r}", field="compliance_mode"
            )
        if cipher is None:
            raise ConfigError(
                "HIPAA mode encrypts transcripts at rest: set an encryption key "
                "(PARLEY_ENCRYPTION_KEY, or encryption_key in the settings; "
                "parley.store.compliance.generate_key() makes one)",
                field="encryption_key",
            )
        return cls(
            mode="HIPAA",
            redact_at_rest=True if redact_at_rest is None else redact_at_rest,
            cipher=cipher,
            retain_audio=False,
            retention_days=30.0 if retention_days is None else retention_days,
            synchronous="FULL",
        )

    def protect(
        self, store: SessionStore, *, redactor: Redactor = default_redactor
    ) -> SessionStore:
        """``store`` wrapped by this policy (itself when nothing applies)."""
        if not self.redact_at_rest and self.cipher is None:
            return store
        return ProtectedSessionStore(
            store, cipher=self.cipher, redactor=redactor if self.redact_at_rest else None
        )


class ProtectedSessionStore:
    """A ``SessionStore`` that redacts and encrypts on write and decrypts on read."""

    def __init__(
        self,
        inner: SessionStore,
        *,
        cipher: FieldCipher | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.inner = inner
        self.cipher = cipher
        self.redactor = redactor

    def _redact_value(self, value: Any) -> Any:
        if self.redactor is None:
            return value
        if isinstance(value, str):
            return self.redactor(value)
        if isinstance(value, Mapping):
            return {k: self._redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact_value(v) for v in value]
        return value

    def _seal(self, value: dict[str, Any], aad: str) -> dict[str, Any]:
        if self.cipher is None or not value:
            return value
        return {"$enc": self.cipher.encrypt(json.dumps(value, ensure_ascii=False), aad)}

    def _open(self, value: dict[str, Any], aad: str) -> dict[str, Any]:
        sealed = value.get("$enc")
        if self.cipher is None or not isinstance(sealed, str) or len(value) != 1:
            return value
        opened: dict[str, Any] = json.loads(self.cipher.decrypt(sealed, aad))
        return opened

    def _protect_record(self, r: SessionRecord) -> SessionRecord:
        sid = r.session_id
        return replace(
            r,
            metadata=self._seal(self._redact_value(r.metadata), f"{sid}:metadata"),
            config=self._seal(r.config, f"{sid}:config"),
        )

    def _reveal_record(self, r: SessionRecord) -> SessionRecord:
        sid = r.session_id
        return replace(
            r,
            metadata=self._open(r.metadata, f"{sid}:metadata"),
            config=self._open(r.config, f"{sid}:config"),
        )

    async def save_record(self, record: SessionRecord) -> None:
        await self.inner.save_record(self._protect_record(record))

    async def append_turn(self, session_id: str, turn: StoredTurn) -> None:
        text = self.redactor(turn.text) if self.redactor is not None else turn.text
        if self.cipher is not None:
            text = self.cipher.encrypt(text, f"{session_id}:{turn.index}")
        await self.inner.append_turn(session_id, replace(turn, text=text))

    async def load(self, session_id: str) -> StoredSession | None:
        s = await self.inner.load(session_id)
        if s is None:
            return None
        turns = s.turns
        if self.cipher is not None:
            c = self.cipher
            turns = tuple(
                replace(t, text=c.decrypt(t.text, f"{session_id}:{t.index}")) for t in turns
            )
        return StoredSession(self._reveal_record(s.record), turns)

    async def get_record(self, session_id: str) -> SessionRecord | None:
        r = await self.inner.get_record(session_id)
        return None if r is None else self._reveal_record(r)

    async def list(
        self,
        *,
        tenant: str | None,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        limit: int = 100,
    ) -> Sequence[SessionRecord]:
        found = await self.inner.list(tenant=tenant, user_id=user_id, status=status, limit=limit)
        return [self._reveal_record(r) for r in found]

    async def mark_ended(self, session_id: str, *, ended_at: float, reason: str = "") -> bool:
        return await self.inner.mark_ended(session_id, ended_at=ended_at, reason=reason)

    async def purge_older_than(self, cutoff: float) -> int:
        return await self.inner.purge_older_than(cutoff)

    async def delete(self, session_id: str) -> bool:
        return await self.inner.delete(session_id)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RedactingFilter(logging.Filter):
    """Redacts PII from each record's formatted message (and drops its args, so a
    handler cannot format the raw values again). Add it to the *handlers*: a filter on
    a logger does not see records its children propagate."""

    def __init__(self, redactor: Redactor = default_redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True

    @classmethod
    def install(cls, logger: logging.Logger | None = None) -> RedactingFilter:
        """Add one filter to every handler of ``logger`` (the root logger by default)."""
        f = cls()
        for handler in (logger or logging.getLogger()).handlers:
            handler.addFilter(f)
        return f


class RetentionJob:
    """Deletes sessions older than ``retention_days`` now and every ``every_seconds``."""

    def __init__(
        self,
        store: SessionStore,
        retention_days: float,
        *,
        every_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retention_days <= 0:
            raise ConfigError("retention_days must be positive", field="retention_days")
        self.store = store
        self.retention_days = retention_days
        self.every_seconds = every_seconds
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.purged = 0

    async def run_once(self) -> int:
        cutoff = self._clock() - self.retention_days * 86400
        n = await self.store.purge_older_than(cutoff)
        self.purged += n
        if n:
            log.info("retention: purged %d session(s) older than %g days", n, self.retention_days)
        return n

    def start(self) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.run_once()
                except Exception:  # any backend's failure: the job must outlive one round
                    log.exception("retention purge failed; retrying in %g s", self.every_seconds)
                await asyncio.sleep(self.every_seconds)

        self._task = asyncio.create_task(loop(), name="parley-retention")

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
