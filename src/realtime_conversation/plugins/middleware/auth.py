"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.middleware.auth`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.middleware.auth import (
    DEFAULT_PERMISSIONS,
    AuthenticationMiddleware,
    TokenAuthenticationMiddleware,
)

__all__ = ["DEFAULT_PERMISSIONS", "AuthenticationMiddleware", "TokenAuthenticationMiddleware"]
