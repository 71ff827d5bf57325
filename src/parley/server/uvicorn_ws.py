"""uvicorn's sans-I/O WebSocket protocol, with the close docs/protocol.md promises for
a text frame that is not UTF-8.

uvicorn decodes each text message itself; on invalid UTF-8 it logs an ERROR with a
traceback (one per hostile frame: a log flood anyone can cause) and closes with 1007
and an empty reason. Parley's protocols answer undecodable frames with a typed close:
1007 and ``bad_json: …`` (the code of docs/protocol.md §1.6, for every protocol: the
frame never reaches one). ``parley serve``, ``app.run()`` and the tests' servers use
:data:`WS_PROTOCOL`; an app served by ``uvicorn myapp:app.asgi`` gets it with
``--ws parley.server.uvicorn_ws:ParleyWebSocketProtocol``.
"""

from __future__ import annotations

from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

__all__ = ["BAD_UTF8_REASON", "WS_PROTOCOL", "ParleyWebSocketProtocol"]

BAD_UTF8_REASON: Final = "bad_json: a text frame that is not valid UTF-8"


class ParleyWebSocketProtocol(WebSocketsSansIOProtocol):
    def send_receive_event_to_app(self) -> None:
        # uvicorn's own method (0.3x), but for the invalid-UTF-8 branch: decode once,
        # as there (a Twilio media frame is a text frame: 50 a second per call).
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                if self.conn.state is not State.OPEN:
                    return  # already closing (a close crossed this frame): drop it
                self.logger.info("closed a WebSocket: %s", BAD_UTF8_REASON)
                self.conn.send_close(1007, BAD_UTF8_REASON)
                self.handle_parser_exception()
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()


#: What to pass as uvicorn's ``ws``.
WS_PROTOCOL: Final = ParleyWebSocketProtocol
