"""Answer documents (TeXML, NCCO, Plivo XML) and the three platforms' request signatures.

Signatures are made the way each platform makes them, with independent tools:
Telnyx's with a real Ed25519 key pair (``cryptography``), Vonage's as a JWT minted
with PyJWT, Plivo's by Plivo's own SDK (``plivo.utils.signature_v3``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from urllib.parse import urlencode
from xml.etree import ElementTree

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from plivo.utils.signature_v3 import (
    construct_get_url,
    construct_post_url,
    get_signature_v3,
    validate_v3_signature,
)

from parley.errors import ConfigError
from parley.protocols.phone_webhooks import (
    VONAGE_MAX_HEADER_BYTES,
    plivo_signature_v3_valid,
    plivo_stream_xml,
    telnyx_signature_valid,
    telnyx_texml_stream,
    vonage_ncco_websocket,
    vonage_signature_valid,
)
from parley.protocols.plivo import parse_extra_headers
from parley.protocols.vonage import parse_content_type

# ------------------------------------------------------------------ answer documents


def test_telnyx_texml_connects_a_bidirectional_rtp_stream() -> None:
    xml = telnyx_texml_stream(
        "wss://example.com/telnyx/stream", parameters={"token": 'a&b"<c>'}, name="parley"
    )
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    root = ElementTree.fromstring(xml)
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.attrib == {
        "url": "wss://example.com/telnyx/stream",
        "name": "parley",
        "track": "inbound_track",
        "codec": "PCMU",
        "bidirectionalMode": "rtp",
        "bidirectionalCodec": "PCMU",
        "bidirectionalSamplingRate": "8000",
    }
    params = stream.findall("Parameter")
    assert [(p.get("name"), p.get("value")) for p in params] == [("token", 'a&b"<c>')]


def test_telnyx_texml_l16_wideband() -> None:
    root = ElementTree.fromstring(
        telnyx_texml_stream("wss://h/s", codec="L16", sampling_rate=16000)
    )
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert (stream.get("bidirectionalCodec"), stream.get("bidirectionalSamplingRate")) == (
        "L16",
        "16000",
    )
    with pytest.raises(ConfigError):
        telnyx_texml_stream("https://h/s")
    with pytest.raises(ConfigError):
        telnyx_texml_stream("wss://h/s", sampling_rate=11025)


def test_vonage_ncco_connects_a_websocket() -> None:
    ncco = json.loads(vonage_ncco_websocket("wss://example.com/vonage/stream", headers={"t": "1"}))
    assert ncco == [
        {
            "action": "connect",
            "endpoint": [
                {
                    "type": "websocket",
                    "uri": "wss://example.com/vonage/stream",
                    "content-type": "audio/l16;rate=16000",
                    "headers": {"t": "1"},
                }
            ],
        }
    ]
    endpoint = ncco[0]["endpoint"][0]
    assert parse_content_type(endpoint["content-type"]) == 16000  # what the stream will say
    narrow = json.loads(vonage_ncco_websocket("wss://h/s", sample_rate=8000))
    assert "headers" not in narrow[0]["endpoint"][0]
    with pytest.raises(ConfigError):
        vonage_ncco_websocket("wss://h/s", headers={"t": "x" * VONAGE_MAX_HEADER_BYTES})
    with pytest.raises(ConfigError):
        vonage_ncco_websocket("wss://h/s", sample_rate=44100)
    with pytest.raises(ConfigError):
        vonage_ncco_websocket("http://h/s")


def test_plivo_xml_streams_both_ways() -> None:
    xml = plivo_stream_xml(
        "wss://example.com/plivo/stream?x=1&y=2",
        extra_headers={"token": "abc", "user": "7"},
        status_callback_url="https://example.com/plivo/status",
    )
    root = ElementTree.fromstring(xml)
    stream = root.find("Stream")
    assert stream is not None
    assert stream.text == "wss://example.com/plivo/stream?x=1&y=2"
    assert stream.attrib == {
        "bidirectional": "true",
        "keepCallAlive": "true",
        "audioTrack": "inbound",
        "contentType": "audio/x-mulaw;rate=8000",
        "streamTimeout": "86400",
        "statusCallbackUrl": "https://example.com/plivo/status",
        "extraHeaders": "token=abc,user=7",
    }
    assert parse_extra_headers(stream.attrib["extraHeaders"]) == {"token": "abc", "user": "7"}
    assert "&amp;" in xml  # the URL is escaped in the document
    with pytest.raises(ConfigError):
        plivo_stream_xml("wss://h/s", extra_headers={"a": "b,c"})
    with pytest.raises(ConfigError):
        plivo_stream_xml("wss://h/s", stream_timeout_s=0)


# -------------------------------------------------------------------------- Telnyx

KEY = Ed25519PrivateKey.generate()
PUBLIC_B64 = base64.b64encode(
    KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()
BODY = b'{"data":{"event_type":"call.initiated","payload":{"call_control_id":"v3:x"}}}'


def telnyx_sign(body: bytes, timestamp: str, key: Ed25519PrivateKey = KEY) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + b"|" + body)).decode()


def test_telnyx_signature() -> None:
    now = 1_700_000_000.0
    ts = str(int(now))
    sig = telnyx_sign(BODY, ts)
    clock = lambda: now  # noqa: E731
    assert telnyx_signature_valid(PUBLIC_B64, BODY, sig, ts, clock=clock)
    raw = base64.b64decode(PUBLIC_B64)
    assert telnyx_signature_valid(raw, BODY, sig, ts, clock=clock)
    assert not telnyx_signature_valid(PUBLIC_B64, BODY + b" ", sig, ts, clock=clock)
    assert not telnyx_signature_valid(PUBLIC_B64, BODY, sig, str(int(now) + 1), clock=clock)
    other = Ed25519PrivateKey.generate()
    assert not telnyx_signature_valid(
        PUBLIC_B64, BODY, telnyx_sign(BODY, ts, other), ts, clock=clock
    )
    # replay: a valid signature from 10 minutes ago
    old = str(int(now) - 600)
    assert not telnyx_signature_valid(PUBLIC_B64, BODY, telnyx_sign(BODY, old), old, clock=clock)
    assert telnyx_signature_valid(
        PUBLIC_B64, BODY, telnyx_sign(BODY, old), old, clock=clock, tolerance_s=900
    )
    for bad_sig, bad_ts in [
        (None, ts),
        (sig, None),
        ("", ts),
        ("@@@", ts),
        (sig, "12a"),
        (sig[:-4], ts),
    ]:
        assert not telnyx_signature_valid(PUBLIC_B64, BODY, bad_sig, bad_ts, clock=clock)
    assert not telnyx_signature_valid("bm90IGEga2V5", BODY, sig, ts, clock=clock)  # 9 bytes
    assert not telnyx_signature_valid("***", BODY, sig, ts, clock=clock)


def test_telnyx_signature_uses_the_real_clock_by_default() -> None:
    ts = str(int(time.time()))
    assert telnyx_signature_valid(PUBLIC_B64, BODY, telnyx_sign(BODY, ts), ts)


# --------------------------------------------------------------------------- Plivo

URL = "https://example.com/plivo/answer"


def test_plivo_v3_post_signed_by_the_sdk() -> None:
    params = {
        "CallUUID": "abc-123",
        "From": "+14155550100",
        "To": "+14155550199",
        "Direction": "inbound",
    }
    nonce = "05429567804466091622"
    sig = get_signature_v3(
        b"auth-token", construct_post_url(URL, dict(params)), nonce.encode()
    ).decode()
    assert validate_v3_signature("POST", URL, nonce, "auth-token", sig, dict(params))
    assert plivo_signature_v3_valid("auth-token", "POST", URL, nonce, sig, params)
    assert plivo_signature_v3_valid(
        "auth-token", "POST", URL, nonce, sig, list(params.items())
    )  # FormData.multi_items()
    assert plivo_signature_v3_valid("auth-token", "POST", URL, nonce, f"other,{sig}", params)
    assert not plivo_signature_v3_valid("auth-tokens", "POST", URL, nonce, sig, params)
    assert not plivo_signature_v3_valid("auth-token", "POST", URL, nonce + "1", sig, params)
    assert not plivo_signature_v3_valid("auth-token", "POST", URL + "/", nonce, sig, params)
    assert not plivo_signature_v3_valid(
        "auth-token", "POST", URL, nonce, sig, {**params, "To": "+1"}
    )
    assert not plivo_signature_v3_valid("auth-token", "POST", URL, None, sig, params)
    assert not plivo_signature_v3_valid("auth-token", "POST", URL, nonce, None, params)


def test_plivo_v3_get_signed_by_the_sdk() -> None:
    url = URL + "?CallUUID=abc&From=%2B1415"
    nonce = "12345"
    sig = get_signature_v3(b"tok", construct_get_url(url, {}), nonce.encode()).decode()
    assert plivo_signature_v3_valid("tok", "GET", url, nonce, sig)
    assert not plivo_signature_v3_valid("tok", "POST", url, nonce, sig, {"a": "b"})


_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="&=#%?+"),
    min_size=1,
    max_size=8,
)


# The SDK itself fails on a query with anything but ASCII (even percent-encoded), so
# only the body parameters range over other characters.
_ascii = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="&=#%?+"),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST"]),
    query=st.dictionaries(_ascii, _ascii, max_size=3),
    params=st.dictionaries(_text, st.lists(_text, min_size=1, max_size=3), max_size=4),
    nonce=st.text(alphabet="0123456789", min_size=1, max_size=20),
    token=st.text(alphabet="abcdefXYZ0123", min_size=1, max_size=20),
)
def test_plivo_v3_matches_the_sdk_on_any_request(
    method: str,
    query: dict[str, str],
    params: dict[str, list[str]],
    nonce: str,
    token: str,
) -> None:
    url = URL + ("?" + urlencode(query) if query else "")
    sdk_params = {k: v if len(v) > 1 else v[0] for k, v in params.items()}
    if method == "GET":
        base = construct_get_url(url, dict(sdk_params))
    else:
        base = construct_post_url(url, dict(sdk_params))
    sig = get_signature_v3(token.encode(), base, nonce.encode()).decode()
    ours = plivo_signature_v3_valid(token, method, url, nonce, sig, params)  # type: ignore[arg-type]
    assert ours, (method, url, params)
    assert not plivo_signature_v3_valid(token + "x", method, url, nonce, sig, params)  # type: ignore[arg-type]


# -------------------------------------------------------------------------- Vonage

SECRET = "vonage-signature-secret-0123456789abcdef"  # 32+ bytes: no PyJWT warning
SHORT_SECRET = "shortsecret"
NOW = 1_700_000_000


def vonage_token(body: bytes, *, secret: str = SECRET, iat: int = NOW, **extra: object) -> str:
    claims: dict[str, object] = {
        "iat": iat,
        "jti": "a1b2",
        "iss": "Vonage",
        "api_key": "abcd1234",
        "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        **extra,
    }
    if body:
        claims["payload_hash"] = hashlib.sha256(body).hexdigest()
    return jwt.encode(claims, secret, algorithm="HS256")


def test_vonage_signed_webhook() -> None:
    body = b'{"uuid":"63f61863","status":"answered"}'
    clock = lambda: NOW + 5.0  # noqa: E731
    token = vonage_token(body)
    assert vonage_signature_valid(SECRET, f"Bearer {token}", body, clock=clock)
    assert vonage_signature_valid(SECRET, f"bearer {token}", body, clock=clock)
    assert not vonage_signature_valid(SECRET, f"Bearer {token}", body + b" ", clock=clock)
    assert not vonage_signature_valid("other", f"Bearer {token}", body, clock=clock)
    assert not vonage_signature_valid(SECRET, token, body, clock=clock)  # no scheme
    assert not vonage_signature_valid(SECRET, None, body, clock=clock)
    assert not vonage_signature_valid(SECRET, "Bearer ", body, clock=clock)
    assert not vonage_signature_valid(SECRET, "Bearer not.a.jwt", body, clock=clock)
    # a GET answer webhook has no body and no payload_hash
    get = vonage_token(b"")
    assert vonage_signature_valid(SECRET, f"Bearer {get}", b"", clock=clock)
    assert not vonage_signature_valid(SECRET, f"Bearer {get}", body, clock=clock)
    # too old, from the future, no iat, unsigned, a non-string hash
    old = vonage_token(body, iat=NOW - 3600)
    assert not vonage_signature_valid(SECRET, f"Bearer {old}", body, clock=clock)
    assert vonage_signature_valid(SECRET, f"Bearer {old}", body, clock=clock, max_age_s=None)
    future = vonage_token(body, iat=NOW + 3600)
    assert not vonage_signature_valid(SECRET, f"Bearer {future}", body, clock=clock)
    no_iat = jwt.encode(
        {"payload_hash": hashlib.sha256(body).hexdigest()}, SECRET, algorithm="HS256"
    )
    assert not vonage_signature_valid(SECRET, f"Bearer {no_iat}", body, clock=clock)
    unsigned = jwt.encode(
        {"iat": NOW, "payload_hash": hashlib.sha256(body).hexdigest()}, None, algorithm="none"
    )
    assert not vonage_signature_valid(SECRET, f"Bearer {unsigned}", body, clock=clock)
    weird = vonage_token(b"", payload_hash=12)
    assert not vonage_signature_valid(SECRET, f"Bearer {weird}", body, clock=clock)


def test_vonage_short_secret_verifies_without_warnings() -> None:
    import warnings

    body = b"{}"
    with warnings.catch_warnings():  # minting with a short key warns; that is the test's doing
        warnings.simplefilter("ignore")
        token = vonage_token(body, secret=SHORT_SECRET)
    assert vonage_signature_valid(SHORT_SECRET, f"Bearer {token}", body, clock=lambda: NOW)


def test_all_names_exist() -> None:
    import parley.protocols.phone_webhooks as module

    assert all(hasattr(module, name) for name in module.__all__)


def test_the_phone_protocols_do_no_io_at_import() -> None:
    """DESIGN §2: importing the sans-I/O phone modules pulls in no asyncio or socket."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import parley.protocols.telnyx, parley.protocols.telnyx_caller\n"
        "import parley.protocols.vonage, parley.protocols.vonage_caller\n"
        "import parley.protocols.plivo, parley.protocols.plivo_caller\n"
        "import parley.protocols.phone_detect, parley.protocols.phone_webhooks\n"
        "import parley.protocols.playback, parley.protocols.phone_audio\n"
        "bad = [m for m in ('asyncio', 'socket', 'websockets', 'ssl') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
