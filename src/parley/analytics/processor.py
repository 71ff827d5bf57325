"""The built-in analytics processor: sentiment, topics and resolution, offline.

An analytics processor is ``async (transcript: list[Turn]) -> AnalyticsResult``, run
after the call on the :class:`~parley.analytics.queue.AnalyticsQueue`.
:class:`DefaultProcessor` is the one Parley uses when the app registers none:

- **Sentiment** — VADER (``vaderSentiment``), the caller's turns only: the mean of
  each utterance's compound score, −1..1. Chosen because its lexicon and rules ship in
  the wheel (no model download, no network), it was built and validated for short,
  informal, social-media-like text — which is what transcribed phone speech looks like
  (Hutto & Gilbert, ICWSM 2014) — it handles negation, intensifiers ("really") and
  "but" clauses, and it scores an utterance in ~30 µs. A transformer classifier would be
  more accurate on long text but needs torch or an ONNX model download; TextBlob's
  pattern lexicon was built for product reviews and ignores intensity.
- **Topics** — keywords matched on Snowball stems (the context triggers'
  :class:`~parley.conversation.triggers.KeywordMatcher`), per topic of a table you can
  replace; optionally also sentence embeddings (the bundled MiniLM,
  :class:`~parley.providers.minilm.MiniLMEmbedder`) against one description per topic,
  which catches paraphrases without the keywords.
- **Resolution** — from the closing turns: a hand-off phrase → escalated; a complaint
  or a clearly negative close → unresolved; thanks or a closing phrase from the caller
  → resolved; else ongoing (unknown when the caller never spoke).

The work is blocking, so ``__call__`` runs it in the model executor.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

from parley.analytics.result import AnalyticsResult, ResolutionStatus
from parley.conversation.transcript import Turn
from parley.conversation.triggers import Embedder, KeywordMatcher
from parley.events import Role
from parley.providers.models import run_blocking

__all__ = [
    "DEFAULT_TOPICS",
    "TOPIC_DESCRIPTIONS",
    "AnalyticsProcessor",
    "DefaultProcessor",
    "default_processor",
]

AnalyticsProcessor: TypeAlias = Callable[[list[Turn]], Awaitable[AnalyticsResult]]

#: Topic → keywords (stems are matched, so "refunds", "refunded" count for "refund").
DEFAULT_TOPICS: Mapping[str, tuple[str, ...]] = {
    "billing": ("bill", "billing", "invoice", "charge", "payment", "pay", "price", "fee"),
    "refund": ("refund", "money back", "reimburse", "return"),
    "orders": ("order", "delivery", "shipping", "package", "tracking", "parcel", "arrive"),
    "account": ("account", "password", "login", "log in", "sign in", "username", "profile"),
    "technical": ("error", "crash", "not working", "broken", "bug", "outage", "reset"),
    "cancellation": ("cancel", "cancellation", "unsubscribe", "close my account", "terminate"),
    "scheduling": ("appointment", "schedule", "reschedule", "booking", "book", "availability"),
    "complaint": ("complaint", "complain", "unacceptable", "terrible", "worst", "frustrated"),
}

#: One sentence per topic for the embedding match.
TOPIC_DESCRIPTIONS: Mapping[str, str] = {
    "billing": "A question about a bill, a charge or a payment.",
    "refund": "The caller wants their money back for something they returned.",
    "orders": "Where is my order, a delivery or a package that has not arrived.",
    "account": "Trouble logging in, a forgotten password or account details.",
    "technical": "Something is broken, shows an error or does not work.",
    "cancellation": "The caller wants to cancel a subscription or a service.",
    "scheduling": "Booking, moving or cancelling an appointment.",
    "complaint": "The caller is unhappy and complains about the service.",
}

_ESCALATE = (
    "transfer you",
    "transferring you",
    "connect you with",
    "human",
    "real person",
    "representative",
    "supervisor",
    "manager",
    "escalate",
    "speak to someone",
    "talk to someone",
    "live agent",
)
_UNRESOLVED = (
    "still not",
    "still doesn't",
    "didn't help",
    "did not help",
    "doesn't help",
    "does not help",
    "not resolved",
    "not what i asked",
    "useless",
    "forget it",
    "never mind",
    "waste of time",
)
_RESOLVED = (
    "thank",
    "thanks",
    "that's all",
    "that is all",
    "that's it",
    "that helps",
    "that works",
    "perfect",
    "great",
    "got it",
    "all set",
    "sorted",
    "solved",
    "bye",
    "goodbye",
    "have a good",
    "appreciate",
)

_vader: Any = None
_vader_lock = threading.Lock()


def _analyzer() -> Any:
    """VADER's analyzer, loaded once per process (reads its lexicon: ~20 ms)."""
    global _vader
    with _vader_lock:
        if _vader is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            _vader = SentimentIntensityAnalyzer()
        return _vader


