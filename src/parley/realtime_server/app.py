"""The I/O shell: a :class:`RealtimeSession` bound to a WebSocket, and the ASGI pieces.

``serve_realtime`` runs one session over any :class:`~parley.transports.socket.WireSocket`
(two tasks: frames in → ``session.handle``; ``session.events()`` → text frames out)
on an engine given by the caller: the server's switchboard admits the connection
(auth, capacity, drain), builds the call's engine from the app's configuration and
calls it. ``realtime_route`` and ``create_realtime_app`` are for standalone use
(``parley realtime-server``, tests): they build each session's engine with a
zero-argument maker (default: :func:`~parley.realtime_server.offline_engine_maker`).

Authentication, when an API key is configured: ``Authorization: Bearer KEY`` (what
the OpenAI SDKs send) or the ``openai-insecure-api-key.KEY`` subprotocol (what a
browser's ``WebSocket`` can send). A missing or wrong key is refused before the
handshake completes: HTTP 401 with an OpenAI-style ``invalid_api_key`` body where
the ASGI server supports denial responses (uvicorn does), else close code 1008.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from parley.protocols.openai_realtime import encode_event_text
from parley.transports.platform import Accept, Connection, Refusal
from parley.transports.socket import CLOSE_POLICY, StarletteSocket, WireSocket
from parley.transports.starlette import refuse_starlette, starlette_connection

from .backend import (
    EngineMaker,
    RealtimeBackend,
    RealtimeSessionEngine,
    offline_backend,
    offline_engine_maker,
)
from .session import EventHook, RealtimeSession

__all__ = [
    "DEFAULT_MODEL",
    "KEY_SUBPROTOCOL_PREFIX",
    "admission",
    "authorized",
    "create_realtime_app",
    "realtime_route",
    "serve_realtime",
]

DEFAULT_MODEL = "parley-realtime"
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."


async def serve_realtime(
    socket: WireSocket,
    backend: RealtimeBackend,
    engine: RealtimeSessionEngine,
    *,
    model: str = DEFAULT_MODEL,
    on_event: EventHook | None = None,
) -> None:
    """Serve one Realtime session on an accepted socket until either side ends it.

    The session runs ``engine`` and closes it at the end. ``on_event`` is awaited
    with every engine event before the session maps it to server events; it must
    not raise (an exception ends the session: guard user code inside it).
    """
    session = RealtimeSession(backend, engine, model=model, on_event=on_event)

    async def read() -> None:
        try:
            while (frame := await socket.receive()) is not None:
                await session.handle(frame)
        finally:
            await session.close()

    async def write() -> None:
        async for event in session.events():
            await socket.send_text(encode_event_text(event))

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(session.run())
            tg.create_task(write())
            await read()
    finally:
        await socket.close()


def authorized(api_key: str | None, authorization: str | None, subprotocols: list[str]) -> bool:
    """Whether a handshake carries ``api_key`` (always true when no key is configured)."""
    if not api_key:
        return True
    offered: list[str] = []
    if authorization and authorization[:7].lower() == "bearer ":
        offered.append(authorization[7:].strip())
    offered += [
        p[len(KEY_SUBPROTOCOL_PREFIX) :]
        for p in subprotocols
        if p.startswith(KEY_SUBPROTOCOL_PREFIX)
    ]
    expected = api_key.encode()
    # compare_digest on every candidate: no early exit that times the right key.
    return any([hmac.compare_digest(c.encode(), expected) for c in offered])


def admission(api_key: str | None, connection: Connection) -> Accept | Refusal:
    """Whether a handshake may open a session: the key (HTTP 401 with OpenAI's
    ``invalid_api_key`` body when missing or wrong), and the subprotocol to choose
    (a browser fails the handshake unless one it offered is chosen)."""
    offered = list(connection.subprotocols)
    if not authorized(api_key, connection.headers.get("authorization"), offered):
        body = {
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "message": "Incorrect or missing API key.",
                "param": None,
            }
        }
        return Refusal(401, CLOSE_POLICY, "invalid_api_key", body)
    plain = [p for p in offered if not p.startswith(KEY_SUBPROTOCOL_PREFIX)]
    return Accept("realtime" if "realtime" in plain else (plain[0] if plain else None))


def realtime_route(
    path: str = "/v1/realtime",
    *,
    backend: RealtimeBackend | Callable[[], RealtimeBackend] | None = None,
    make_engine: EngineMaker | None = None,
    api_key: str | None = None,
    on_event: EventHook | None = None,
) -> WebSocketRoute:
    """The WebSocket route serving the Realtime protocol (mount it in any Starlette app).

    ``backend`` is a backend or a zero-argument function returning one (called per
    connection, so it can be built lazily); ``make_engine`` builds each session's
    engine. The defaults are :func:`offline_backend` and :func:`offline_engine_maker`.
    The ``model`` query parameter is reported back in the session. ``on_event`` sees
    every engine event of every session (see :func:`serve_realtime`).
    """
    get_backend: Callable[[], RealtimeBackend]
    if backend is None:
        get_backend = offline_backend
    elif isinstance(backend, RealtimeBackend):
        fixed = backend
        get_backend = lambda: fixed  # noqa: E731
    else:
        get_backend = backend
    makers: list[EngineMaker] = [make_engine] if make_engine is not None else []

    async def endpoint(websocket: WebSocket) -> None:
        connection = starlette_connection(websocket)
        verdict = admission(api_key, connection)
        if isinstance(verdict, Refusal):
            await refuse_starlette(websocket, verdict)
            return
        await websocket.accept(subprotocol=verdict.subprotocol)
        model = connection.query.get("model") or DEFAULT_MODEL
        if not makers:
            makers.append(offline_engine_maker())  # lazily: it names the offline models
        engine = makers[0]()
        await serve_realtime(
            StarletteSocket(websocket), get_backend(), engine, model=model, on_event=on_event
        )

    return WebSocketRoute(path, endpoint)


def create_realtime_app(
    *,
    backend: RealtimeBackend | None = None,
    make_engine: EngineMaker | None = None,
    api_key: str | None = None,
    path: str = "/v1/realtime",
    warmup: bool = True,
) -> Starlette:
    """A standalone ASGI app with the Realtime endpoint at ``path``.

    ``make_engine`` builds each session's engine (default: the offline cascade with
    the echo brain); ``warmup`` loads the backend's models at startup rather than on
    the first call. Run it with ``uvicorn.run(create_realtime_app(), host=..., port=...)``.
    """
    chosen = backend

    def get_backend() -> RealtimeBackend:
        return chosen if chosen is not None else offline_backend()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if warmup:
            await get_backend().warmup()
        yield

    route = realtime_route(path, backend=get_backend, make_engine=make_engine, api_key=api_key)
    return Starlette(routes=[route], lifespan=lifespan)
