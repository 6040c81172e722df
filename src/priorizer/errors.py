"""Domain errors. Services raise them; `web/errors.py` maps them to HTTP in one place."""


class PriorizerError(Exception):
    """Base of the errors a caller can act on; the message is safe to show them."""

    status_code = 400


class NotFound(PriorizerError):
    status_code = 404


class Conflict(PriorizerError):
    status_code = 409


class Invalid(PriorizerError):
    status_code = 422


class Revoked(PriorizerError):
    """An admin revoked the node: refused until an admin reinstates it."""

    status_code = 403


class Unauthorized(PriorizerError):
    status_code = 401


class Forbidden(PriorizerError):
    status_code = 403


class TooManyRequests(PriorizerError):
    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
