"""The offline brains (echo, templates) and the streaming sentence splitter."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from parley.errors import ConfigError
from parley.events import Role
from parley.providers import LLM, Message
from parley.providers.responders import EchoResponder, TemplateResponder
from parley.providers.sentences import SentenceSplitter, split_sentences


def convo(*user_texts: str) -> list[Message]:
    out = [Message(Role.SYSTEM, "be nice")]
    for text in user_texts:
        out += [Message(Role.USER, text), Message(Role.ASSISTANT, "ok")]
    return out[:-1]


async def chunks_of(llm: LLM, messages: Sequence[Message]) -> list[str]:
    out: list[str] = []
    async for chunk in llm.stream(messages):
        assert isinstance(chunk, str)
        out.append(chunk)
    return out


# --- echo -------------------------------------------------------------------------------


async def test_echo_streams_the_last_user_message_word_by_word() -> None:
    echo = EchoResponder()
    assert isinstance(echo, LLM)
    chunks = await chunks_of(echo, convo("first thing", "I need a taxi  to the airport."))
    assert "".join(chunks) == "You said: I need a taxi  to the airport."
    assert chunks[:3] == ["You ", "said: ", "I "]
    assert len(chunks) == 9


async def test_echo_without_user_words() -> None:
    assert "".join(await chunks_of(EchoResponder(), [Message(Role.SYSTEM, "x")])) == (
        "I didn't catch that."
    )
    echo = EchoResponder(prefix="Heard: ", empty_reply="Hm?")
    assert "".join(await chunks_of(echo, convo("   "))) == "Hm?"
    assert "".join(await chunks_of(echo, convo("yes"))) == "Heard: yes"


async def test_echo_stream_is_cancellable_between_words() -> None:
    echo = EchoResponder(word_delay_s=0.05)
    got: list[str] = []
    first = asyncio.Event()

    async def consume() -> None:
        async for chunk in echo.stream(convo("one two three four five six seven eight")):
            assert isinstance(chunk, str)
            got.append(chunk)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)  # under way: the next word is 50 ms off
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 1 <= len(got) < 5


# --- templates --------------------------------------------------------------------------

CONFIG = """
variables:
  company: Acme
  hours: nine to five
fallback: "Sorry, {company} can only help with orders. You said: {text}"
rules:
  - pattern: "my name is (?P<name>\\\\w+)"
    response: "Nice to meet you, {name}. Welcome to {company}."
  - keywords: [hours, open]
    response: "We are open {hours}."
  - pattern: "order (\\\\d+)"
    response: "Looking up order {1} ({0})."
  - pattern: "open the pod bay doors"
    response: "never reached: the keyword rule above matches first"
