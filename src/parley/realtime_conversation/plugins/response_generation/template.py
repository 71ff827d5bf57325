"""``TemplateResponseGenerator``: pattern matching with variable substitution —
Parley's :class:`parley.providers.responders.TemplateResponder`.

Rules are tried in order; each has a ``pattern`` (a regex, searched
case-insensitively) or ``keywords`` (whole words), and a ``response`` in which
``{name}`` is a named group, ``{1}`` a numbered one, ``{text}`` the user's words or
a ``variables`` entry (checked when the rules load, never mid-call). Without rules,
Parley's built-in ones (the ``template`` brain: greetings, goodbyes, "I heard you
say: …"). ``template_file`` loads rules from YAML (``rules``, ``fallback``,
``variables``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from parley.providers.responders import TemplateResponder
from parley.providers.seams import LLM
from parley.realtime_conversation.plugins.response_generation.base import LLMResponseGenerator

__all__ = ["TemplateResponseGenerator"]


class TemplateResponseGenerator(LLMResponseGenerator):
    """See the module docstring; a bad rule raises ``ConfigError`` naming it."""

    def __init__(
        self,
        templates: Sequence[Mapping[str, Any]] | None = None,
        *,
        fallback: str | None = None,
        variables: Mapping[str, object] | None = None,
        template_file: str | Path | None = None,
    ) -> None:
        llm: LLM | str
        if template_file is not None:
            llm = TemplateResponder.from_yaml(Path(template_file))
        elif templates is not None or fallback is not None or variables is not None:
            kwargs: dict[str, Any] = {} if fallback is None else {"fallback": fallback}
            llm = TemplateResponder(list(templates or ()), variables=variables, **kwargs)
        else:
            llm = "template"  # the registry's built-in rules
        super().__init__(llm)
