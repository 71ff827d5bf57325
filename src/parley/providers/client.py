"""What the hosted providers share: closing the SDK client they created.

A provider given a ``client`` by the caller leaves it open (the caller owns it); one
that built its own closes it in ``aclose()`` or at the end of ``async with``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

__all__ = ["ClosableClient", "OwnedClient"]


class ClosableClient(Protocol):
    """The part of ``AsyncOpenAI`` / ``AsyncAnthropic`` used here."""

    async def close(self) -> None: ...


class OwnedClient:
    """Mixin: ``aclose()`` and ``async with`` for a provider holding ``_client``."""

    _client: ClosableClient
    _owns_client: bool

    async def aclose(self) -> None:
        """Close the HTTP connection pool (not a ``client`` that was passed in)."""
        if self._owns_client:
            await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