"""


@pytest.fixture
def templates(tmp_path: Path) -> TemplateResponder:
    path = tmp_path / "brain.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return TemplateResponder.from_yaml(path)


@pytest.mark.parametrize(
    ("said", "reply"),
    [
        ("Hi, my name is Ada!", "Nice to meet you, Ada. Welcome to Acme."),
        ("MY NAME IS bob", "Nice to meet you, bob. Welcome to Acme."),
        ("When are you open?", "We are open nine to five."),
        ("what are your HOURS", "We are open nine to five."),
        ("please open the pod bay doors", "We are open nine to five."),
        ("Where is order 1234?", "Looking up order 1234 (order 1234)."),
        ("reopening soon?", "Sorry, Acme can only help with orders. You said: reopening soon?"),
    ],
)
async def test_templates_match_in_order(
    templates: TemplateResponder, said: str, reply: str
) -> None:
    assert isinstance(templates, LLM)
    assert "".join(await chunks_of(templates, convo("ignored", said))) == reply


def test_templates_from_text_and_dict_agree(templates: TemplateResponder) -> None:
    from_text = TemplateResponder.from_yaml(CONFIG)
    msgs = convo("my name is Eve")
    assert (
        from_text.reply(msgs) == templates.reply(msgs) == "Nice to meet you, Eve. Welcome to Acme."
    )
    plain = TemplateResponder([{"keywords": "refund", "response": "Refunds take {days} days."}],
                              variables={"days": 5})  # fmt: skip
    assert plain.reply(convo("I want a refund")) == "Refunds take 5 days."
    assert plain.reply(convo("hello")) == "Sorry, I don't know how to help with that."


def test_literal_braces_and_optional_groups() -> None:
    brain = TemplateResponder.from_dict(
        {"rules": [{"pattern": r"code (?P<c>\d+)?x", "response": "{{code}} = [{c}]"}]}
    )
    assert brain.reply(convo("code x")) == "{code} = []"
    assert brain.reply(convo("code 42x")) == "{code} = [42]"


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"rules": [{"pattern": "(", "response": "x"}]}, "rules[0].pattern", "bad regex"),
        (
            {"rules": [{"pattern": "a", "response": "x"}, {"pattern": "b", "response": "{nme}"}]},
            "rules[1].response",
            "unknown placeholder {nme}",
        ),
        ({"rules": [{"pattern": "(a)", "response": "{2}"}]}, "rules[0].response", "{2}"),
        ({"rules": [{"pattern": "a", "response": "{text.upper}"}]}, "rules[0].response", "plain"),
        ({"rules": [{"pattern": "a", "response": "{text!r}"}]}, "rules[0].response", "plain"),
        ({"rules": [{"pattern": "a", "response": "{"}]}, "rules[0].response", "bad template"),
        ({"rules": [{"pattern": "a"}]}, "rules[0].response", "non-empty"),
        ({"rules": [{"response": "x"}]}, "rules[0]", "exactly one"),
        ({"rules": [{"pattern": "a", "keywords": ["a"], "response": "x"}]}, "rules[0]", "exactly"),
        ({"rules": [{"keywords": [], "response": "x"}]}, "rules[0].keywords", "non-empty"),
        ({"rules": [{"pattern": "a", "response": "x", "weight": 2}]}, "rules[0]", "weight"),
        ({"rules": ["just a string"]}, "rules[0]", "mapping"),
        ({"rules": "nope"}, "rules", "list"),
        ({"fallback": "x"}, "rules", "required"),
        ({"rules": [], "fallback": "{who}"}, "fallback", "{who}"),
        ({"rules": [], "variables": {"not a name": 1}}, "variables", "plain names"),
        ({"rules": [], "extra": 1}, "template", "extra"),
    ],
)
def test_bad_config_names_the_entry(config: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        TemplateResponder.from_dict(config)
    assert info.value.field == field
    assert words in str(info.value)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        TemplateResponder.from_yaml("rules: [\n  {pattern: a")
    with pytest.raises(ConfigError, match="cannot read"):
        TemplateResponder.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        TemplateResponder.from_yaml("- a\n- b\n")


# --- sentence splitter ------------------------------------------------------------------


def stream_split(text: str, step: int, **kwargs: int) -> list[str]:
    splitter = SentenceSplitter(**kwargs)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += splitter.push(text[i : i + step])
    return out + splitter.flush()


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("Dr. Smith paid $3.50 today! Great.", ["Dr. Smith paid $3.50 today!", "Great."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("Call J. R. Smith, e.g. at noon. Ok", ["Call J. R. Smith,", "e.g. at noon.", "Ok"]),
        ("Call Mr. Li, e.g. now. Ok", ["Call Mr. Li, e.g. now.", "Ok"]),
        ("Wait... what?! No way", ["Wait...", "what?!", "No way"]),
        ("First:\n- one\n- two", ["First:", "- one", "- two"]),
        (
            "Well, I think the weather tomorrow, as far as I know, will be sunny.",
            ["Well, I think the weather tomorrow,", "as far as I know, will be sunny."],
        ),
        ("no punctuation at all", ["no punctuation at all"]),
        ("  ", []),
        ("?! ...", []),
    ],
)
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_splitter_pieces_do_not_depend_on_how_text_streams(
    text: str, pieces: list[str], step: int
) -> None:
    assert stream_split(text, step) == pieces
    assert split_sentences(text) == pieces


def test_splitter_emits_a_sentence_as_soon_as_its_end_is_certain() -> None:
    s = SentenceSplitter()
    assert s.push("It costs 3.") == []  # might be 3.14: wait
    assert s.push("14 dollars.") == []
    assert s.push(" And") == ["It costs 3.14 dollars."]
    assert s.flush() == ["And"]


def test_splitter_long_clauses_and_hard_cuts() -> None:
    words = " ".join(["word"] * 100)
    pieces = stream_split(words, 7, max_chars=50, long_clause_chars=40)
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == words
    text = "A" * 10 + ", " + "b " * 50 + ", c."
    pieces = stream_split(text, 5, long_clause_chars=40)
    assert pieces[0].endswith(",") and len(pieces) == 2
    with pytest.raises(ValueError):
        SentenceSplitter(first_clause_chars=0)
