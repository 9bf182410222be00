"""Store-level tests run on the embedded stores only (SQLite, PostgreSQL + S3)."""

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
