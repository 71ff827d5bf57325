"""Pluggable components of the document's library: pause detection, response
generation, middleware."""

from __future__ import annotations

__all__: list[str] = []
