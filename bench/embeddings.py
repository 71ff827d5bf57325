"""MiniLM sentence embeddings in numpy: load time and cost per sentence.

Reference in the same run: the keyword matcher (Snowball stems) on the same
sentence, the cheap path a semantic trigger always takes first.

Run: ``python bench/embeddings.py`` (prints one JSON line).
"""

from __future__ import annotations

import json
import statistics
import time

from parley.conversation.triggers import KeywordMatcher
from parley.providers.minilm import MiniLMEmbedder

SENTENCE = "I want my money back for this order, it arrived broken."


def main() -> None:
    embedder = MiniLMEmbedder()
    t0 = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - t0
    embedder.embed([SENTENCE])  # warm
    one = []
    for _ in range(50):
        t = time.perf_counter()
        embedder.embed([SENTENCE])
        one.append((time.perf_counter() - t) * 1000)
    batch = [f"{SENTENCE} ({i})" for i in range(32)]
    t = time.perf_counter()
    embedder.embed(batch)
    batch_ms = (time.perf_counter() - t) * 1000
    matcher = KeywordMatcher(("refund", "order"))
    kw = []
    for _ in range(200):
        t = time.perf_counter()
        matcher.match(SENTENCE)
        kw.append((time.perf_counter() - t) * 1000)
    print(
        json.dumps(
            {
                "bench": "embeddings",
                "model": "all-MiniLM-L6-v2 (numpy)",
                "load_s": round(load_s, 3),
                "one_sentence_p50_ms": round(statistics.median(one), 2),
                "batch32_ms": round(batch_ms, 1),
                "batch32_per_text_ms": round(batch_ms / 32, 2),
                "reference": "keyword matcher (Snowball stems), same sentence",
                "keyword_match_p50_ms": round(statistics.median(kw), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
