"""Place an outbound phone call through Twilio's REST API, with the official SDK.

``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` with form fields ``To``,
``From`` and either ``Twiml`` (the document inline, e.g. ``<Connect><Stream>`` to
``/twilio/stream``: see ``parley.server.twilio.twiml_connect``) or ``Url`` (where
Twilio fetches it), HTTP basic auth ``AccountSid:AuthToken``; Twilio answers
``201`` with the call resource, whose ``sid`` (``CA…``) is returned. When the
callee answers, Twilio runs the TwiML and the call streams like an inbound one.

``api_base`` points the SDK somewhere else than ``https://api.twilio.com`` (a
regional edge, a test server). The SDK is told nothing from the environment
(``TWILIO_EDGE``/``TWILIO_REGION`` would rewrite the host): only the arguments count.

Errors are :class:`~parley.errors.ProviderError` (``provider="twilio"``):
``retryable`` for 429, 5xx and network failures; a 4xx says what Twilio refused
(its error code and message, e.g. 21211 for an invalid ``To``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from twilio.base.exceptions import TwilioException, TwilioRestException  # type: ignore[import-untyped]
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from parley.errors import ConfigError, ProviderError

__all__ = ["TWILIO_API_BASE", "place_twilio_call", "place_twilio_call_async"]

TWILIO_API_BASE: Final = "https://api.twilio.com"


def _check(to: str, from_: str, twiml: str | None, url: str | None) -> None:
    if not to or not from_:
        raise ConfigError("a call needs both 'to' and 'from_'", field="to" if not to else "from_")
    if (twiml is None) == (url is None):
        raise ConfigError("give exactly one of 'twiml' and 'url'", field="twiml")


def _client(account_sid: str, auth_token: str, api_base: str, http_client: Any) -> Any:
    client = Client(account_sid, auth_token, http_client=http_client, environment={})
    client.api.base_url = api_base.rstrip("/")
    return client


def _create_args(
    to: str, from_: str, twiml: str | None, url: str | None, status_callback: str | None
) -> dict[str, str]:
    args = {"to": to, "from_": from_}
    if twiml is not None:
        args["twiml"] = twiml
    if url is not None:
        args["url"] = url
    if status_callback is not None:
        args["status_callback"] = status_callback
    return args


def _refused(exc: TwilioRestException) -> ProviderError:
    code = f", error {exc.code}" if exc.code else ""
    return ProviderError(
        f"Twilio refused the call (HTTP {exc.status}{code}): {exc.msg}",
        provider="twilio",
        retryable=exc.status == 429 or exc.status >= 500,
    )


def _sid(call: Any) -> str:
    sid = call.sid  # the SDK's CallInstance; a 2xx without a sid is a fault
    if not isinstance(sid, str) or not sid:
        raise ProviderError("Twilio's answer has no call sid", provider="twilio")
    return sid


def place_twilio_call(
    account_sid: str,
    auth_token: str,
    *,
    to: str,
    from_: str,
    twiml: str | None = None,
    url: str | None = None,
    status_callback: str | None = None,
    api_base: str = TWILIO_API_BASE,
    timeout_s: float = 10.0,
) -> str:
    """Ask Twilio to call ``to`` from ``from_``; return the new call's sid. Blocking."""
    _check(to, from_, twiml, url)
    http = TwilioHttpClient(timeout=timeout_s)
    try:
        client = _client(account_sid, auth_token, api_base, http)
        call = client.calls.create(**_create_args(to, from_, twiml, url, status_callback))
    except TwilioRestException as exc:
        raise _refused(exc) from exc
    except (OSError, TimeoutError, TwilioException) as exc:  # requests' errors are OSErrors
        raise ProviderError(
            f"Twilio's API is unreachable: {exc}", provider="twilio", retryable=True
        ) from exc
    finally:
        if http.session is not None:
            http.session.close()
    return _sid(call)


async def place_twilio_call_async(
    account_sid: str,
    auth_token: str,
    *,
    to: str,
    from_: str,
    twiml: str | None = None,
    url: str | None = None,
    status_callback: str | None = None,
    api_base: str = TWILIO_API_BASE,
    timeout_s: float = 10.0,
) -> str:
    """Like :func:`place_twilio_call`, without blocking the event loop.

    The SDK's blocking client runs in a worker thread: its aiohttp client builds
    ``aiohttp.BasicAuth``, deprecated since aiohttp 3.13 (a warning per call), and
    applies no timeout; one REST request per placed call does not need the loop.
    """
    return await asyncio.to_thread(
        place_twilio_call,
        account_sid,
        auth_token,
        to=to,
        from_=from_,
        twiml=twiml,
        url=url,
        status_callback=status_callback,
        api_base=api_base,
        timeout_s=timeout_s,
    )
