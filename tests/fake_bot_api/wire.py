"""What travels between the bot and the fake server besides updates: the wire form of aiogram objects, Telegram's
error answers and the record of one call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOKEN = "123456:TEST-token"


def dump(obj: Any) -> dict[str, Any]:
    """The wire form of an aiogram object: Telegram's field names (`from`), Unix dates, no nulls."""
    data: dict[str, Any] = obj.model_dump(mode="json", exclude_none=True, by_alias=True)
    return data


@dataclass(frozen=True)
class ApiError:
    """An error answer as Telegram gives it: HTTP status = error_code, `{"ok": false, ...}` body."""

    error_code: int
    description: str
    retry_after: int | None = None
    migrate_to_chat_id: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        parameters = {
            k: v
            for k, v in (("retry_after", self.retry_after), ("migrate_to_chat_id", self.migrate_to_chat_id))
            if v is not None
        }
        if parameters:
            body["parameters"] = parameters
        return body


def too_many_requests(retry_after: int = 1) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def blocked_by_user() -> ApiError:
    return ApiError(403, "Forbidden: bot was blocked by the user")


def server_error() -> ApiError:
    return ApiError(500, "Internal Server Error")


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


class Refused(Exception):
    """Raised anywhere while answering a call: the call is answered with `error`."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.description)
        self.error = error


@dataclass
class ApiCall:
    """One request the bot made, with its parameters decoded (JSON fields parsed) and what it was answered."""

    method: str
    params: dict[str, Any]
    result: Any = None
    error: ApiError | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int) else None
