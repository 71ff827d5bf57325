"""The built-in analytics processor on transcripts whose answers are plain: sentiment from
VADER's lexicon (offline), keyword and MiniLM topics, resolution from the closing turns."""

from __future__ import annotations

import pytest

from parley.analytics import (
    AnalyticsResult,
    DefaultProcessor,
    ResolutionStatus,
    default_processor,
    sentiment_label,
)
from parley.conversation.transcript import Turn
from parley.events import Role
from parley.providers.minilm import MiniLMEmbedder


def talk(*lines: str) -> list[Turn]:
    """Alternating turns, agent first: ``talk("Hi", "I need…", "Sure", …)``."""
    return [
        Turn(Role.ASSISTANT if i % 2 == 0 else Role.USER, text, float(i), float(i) + 1)
        for i, text in enumerate(lines)
    ]


HAPPY = talk(
    "Hi, thanks for calling. How can I help?",
    "Hi, I was charged twice on my bill this month.",
    "I see the duplicate payment. I have refunded it to your card.",
    "Oh great, thank you so much, that really helps!",
    "Is there anything else I can do for you?",
    "No, that's all. Thanks, bye!",
)
ANGRY = talk(
    "Hello, how can I help?",
    "My package still has not arrived and the tracking page is broken.",
    "I'm sorry about that, let me check the order.",
    "This is terrible. You people are useless.",
)
ESCALATED = talk(
    "Hello, how can I help?",
    "I want to cancel my account.",
    "I understand. Let me transfer you to a representative who can do that.",
)
ONGOING = talk(
    "Hello, how can I help?",
    "Can I book an appointment for Tuesday?",
    "Sure, what time works for you?",
)


async def test_sentiment_follows_the_callers_words() -> None:
    happy, angry = await default_processor(HAPPY), await default_processor(ANGRY)
    assert happy.sentiment > 0.2 and happy.sentiment_label == "positive"
    assert angry.sentiment < -0.3 and angry.sentiment_label == "negative"
    # The agent's words do not count: a polite agent does not make an angry call happy.
    polite = [
        *ANGRY,
        Turn(Role.ASSISTANT, "Thank you, wonderful, great, have a lovely day!", 9, 10),
    ]
    assert (await default_processor(polite)).sentiment == pytest.approx(angry.sentiment)
    assert happy.custom["caller_turns"] == 3


async def test_topics_from_keywords_most_mentioned_first() -> None:
    assert (await default_processor(HAPPY)).topics[:2] == ("billing", "refund")
    assert set((await default_processor(ANGRY)).topics) >= {"orders", "technical", "complaint"}
    assert (await default_processor(ONGOING)).topics == ("scheduling",)
    small_talk = talk("Hi!", "Lovely weather today, isn't it?")
    assert (await default_processor(small_talk)).topics == ()


async def test_resolution_from_the_closing_turns() -> None:
    statuses = [(await default_processor(t)).resolution_status for t in (HAPPY, ANGRY)]
    assert statuses == [ResolutionStatus.RESOLVED, ResolutionStatus.UNRESOLVED]
    assert (await default_processor(ESCALATED)).resolution_status is ResolutionStatus.ESCALATED
    assert (await default_processor(ONGOING)).resolution_status is ResolutionStatus.ONGOING
    greeting_only = talk("Hi, thanks for calling. How can I help?")
    assert (await default_processor(greeting_only)).resolution_status is ResolutionStatus.UNKNOWN


async def test_custom_topics() -> None:
    p = DefaultProcessor({"pets": ("dog", "cat", "vet")})
    result = await p(talk("Hello", "My dog needs to see the vet, and the cat too."))
    assert result.topics == ("pets",)


def test_minilm_topics_catch_paraphrases_without_keywords() -> None:
    keywords_only = DefaultProcessor()
    semantic = DefaultProcessor(embedder=MiniLMEmbedder())
    account = talk("Hello", "I forgot my passcode and cannot get in.")
    cancel = talk("Hello", "I would like to stop my subscription.")
    assert keywords_only.analyze(account).topics == ()
    assert keywords_only.analyze(cancel).topics == ()
    assert semantic.analyze(account).topics == ("account",)
    assert semantic.analyze(cancel).topics == ("cancellation",)
    assert semantic.analyze(talk("Hello", "Lovely weather today.")).topics == ()


def test_the_result_type_as_the_seed_writes_it() -> None:
    r = AnalyticsResult(sentiment=0.4, topics=["billing"], resolution_status="resolved")
    assert r.resolution_status is ResolutionStatus.RESOLVED and r.topics == ("billing",)
    mine = AnalyticsResult(sentiment="upbeat", resolution_status="callback-booked")
    assert mine.resolution_status == "callback-booked" and mine.sentiment_label == "upbeat"
    assert mine.as_dict()["resolution_status"] == "callback-booked"
    assert [sentiment_label(x) for x in (0.05, 0.0, -0.05)] == ["positive", "neutral", "negative"]
