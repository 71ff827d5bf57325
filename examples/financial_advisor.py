"""Financial advisor (seed 002): a first meeting with a virtual adviser:
disclaimer, facts, risk tolerance, a recommendation, next steps.

The flow is ``financial_advisor.yaml`` next to this file (validated at load);
``config`` is that flow as seed 002's ``ConversationConfig`` — the JSON body of ``POST
/conversations`` — with this example's system instructions and maximum length.

Run a Parley server (``parley serve``), then::

    python examples/financial_advisor.py [http://127.0.0.1:8000]

creates the conversation and prints its ``session_id``; talk to it over the Realtime
protocol (PCM16 24 kHz) at ``/realtime/{session_id}``, e.g. ``parley talk
ws://127.0.0.1:8000/realtime/SESSION_ID``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from parley.client.conversations import create_conversation
from parley.flows import GuidedConversation, load_flow

config = GuidedConversation.from_flow(
    load_flow(Path(__file__).with_suffix(".yaml")),
    system_instructions=(
        "You are a careful virtual assistant of an advisory firm. You give general "
        "information, never personal financial advice."
    ),
    max_duration_seconds=1800,
)


def create(server: str = "http://127.0.0.1:8000", api_key: str | None = None) -> dict[str, Any]:
    """``POST /conversations`` with ``config``: the server's answer (``session_id``,
    ``realtime_url``, …). ``api_key``: the server's key, when it has authentication on."""
    return create_conversation(config.body(), server, api_key=api_key)


if __name__ == "__main__":
    made = create(*sys.argv[1:2])
    print(f"session_id: {made['session_id']}")
    print(f"talk to it: parley talk {made['realtime_url']}")
