"""The REST API fuzzed from its own OpenAPI description (schemathesis): every operation, a few generated requests
each, against the installed `prakerja-bot web` on a demo database, with an admin's API token. No request may end
in a server error or an answer the description does not allow."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from core.console.staff import Role, StaffAccess
from core.db import make_engine
from tests.harness import SCRIPT, environment
from tests.web_harness import free_port, start_web

ADMIN = 9_600_001


async def _token(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        _, token = await StaffAccess(engine, [], [ADMIN]).create_api_token("fuzz", Role.ADMIN, ADMIN)
        return token
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    database_url = f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}"
    env = environment(database_url, ADMIN_IDS=str(ADMIN), STAFF_CHAT_ID="-100888")
    demo = subprocess.run([str(SCRIPT), "demo"], env=env, cwd=tmp, capture_output=True, timeout=60, check=False)
    assert demo.returncode == 0, demo.stderr
    port = free_port()
    web = start_web(tmp, env, port)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert web.poll() is None, "the console exited (see web.log)"
            time.sleep(0.1)
        yield url, asyncio.run(_token(database_url))
    finally:
        web.terminate()
        web.wait(10)


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, str]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served[0]}/api/openapi.json")


# Revoking tokens is left out: a generated id could revoke the fuzzer's own token and end the run early.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(method="DELETE")


# The same examples on every CI run, so that main stays green or red for a reason (a random run found '²' as a case
# id once); FUZZ_RANDOM=1 explores new ones (`FUZZ_RANDOM=1 pytest tests/test_web_api_fuzz.py`).
@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("FUZZ_RANDOM"),
)
def test_the_api_keeps_to_its_description(case: schemathesis.Case[Any], served: tuple[str, str]) -> None:
    # Left out: accepting every schema-valid request (an FAQ answer must also render as Telegram HTML, which no
    # schema says) and rejecting unknown query parameters (they are ignored, as most APIs do).
    excluded = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]
    case.call_and_validate(headers={"Authorization": f"Bearer {served[1]}"}, excluded_checks=excluded)


def test_without_a_token_every_operation_answers_401(
    api_schema: schemathesis.BaseSchema, served: tuple[str, str]
) -> None:
    for path, methods in api_schema.raw_schema["paths"].items():
        for method in methods:
            concrete = path.replace("{case_id}", "1").replace("{faq_id}", "greeting").replace("{token_id}", "1")
            assert httpx.request(method.upper(), f"{served[0]}{concrete}").status_code == 401, (method, path)
