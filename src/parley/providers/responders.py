"""Offline "brains" that satisfy the ``LLM`` seam without a language model.

``EchoResponder`` repeats the caller ("You said: …"); ``TemplateResponder`` maps
ordered patterns to response templates. Both stream their reply word by word,
like a model streams tokens, so the rest of the pipeline (sentence splitting,
TTS, barge-in) behaves as it will with a real LLM.

Template responder configuration (YAML or a dict)::

    variables:               # optional, substituted into every response
      company: Acme
    fallback: "Sorry, I can only help with opening hours. You said: {text}"
    rules:                   # tried in order; the first match answers
      - pattern: "my name is (?P<name>\\w+)"     # a regex, searched case-insensitively
        response: "Nice to meet you, {name}. Welcome to {company}."
      - keywords: [hours, open]                  # or whole words, any of them
        response: "We are open nine to five."

In a response, ``{name}`` is a named regex group, ``{1}`` a numbered group, a
``variables`` entry, or ``{text}`` (the caller's words); ``{{`` is a literal
brace. Unknown names are rejected at load time with a ``ConfigError`` naming the
entry, not discovered mid-call.
"""

from __future__ import annotations

import asyncio
import re
import string
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from parley.errors import ConfigError
from parley.events import Role
from parley.providers.seams import LLMChunk, Message, ToolSpec

__all__ = ["EchoResponder", "TemplateResponder", "TemplateRule"]

_WORD = re.compile(r"\S+\s*")
_FIELD = re.compile(r"^(\w+)$")


class _Formatter(string.Formatter):
    """``str.format`` over one mapping, where ``{1}`` means the key "1" (a regex group)."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        return kwargs[str(key)]


_FORMATTER = _Formatter()


def _last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == Role.USER:
            return message.content.strip()
    return ""


async def _stream_words(text: str, delay_s: float) -> AsyncIterator[LLMChunk]:
    # Word by word, each with its trailing space, so "".join(chunks) == text. The
    # sleep yields to the loop between words (a cancellation point, as with a network LLM).
    for m in _WORD.finditer(text):
        await asyncio.sleep(delay_s)
        yield m.group(0)


class EchoResponder:
    """Replies "You said: <last user message>", streamed word by word."""

    def __init__(
        self,
        *,
        prefix: str = "You said: ",
        empty_reply: str = "I didn't catch that.",
        word_delay_s: float = 0.0,
    ) -> None:
        self._prefix = prefix
        self._empty = empty_reply
        self._delay = word_delay_s

    def reply(self, messages: Sequence[Message]) -> str:
        text = _last_user_text(messages)
        return f"{self._prefix}{text}" if text else self._empty

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        return _stream_words(self.reply(messages), self._delay)


@dataclass(frozen=True, slots=True)
class TemplateRule:
    """One rule: a compiled pattern and the response template it selects."""

    pattern: re.Pattern[str]
    response: str


def _check_template(template: object, allowed: set[str], where: str) -> str:
    if not isinstance(template, str) or not template.strip():
        raise ConfigError("must be a non-empty string", field=where)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"bad template {template!r}: {exc}", field=where) from exc
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        # Plain names only: "{x.attr}" or "{x[0]}" would reach into Python objects.
        if not _FIELD.match(name) or spec or conversion:
            raise ConfigError(
                f"placeholder {{{name}}} must be a plain name or group number", field=where
            )
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"unknown placeholder {{{name}}} (known: {known})", field=where)
    return template


def _compile_rule(entry: object, index: int, variables: Mapping[str, str]) -> TemplateRule:
    where = f"rules[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(
            "must be a mapping with 'pattern' or 'keywords' and 'response'", field=where
        )
    unknown = set(entry) - {"pattern", "keywords", "response"}
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}", field=where)
    if ("pattern" in entry) == ("keywords" in entry):
        raise ConfigError("needs exactly one of 'pattern' or 'keywords'", field=where)
    if "pattern" in entry:
        source = entry["pattern"]
        if not isinstance(source, str) or not source:
            raise ConfigError("must be a non-empty string", field=f"{where}.pattern")
    else:
        keywords = entry["keywords"]
        if isinstance(keywords, str):
            keywords = [keywords]
        if (
            not isinstance(keywords, list)
            or not keywords
            or not all(isinstance(k, str) and k.strip() for k in keywords)
        ):
            raise ConfigError("must be a non-empty list of strings", field=f"{where}.keywords")
        source = r"\b(?:" + "|".join(re.escape(k.strip()) for k in keywords) + r")\b"
    try:
        pattern = re.compile(source, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"bad regex {source!r}: {exc}", field=f"{where}.pattern") from exc
    allowed = {"text", *variables, *pattern.groupindex}
    allowed.update(str(i) for i in range(pattern.groups + 1))
    response = _check_template(entry.get("response"), allowed, f"{where}.response")
    return TemplateRule(pattern=pattern, response=response)


class TemplateResponder:
    """Ordered pattern → response rules with variable substitution and a fallback."""

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any]],
        *,
        fallback: str = "Sorry, I don't know how to help with that.",
        variables: Mapping[str, object] | None = None,
        word_delay_s: float = 0.0,
    ) -> None:
        if not isinstance(rules, Sequence) or isinstance(rules, str):
            raise ConfigError("must be a list of rules", field="rules")
        variables = variables or {}
        if not isinstance(variables, Mapping) or not all(
            isinstance(k, str) and _FIELD.match(k) for k in variables
        ):
            raise ConfigError("must map plain names to values", field="variables")
        self._variables = {k: str(v) for k, v in variables.items()}
        self._rules = tuple(_compile_rule(e, i, self._variables) for i, e in enumerate(rules))
        self._fallback = _check_template(fallback, {"text", *self._variables}, "fallback")
        self._delay = word_delay_s

    @classmethod
    def from_dict(
        cls, config: Mapping[str, Any], *, word_delay_s: float = 0.0
    ) -> TemplateResponder:
        if not isinstance(config, Mapping):
            raise ConfigError("template responder config must be a mapping")
        unknown = set(config) - {"rules", "fallback", "variables"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", field="template")
        if "rules" not in config:
            raise ConfigError("is required", field="rules")
        kwargs: dict[str, Any] = {}
        if "fallback" in config:
            kwargs["fallback"] = config["fallback"]
        return cls(
            config["rules"],
            variables=config.get("variables"),
            word_delay_s=word_delay_s,
            **kwargs,
        )

    @classmethod
    def from_yaml(cls, source: str | Path, *, word_delay_s: float = 0.0) -> TemplateResponder:
        """Load from a YAML file, or from YAML text when ``source`` is a ``str`` with a newline."""
        if isinstance(source, Path) or "\n" not in source:
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read {source}: {exc}", field="template") from exc
        else:
            text = source
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", field="template") from exc
        return cls.from_dict(config, word_delay_s=word_delay_s)

    @property
    def rules(self) -> tuple[TemplateRule, ...]:
        return self._rules

    def reply(self, messages: Sequence[Message]) -> str:
        text = _last_user_text(messages)
        values: dict[str, str] = {**self._variables, "text": text}
        for rule in self._rules:
            m = rule.pattern.search(text)
            if m is None:
                continue
            values["0"] = m.group(0)
            for i, group in enumerate(m.groups(), start=1):
                values[str(i)] = group or ""
            values.update({k: v or "" for k, v in m.groupdict().items()})
            return _FORMATTER.vformat(rule.response, (), values)
        return _FORMATTER.vformat(self._fallback, (), values)

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        return _stream_words(self.reply(messages), self._delay)
