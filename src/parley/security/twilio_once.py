"""Phone one-time stream tokens (Twilio, Telnyx, Vonage, Plivo) made single-use across
worker processes, nodes and restarts: the seam the switchboard plugs each platform's
``StreamTokens`` into.

``StreamTokens`` (``parley.server.tokens``; ``TwilioTokens`` is Twilio's) proves a
token is ours, for this call and unexpired, statelessly; its own used-set only covers
one process. Here a successful
check also *claims* the token in a :class:`~parley.store.kv.OnceStore` until the
token's expiry (Redis: ``SET NX PX``), so a second use anywhere is refused. The claim
key is the token's SHA-256: the store never holds a usable token.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Protocol

from parley.errors import AuthError
from parley.store.kv import OnceStore

__all__ = ["SingleUseTokens", "SingleUseTwilioTokens", "TokenIssuer"]


class TokenIssuer(Protocol):
    """What ``parley.server.tokens.StreamTokens`` offers."""

    def issue(self, call_sid: str, caller: str = "") -> str: ...

    def check(self, token: str | None, call_sid: str, caller: str = "") -> None: ...


class SingleUseTokens:
    """One platform's tokens (``platform`` names the claim keys, so a Telnyx claim
    never collides with a Twilio one)."""

    def __init__(
        self,
        tokens: TokenIssuer,
        once: OnceStore,
        *,
        platform: str = "twilio",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = tokens
        self.once = once
        self.platform = platform
        self._clock = clock

    def issue(self, call_sid: str, caller: str = "") -> str:
        return self.tokens.issue(call_sid, caller)

    async def check(self, token: str | None, call_sid: str, caller: str = "") -> None:
        """Accept ``token`` once, anywhere; ``AuthError`` saying why not."""
        self.tokens.check(token, call_sid, caller)  # ours, this call, not expired
        assert token is not None
        expiry = int(token.split(".", 1)[0])
        ttl = max(1.0, math.ceil(expiry - self._clock()) + 1)
        digest = hashlib.sha256(token.encode()).hexdigest()
        if not await self.once.claim(f"{self.platform}-token:{digest}", ttl):
            raise AuthError("token already used")

    async def first_webhook(self, call_sid: str, ttl_seconds: float = 3600.0) -> bool:
        """True the first time a (signed) voice webhook for ``call_sid`` is seen: a
        replayed webhook then gets no fresh token. (Twilio retries a webhook that
        failed; a retry after a failure that minted nothing is refused too, so use it
        where replays matter more than that retry.)"""
        return await self.once.claim(f"{self.platform}-webhook:{call_sid}", ttl_seconds)


#: The name the first release used (Twilio was the only phone platform).
SingleUseTwilioTokens = SingleUseTokens
