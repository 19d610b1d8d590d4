"""The bearer token: with ``BULK360_API_TOKEN`` set, the data endpoints require
``Authorization: Bearer <token>``; without it nothing is asked and the OpenAPI document
declares no security scheme."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

__all__ = ["Guard", "guard_for"]


# Reads the Authorization header; whether a token is asked for is decided in create_app.
BEARER = HTTPBearer(auto_error=False, description="The value of BULK360_API_TOKEN.")


@dataclass(frozen=True)
class Guard:
    """What protects the data endpoints: the token's dependency, and its 401 answer."""

    dependencies: list[Any]
    answers: tuple[int, ...]


def guard_for(token: str | None) -> Guard:
    """What protects the data endpoints when the API's token is ``token`` (None: nothing)."""

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if token is None or not hmac.compare_digest(given, token.encode()):
            raise HTTPException(
                401,
                "a valid bearer token is required: Authorization: Bearer <BULK360_API_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return Guard([Depends(require_token)] if token else [], (401,) if token else ())
