"""The HTTP side of Telnyx, Vonage and Plivo calls: answer documents and signatures.

Pure functions: a route handler passes in what it received and sends back what
these return. Like ``POST /twilio/voice`` with TwiML, each platform asks an
*answer webhook* how to handle a call, and each answer below connects the call to
a bidirectional media stream:

* Telnyx TeXML ``<Connect><Stream url bidirectionalMode="rtp" …>`` (TeXML ``<Stream>``:
  ``url``, ``track``, ``name``, ``codec``, ``bidirectionalMode`` rtp|mp3,
  ``bidirectionalCodec``, ``bidirectionalSamplingRate`` 8000|16000|24000;
  developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/stream). The
  ``<Parameter>`` children follow TwiML; that TeXML forwards them to
  ``start.custom_parameters`` is inferred, not read in Telnyx's docs.
* Vonage NCCO ``[{"action":"connect","endpoint":[{"type":"websocket","uri",
  "content-type":"audio/l16;rate=16000","headers"}]}]`` (the headers come back in
  ``websocket:connected``; protocols.md §3.2 gives 512 bytes as their limit).
* Plivo XML ``<Stream bidirectional="true" keepCallAlive="true" contentType
  audioTrack="inbound" …>wss://…</Stream>`` (docs.plivo.com/docs/voice/xml/audiostream).

Signatures, each the platform's own scheme:

* Telnyx: Ed25519 over ``timestamp + "|" + raw body`` with the account's public
  key; headers ``telnyx-signature-ed25519`` (base64) and ``telnyx-timestamp`` (unix
  seconds, checked against a tolerance against replay). Verified with
  ``cryptography``.
* Plivo V3: ``X-Plivo-Signature-V3`` = base64 HMAC-SHA256(auth token, URL + "." +
  nonce) where, for a POST, the URL is followed by the sorted parameters as
  ``key+value`` (Plivo's SDK ``plivo.utils.signature_v3``; checked against it in
  tests/test_phone_webhooks.py); the header may hold several comma-separated
  signatures (one per auth token in rotation).
* Vonage: a JWT (HS256, the account's signature secret) in ``Authorization:
  Bearer``; its ``payload_hash`` claim is the hex SHA-256 of the raw body. Decoded
  with PyJWT.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from xml.etree import ElementTree

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from parley.errors import ConfigError

__all__ = [
    "VONAGE_MAX_HEADER_BYTES",
    "plivo_signature_v3_valid",
    "plivo_stream_xml",
    "telnyx_signature_valid",
    "telnyx_texml_stream",
    "vonage_ncco_websocket",
    "vonage_signature_valid",
]

VONAGE_MAX_HEADER_BYTES: Final = 512
_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>'
_TELNYX_CODECS: Final = frozenset({"PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16"})


def _check_wss(url: str, field: str) -> None:
    if urlsplit(url).scheme not in ("wss", "ws"):
        raise ConfigError(f"a media stream URL must be ws:// or wss://, got {url!r}", field=field)


def _xml(root: ElementTree.Element) -> str:
    return _XML_DECLARATION + ElementTree.tostring(root, encoding="unicode")


# ------------------------------------------------------------------- answer documents


def telnyx_texml_stream(
    url: str,
    *,
    parameters: Mapping[str, str] | None = None,
    codec: Literal["PCMU", "PCMA", "L16"] = "PCMU",
    sampling_rate: int = 8000,
    name: str | None = None,
) -> str:
    """A TeXML answer that connects the call to a bidirectional RTP stream at ``url``.

    ``codec``/``sampling_rate`` set both the streamed codec and the one Telnyx takes
    back (``bidirectionalCodec``), so ``TelnyxStream()`` with no arguments matches.
    """
    _check_wss(url, "url")
    if codec not in _TELNYX_CODECS or sampling_rate not in (8000, 16000, 24000):
        raise ConfigError(f"unsupported codec {codec} at {sampling_rate} Hz", field="codec")
    root = ElementTree.Element("Response")
    stream = ElementTree.SubElement(ElementTree.SubElement(root, "Connect"), "Stream")
    stream.set("url", url)
    if name:
        stream.set("name", name)
    stream.set("track", "inbound_track")
    stream.set("codec", codec)
    stream.set("bidirectionalMode", "rtp")
    stream.set("bidirectionalCodec", codec)
    stream.set("bidirectionalSamplingRate", str(sampling_rate))
    for key, value in (parameters or {}).items():
        ElementTree.SubElement(stream, "Parameter", {"name": key, "value": value})
    return _xml(root)


def vonage_ncco_websocket(
    uri: str, *, sample_rate: int = 16000, headers: Mapping[str, Any] | None = None
) -> bytes:
    """An NCCO (JSON) that connects the call to ``uri`` as L16 at ``sample_rate``."""
    _check_wss(uri, "uri")
    if sample_rate not in (8000, 16000, 24000):
        raise ConfigError(f"Vonage streams 8, 16 or 24 kHz, not {sample_rate}", field="rate")
    endpoint: dict[str, Any] = {
        "type": "websocket",
        "uri": uri,
        "content-type": f"audio/l16;rate={sample_rate}",
    }
    if headers:
        encoded = msgspec.json.encode(dict(headers))
        if len(encoded) > VONAGE_MAX_HEADER_BYTES:
            raise ConfigError(
                f"NCCO websocket headers are {len(encoded)} bytes of JSON, over "
                f"{VONAGE_MAX_HEADER_BYTES}",
                field="headers",
            )
        endpoint["headers"] = dict(headers)
    return msgspec.json.encode([{"action": "connect", "endpoint": [endpoint]}])


def plivo_stream_xml(
    url: str,
    *,
    content_type: Literal[
        "audio/x-mulaw;rate=8000", "audio/x-l16;rate=8000", "audio/x-l16;rate=16000"
    ] = "audio/x-mulaw;rate=8000",
    extra_headers: Mapping[str, str] | None = None,
    stream_timeout_s: int = 86400,
    status_callback_url: str | None = None,
) -> str:
    """A Plivo XML answer that streams the call both ways to ``url`` and keeps it up."""
    _check_wss(url, "url")
    if not 1 <= stream_timeout_s <= 86400:
        raise ConfigError("must be 1 to 86400 seconds", field="stream_timeout_s")
    root = ElementTree.Element("Response")
    stream = ElementTree.SubElement(root, "Stream")
    stream.set("bidirectional", "true")
    stream.set("keepCallAlive", "true")
    stream.set("audioTrack", "inbound")  # bidirectional streams require it
    stream.set("contentType", content_type)
    stream.set("streamTimeout", str(stream_timeout_s))
    if status_callback_url:
        stream.set("statusCallbackUrl", status_callback_url)
    if extra_headers:
        for key, value in extra_headers.items():
            if not key or any(c in key + value for c in "=,;"):
                raise ConfigError(
                    f"extra header {key!r}={value!r} may not contain '=', ',' or ';'",
                    field="extra_headers",
                )
        stream.set("extraHeaders", ",".join(f"{k}={v}" for k, v in extra_headers.items()))
    stream.text = url
    return _xml(root)


# ------------------------------------------------------------------------- signatures


def telnyx_signature_valid(
    public_key: str | bytes,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    tolerance_s: float = 300.0,
    clock: Callable[[], float] = time.time,
) -> bool:
    """True if ``signature`` (``telnyx-signature-ed25519``) signs ``timestamp|body``.

    ``public_key`` is the account's Ed25519 key as shown in the Telnyx portal
    (base64 of the 32 raw bytes) or the raw bytes. A ``timestamp`` (``telnyx-timestamp``)
    further than ``tolerance_s`` from now fails, so a captured request cannot be replayed.
    """
    if not signature or not timestamp or not timestamp.isdigit():
        return False
    if abs(clock() - int(timestamp)) > tolerance_s:
        return False
    try:
        raw_key = (
            base64.b64decode(public_key, validate=True)
            if isinstance(public_key, str)
            else public_key
        )
        key = Ed25519PublicKey.from_public_bytes(raw_key)
        sig = base64.b64decode(signature, validate=True)
        key.verify(sig, timestamp.encode() + b"|" + body)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def _plivo_query(params: Mapping[str, Sequence[str]]) -> str:
    return "&".join(f"{key}={value}" for key in sorted(params) for value in sorted(params[key]))


def _plivo_base_url(method: str, url: str, params: dict[str, list[str]]) -> str:
    """The string Plivo signs before ``.nonce``, as ``plivo.utils.signature_v3`` builds it."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query: dict[str, list[str]] = {}
    # The SDK parses the query as UTF-8 *bytes* and reads each name and value back as
    # Latin-1; the same for the ASCII of any real URL, and bit for bit otherwise.
    latin = parts.query.encode().decode("latin-1")
    for key, value in parse_qsl(latin, keep_blank_values=True, encoding="latin-1"):
        query.setdefault(key, []).append(value)
    if method == "GET":  # the parameters join the query; the URL's own win
        qs = _plivo_query({**params, **query})
        return f"{base}?{qs}" if qs else base
    qs = _plivo_query(query)
    if not params:
        return f"{base}?{qs}" if qs else base
    # POST with a body: "?" + the URL's query, "." if there was one, then key+value
    # of every body parameter in sorted order, without separators.
    body = "".join(f"{key}{value}" for key in sorted(params) for value in sorted(params[key]))
    return f"{base}?{qs}.{body}" if qs else f"{base}?{body}"


