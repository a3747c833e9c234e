"""Where a test deployment keeps its state, picked for the whole session by EMBEDOPS_TEST_STATE:

- unset or ``embedded``: the defaults, SQLite and a folder under each test's EMBEDOPS_HOME;
- ``postgres-s3``: the production shape. One real PostgreSQL server and one FAKE S3 (moto's server: no S3
  server can run here) serve the session; each deployment a test makes gets a fresh database on the one and
  a fresh prefix on the other, so tests share servers but never state.

`./dev test` runs the pipeline, crash and migration tests a second time on ``postgres-s3``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

PROFILE = os.environ.get("EMBEDOPS_TEST_STATE") or "embedded"
PROFILES = ("embedded", "postgres-s3")
_urls: list[object] = []  # the session's factory of fresh state URLs, when the profile has servers


def state_env() -> dict[str, str]:
    """EMBEDOPS_DATABASE_URL and EMBEDOPS_DATA_URL of a new deployment ({} on the embedded defaults)."""
    return _urls[0]() if _urls else {}  # type: ignore[operator]


@contextmanager
def session_state() -> Iterator[None]:
    """Start the profile's servers for the session (none for ``embedded``) and stop them after it."""
    if PROFILE not in PROFILES:
        raise ValueError(f"EMBEDOPS_TEST_STATE={PROFILE!r} is not one of {PROFILES}")
    if PROFILE == "embedded":
        yield
        return
    from tests.postgres import pg_server
    from tests.s3 import BUCKET, fake_s3

    with ExitStack() as stack:
        server = stack.enter_context(pg_server())
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="embedops-s3-")))
        variables = stack.enter_context(fake_s3(logs))
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)  # every process the tests start reaches the fake S3 the same way

        def fresh() -> dict[str, str]:
            name = f"t_{secrets.token_hex(6)}"
            return {"EMBEDOPS_DATABASE_URL": server.create_database(name),
                    "EMBEDOPS_DATA_URL": f"s3://{BUCKET}/{name}"}

        _urls.append(fresh)
        try:
            yield
        finally:
            _urls.clear()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
