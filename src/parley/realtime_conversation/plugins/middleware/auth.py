"""``TokenAuthenticationMiddleware``: token-based authentication with permissions,
over Parley's :class:`parley.conversation.middleware.TokenAuthMiddleware`.

The token is the conversation's (``context.token``): on ``/ws/conversation`` the
``token`` query parameter, an ``Authorization: Bearer`` header or ``start``'s
``metadata.token``; a custom adapter's ``token`` attribute. ``valid_tokens`` is a
set of tokens, each granting ``default_permissions`` (the document's
``conversation`` and ``audio_processing``), or a mapping token → its own
permissions. Each turn, a missing token (unless ``allow_anonymous``), an unknown
one, or one without every permission of :meth:`set_required_permissions` raises
:class:`~parley.errors.AuthError`: the turn is refused before the response
generator runs, the client gets an ``error`` message with code ``auth_error`` (and
the spoken apology), and the conversation goes on. An anonymous conversation
(``allow_anonymous=True``, no token) passes with no permissions and
``metadata["authenticated"] = False``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, cast

from parley.conversation.middleware import MiddlewareContext, TokenAuthMiddleware
from parley.realtime_conversation.core.interfaces import ConversationContext, NextMiddleware

__all__ = ["DEFAULT_PERMISSIONS", "AuthenticationMiddleware", "TokenAuthenticationMiddleware"]

#: What a token of a plain set of ``valid_tokens`` grants.
DEFAULT_PERMISSIONS: Final = frozenset({"conversation", "audio_processing"})


class TokenAuthenticationMiddleware:
    """See the module docstring."""

    def __init__(
        self,
        valid_tokens: Iterable[str] | Mapping[str, Iterable[str]],
        allow_anonymous: bool = False,
        *,
        default_permissions: Iterable[str] = DEFAULT_PERMISSIONS,
    ) -> None:
        if isinstance(valid_tokens, Mapping):
            tokens = {t: frozenset(p) for t, p in valid_tokens.items()}
        else:
            grant = frozenset(default_permissions)
            tokens = {t: grant for t in valid_tokens}
        self.allow_anonymous = allow_anonymous
        self._auth = TokenAuthMiddleware(tokens)

    @property
    def required_permissions(self) -> frozenset[str]:
        return self._auth.required

    def set_required_permissions(self, permissions: Iterable[str]) -> None:
        """Every turn's token must grant all of ``permissions`` (replaces the earlier set)."""
        self._auth.required = frozenset(permissions)

    async def process(
        self, context: ConversationContext, next_middleware: NextMiddleware
    ) -> ConversationContext:
        if not context.token and self.allow_anonymous:
            context.metadata["authenticated"] = False
            return await next_middleware(context)

        async def rest(ctx: MiddlewareContext) -> MiddlewareContext:
            ctx.metadata["authenticated"] = True
            return await next_middleware(cast(ConversationContext, ctx))

        return cast(ConversationContext, await self._auth.process(context, rest))


#: The document's component list calls it ``AuthenticationMiddleware``.
AuthenticationMiddleware = TokenAuthenticationMiddleware