def plivo_signature_v3_valid(
    auth_token: str,
    method: Literal["GET", "POST"],
    url: str,
    nonce: str | None,
    signature: str | None,
    params: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]] | None = None,
) -> bool:
    """True if ``signature`` (``X-Plivo-Signature-V3``) signs this request.

    ``url`` is the callback URL exactly as configured at Plivo (scheme, host, path,
    query), ``nonce`` the ``X-Plivo-Signature-V3-Nonce`` header, ``params`` the form
    fields of a POST: a mapping (a list value for a repeated name) or ``(name,
    value)`` pairs (Starlette: ``form.multi_items()``).
    """
    if not signature or not nonce:
        return False
    fields: dict[str, list[str]] = {}
    if isinstance(params, Mapping):
        for key, value in params.items():
            fields[key] = [value] if isinstance(value, str) else [str(v) for v in value]
    elif params is not None:
        for key, value in params:
            fields.setdefault(key, []).append(value)
    base = _plivo_base_url(method.upper(), url, fields)
    # The SDK hashes the UTF-8 bytes read back as Latin-1 and encoded again; the same
    # for ASCII, and what Plivo's own Python check computes for anything else.
    message = f"{base}.{nonce}".encode().decode("latin-1").encode()
    expected = base64.b64encode(hmac.new(auth_token.encode(), message, hashlib.sha256).digest())
    return any(hmac.compare_digest(expected, c.strip().encode()) for c in signature.split(","))


