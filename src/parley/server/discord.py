"""Discord voice on the switchboard: each speaking user's stream becomes a call.

:func:`discord_speaker` is the ``on_speaker`` of a
:class:`~parley.transports.discord.DiscordVoiceHub`: it registers the user's
conversation under the session id ``guild:channel:user`` (kind ``discord``), refuses
it while draining or full (that user's audio is then ignored, one INFO line), and
runs it like any call (:meth:`Switchboard.run_call`: the app's engine, flow, hooks,
logging). A user who speaks again after their call ended gets a new one,
``guild:channel:user#2`` and so on: ended records stay readable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from parley.server.calls import CallStatus
from parley.server.switchboard import Switchboard
from parley.transports.discord import DiscordUserStream

__all__ = ["discord_speaker"]

log = logging.getLogger("parley.server")


def discord_speaker(board: Switchboard) -> Callable[[DiscordUserStream], Awaitable[None]]:
    async def on_speaker(stream: DiscordUserStream) -> None:
        refusal = board.refusal()
        if refusal is not None:
            log.info("refused discord speaker %s: %s", stream.session_id, refusal)
            stream.hang_up()
            return
        record_id, n = stream.session_id, 1
        while board.calls.get(record_id) is not None:
            n += 1
            record_id = f"{stream.session_id}#{n}"
        caller = await stream.handshake()
        record = board.new_record(
            kind="discord", user_id=caller.user_id if caller else None, record_id=record_id
        )
        record.call_sid = stream.session_id
        record.move(CallStatus.CONNECTING)
        await board.run_call(record, stream)

    return on_speaker
