"""Token usage the local server reports in ``response.done`` — an honest estimate.

No model here counts tokens the way OpenAI's do, so the figures are estimates made
by the rules OpenAI documents for the Realtime API (protocols.md §1.8):

- user audio: 1 token per 100 ms (10 tokens/s), rounded up per item;
- assistant audio: 1 token per 50 ms (20 tokens/s), rounded up per item;
- text (instructions, typed messages, transcripts): 1 token per 4 characters,
  rounded up — OpenAI's rule of thumb for English, not a tokenizer;
- as with the real API, every response re-sends the whole conversation as input
  (instructions + all items so far), and the reply's transcript counts as output
  text beside its audio. Nothing is cached, so the cached counts are 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from parley.events import Usage
from parley.protocols.openai_realtime import ResponseUsage, ServerResponse

__all__ = [
    "InputPiece",
    "audio_in_tokens",
    "audio_out_tokens",
    "estimate_usage",
    "response_usage",
    "text_tokens",
]

#: A conversation item as the estimate sees it: (text, user-audio ms, assistant-audio ms).
InputPiece = tuple[str, float, float]


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def audio_in_tokens(ms: float) -> int:
    return math.ceil(ms / 100)


def audio_out_tokens(ms: float) -> int:
    return math.ceil(ms / 50)


def estimate_usage(
    instructions: str, conversation: Iterable[InputPiece], output_text: str, output_audio_ms: float
) -> Usage:
    """Usage of one response: the conversation before it in, the reply out.

    Assistant audio already in the conversation is input audio at the assistant rate
    (it was generated at 20 tokens/s and is re-sent as such).
    """
    in_text = text_tokens(instructions)
    in_audio = 0
    for text, user_ms, assistant_ms in conversation:
        if user_ms or assistant_ms:
            in_audio += audio_in_tokens(user_ms) + audio_out_tokens(assistant_ms)
        else:
            in_text += text_tokens(text)
    return Usage(
        input_text_tokens=in_text,
        input_audio_tokens=in_audio,
        output_text_tokens=text_tokens(output_text),
        output_audio_tokens=audio_out_tokens(output_audio_ms),
    )


def response_usage(rec: ServerResponse) -> ResponseUsage:
    """A finished response's ``usage`` for ``response.done``: the estimate above, over
    the input it answered and its final output."""
    out = rec.out
    out_text = " ".join([out.transcript, *out.arguments]).strip()
    usage = estimate_usage(rec.input_instructions, rec.input_pieces, out_text, out.audio_ms)
    return ResponseUsage.from_usage(usage)