def vonage_signature_valid(
    signature_secret: str,
    authorization: str | None,
    body: bytes = b"",
    *,
    max_age_s: float | None = 300.0,
    clock: Callable[[], float] = time.time,
) -> bool:
    """True if ``authorization`` (``Bearer <JWT>``) is Vonage's signature of ``body``.

    The JWT must verify with HS256 and ``signature_secret``, be issued no more than
    ``max_age_s`` ago (``None``: not checked), and carry ``payload_hash`` = hex
    SHA-256 of ``body`` whenever there is a body.
    """
    # Imported here: PyJWT's package imports its JWKS client and with it socket/ssl,
    # which the sans-I/O layer must not pull in at import (tests/test_public_api.py).
    import jwt

    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        with warnings.catch_warnings():
            # The secret's length is Vonage's choice, not the caller's: no warning per request.
            warnings.filterwarnings("ignore", message="The HMAC key is", category=UserWarning)
            claims = jwt.decode(
                token.strip(), signature_secret, algorithms=["HS256"], options={"require": ["iat"]}
            )
    except jwt.PyJWTError:
        return False
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat > clock() + 60:
        return False
    if max_age_s is not None and clock() - iat > max_age_s:
        return False
    payload_hash = claims.get("payload_hash")
    if payload_hash is None:
        return not body
    if not isinstance(payload_hash, str):
        return False
    return hmac.compare_digest(payload_hash.lower(), hashlib.sha256(body).hexdigest())
