"""Fuzzing the REST API with schemathesis against its own OpenAPI schema: 2,000+ cases
(fixed seed) sent over a real socket to a real ``parley serve`` process, with
authentication on and an admin key (so the cases get past the gate into every
handler). Asserted: no 5xx, the server alive, no ERROR in its log."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from parley.app import Parley
from parley.config import ConversationConfig, EngineKind, ParleySettings
from servers import ServerProcess

KEY = "pk_rest-fuzz-admin-key-0123456789abcdef"
AUTH = {"api_keys": [{"key": KEY, "user_id": "fuzzer", "permissions": ["admin"]}]}
CASES = 2_000
_schema_app = Parley(
    ConversationConfig(enable_auth=True),
    settings=ParleySettings(engine=EngineKind.LOOPBACK, auth=AUTH),
)
schema = schemathesis.openapi.from_dict(_schema_app.asgi.openapi())
OPERATIONS = sum(1 for _ in schema.get_all_operations())
# Routes without inputs (health, readiness) run out of distinct cases after a few.
PER_OPERATION = 250
seen: dict[str, int] = {}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {
        "PARLEY_ENGINE": "loopback",
        "PARLEY_CONVERSATION__ENABLE_AUTH": "true",
        "PARLEY_AUTH": json.dumps(AUTH),
        "PARLEY_MAX_PENDING_PER_USER": "100000",
    }
    with ServerProcess(env) as proc:
        yield proc
        log = proc.output
        assert "Traceback" not in log and "ERROR" not in log, log[log.find("ERROR") - 300 :][:3000]


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@schema.parametrize()
@settings(
    max_examples=PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_rest_api_never_answers_5xx(
    case: Any, server: ServerProcess, http: requests.Session
) -> None:
    # one case in 8 without credentials (the gate's 401 path), chosen by the case itself
    headers = {"Authorization": f"Bearer {KEY}"} if zlib.crc32(repr(case.body).encode()) % 8 else {}
    response = case.call(base_url=server.url, session=http, headers=headers, timeout=10)
    seen[case.operation.label] = seen.get(case.operation.label, 0) + 1
    # 503 + a reason is a deliberate refusal (POST /calls without Twilio credentials);
    # any other 5xx is a fault
    deliberate = response.status_code == 503 and "detail" in response.text
    assert response.status_code < 500 or deliberate, (
        case.operation.label,
        response.status_code,
        response.text,
    )


def test_the_rest_fuzz_ran_its_cases(server: ServerProcess) -> None:
    assert len(seen) == OPERATIONS and sum(seen.values()) >= CASES, seen
    assert server.proc is not None and server.proc.poll() is None
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
