"""Page tokens: opaque to clients, an offset inside (as MLflow's are)."""

from __future__ import annotations

import base64
import json

from cumulo.core.errors import InvalidInput


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except Exception as exc:
        raise InvalidInput(f"Invalid page token {token!r}.") from exc
    if offset < 0:
        raise InvalidInput(f"Invalid page token {token!r}.")
    return offset