def _compound(text: str) -> float:
    return float(_analyzer().polarity_scores(text)["compound"])


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


class DefaultProcessor:
    """Sentiment, topics and resolution of a transcript (module docstring)."""

    def __init__(
        self,
        topics: Mapping[str, Sequence[str]] = DEFAULT_TOPICS,
        *,
        embedder: Embedder | None = None,
        descriptions: Mapping[str, str] = TOPIC_DESCRIPTIONS,
        similarity: float = 0.5,
        closing_turns: int = 4,
    ) -> None:
        self._matchers = {topic: KeywordMatcher(list(words)) for topic, words in topics.items()}
        self._embedder = embedder
        self._descriptions = {t: d for t, d in descriptions.items() if t in topics}
        self._topic_vectors: dict[str, Sequence[float]] | None = None
        self._similarity = similarity
        self._closing = max(1, closing_turns)
        self._escalate = KeywordMatcher(list(_ESCALATE))
        self._unresolved = KeywordMatcher(list(_UNRESOLVED))
        self._resolved = KeywordMatcher(list(_RESOLVED))

    async def __call__(self, transcript: list[Turn]) -> AnalyticsResult:
        return await run_blocking(self.analyze, list(transcript))

    def analyze(self, transcript: Sequence[Turn]) -> AnalyticsResult:
        """The result for ``transcript``. Blocking (VADER, embeddings)."""
        said = [t.text for t in transcript if t.role is Role.USER and t.text.strip()]
        scores = [_compound(text) for text in said]
        sentiment = sum(scores) / len(scores) if scores else 0.0
        closing = scores[-2:]
        return AnalyticsResult(
            sentiment=sentiment,
            topics=self.topics(transcript),
            resolution_status=self.resolution(transcript, closing),
            custom={
                "sentiment_closing": sum(closing) / len(closing) if closing else 0.0,
                "caller_turns": len(said),
            },
        )

    def topics(self, transcript: Sequence[Turn]) -> list[str]:
        """Topics the call touched, the most mentioned first."""
        texts = [t.text for t in transcript if t.text.strip()]
        hits = dict.fromkeys(self._matchers, 0)
        for text in texts:
            for topic, matcher in self._matchers.items():
                hits[topic] += len(matcher.match(text))
        if self._embedder is not None:
            caller = [t.text for t in transcript if t.role is Role.USER and t.text.strip()]
            for topic in self._semantic_topics(caller):
                hits[topic] = max(hits[topic], 1)
        ranked = sorted((t for t, n in hits.items() if n > 0), key=lambda t: -hits[t])
        return ranked

    def _semantic_topics(self, texts: Sequence[str]) -> set[str]:
        assert self._embedder is not None
        if not texts or not self._descriptions:
            return set()
        if self._topic_vectors is None:
            names = list(self._descriptions)
            vectors = self._embedder.embed([self._descriptions[n] for n in names])
            self._topic_vectors = dict(zip(names, vectors, strict=True))
        found = set()
        for vector in self._embedder.embed(list(texts)):
            for topic, tv in self._topic_vectors.items():
                if _cosine(vector, tv) >= self._similarity:
                    found.add(topic)
        return found

    def resolution(
        self, transcript: Sequence[Turn], closing_scores: Sequence[float] | None = None
    ) -> ResolutionStatus:
        """How the call ended, from its last ``closing_turns`` turns."""
        spoken = [t for t in transcript if t.text.strip()]
        if not any(t.role is Role.USER for t in spoken):
            return ResolutionStatus.UNKNOWN
        tail = spoken[-self._closing :]
        caller_tail = [t.text for t in tail if t.role is Role.USER]
        if any(self._escalate.match(t.text) for t in tail):
            return ResolutionStatus.ESCALATED
        if closing_scores is None:
            closing_scores = [_compound(text) for text in caller_tail[-2:]]
        mood = sum(closing_scores) / len(closing_scores) if closing_scores else 0.0
        if any(self._unresolved.match(text) for text in caller_tail) or mood <= -0.3:
            return ResolutionStatus.UNRESOLVED
        if caller_tail and self._resolved.match(caller_tail[-1]) and mood > -0.05:
            return ResolutionStatus.RESOLVED
        return ResolutionStatus.ONGOING


_default: DefaultProcessor | None = None


async def default_processor(transcript: list[Turn]) -> AnalyticsResult:
    """The built-in processor with its default topics (no embeddings)."""
    global _default
    if _default is None:
        _default = DefaultProcessor()
    return await _default(transcript)
