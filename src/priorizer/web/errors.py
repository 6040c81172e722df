"""The one error shape: every error (4xx, 5xx) answers `{"detail", "status", "request_id"}`;
no stack trace or SQL ever reaches a client. Domain errors (`priorizer.errors`) map to their
status here, and FastAPI's validation errors to 422 with words a client can act on."""

from __future__ import annotations

import math
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from priorizer.errors import PriorizerError, TooManyRequests, Unauthorized


class ErrorRead(BaseModel):
    detail: Any = Field(description="What is wrong: a message, or the fields at fault.")
    status: int
    request_id: str | None = Field(description="Also in the X-Request-Id header and the logs.")


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorRead, "description": "The request body is over MAX_REQUEST_BYTES."},
    422: {"model": ErrorRead, "description": "Invalid input; nothing was changed."},
    500: {"model": ErrorRead, "description": "Unexpected error (details only in the log)."},
}


BODY_UNREADABLE = "There was an error parsing the body"  # FastAPI's words
# Pydantic's error types for a body that is not an object, where one is expected.
NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})
# Error details echo the input; past this depth they say "..." (ours nest three levels).
MAX_ECHO_DEPTH = 16


def error_body(status: int, detail: Any, request_id: str | None) -> dict[str, Any]:
    return {"detail": detail, "status": status, "request_id": request_id}


def error_response(
    request: Request | None, status: int, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id") if request else None
    return JSONResponse(error_body(status, detail, request_id), status, headers=headers)


def handle_errors(app: FastAPI) -> None:
    """Every error answers `{detail, status, request_id}` (`error_body`)."""

    @app.exception_handler(PriorizerError)
    async def domain_error(request: Request, error: PriorizerError) -> JSONResponse:
        headers = {}
        if isinstance(error, TooManyRequests):
            headers["Retry-After"] = str(error.retry_after)
        if isinstance(error, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return error_response(request, error.status_code, str(error), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input whole (however deep), and cannot encode NaN
        # or Infinity.
        problems = [_with_hint(request, problem) for problem in error.errors()]
        return error_response(request, 422, jsonable_encoder(_printable(problems)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers) if error.headers else None
        if error.status_code == 400 and error.detail == BODY_UNREADABLE:
            # FastAPI's answer to a body its JSON parser gave up on: invalid input, like any
            # other, saying why.
            return error_response(request, 422, unreadable_body(error.__cause__))
        return error_response(request, error.status_code, error.detail, headers)


def unreadable_body(cause: BaseException | None) -> str:
    """Why a request body could not be read as JSON, in words a client can act on."""
    if isinstance(cause, RecursionError):
        return (
            "the request body is nested too deeply to read (hundreds of levels of arrays or "
            "objects); no request needs more than three"
        )
    if isinstance(cause, UnicodeDecodeError):
        return "the request body is not UTF-8 (JSON must be)"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        limit = sys.get_int_max_str_digits()
        return f"a number in the request body is too long (more than {limit} digits)"
    return "the request body could not be read as JSON"


def _with_hint(request: Request, problem: dict[str, Any]) -> dict[str, Any]:
    """A body that is not an object because it was not sent as JSON says so."""
    if tuple(problem["loc"]) != ("body",) or problem["type"] not in NOT_AN_OBJECT:
        return problem
    sent = request.headers.get("content-type")
    if sent is not None and _is_json(sent):
        return problem
    came = f"this one came as {sent.split(';')[0]}" if sent else "this one had none"
    return {
        "type": "content_type",
        "loc": ("body",),
        "msg": f"the body must be JSON, sent with Content-Type: application/json ({came})",
    }


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    json_like = kind == "application/json" or kind.endswith("+json")  # as FastAPI reads them
    return kind.startswith("application/") and json_like


def _printable(value: Any, depth: int = 0) -> Any:
    """The value with non-finite floats spelled as strings, so JSON can carry it, and cut
    where it nests deeper than any request of ours does (an echoed input can be anything)."""
    if depth > MAX_ECHO_DEPTH:
        return "..."
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _printable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item, depth + 1) for item in value]
    return value
