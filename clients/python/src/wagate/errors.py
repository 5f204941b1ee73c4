"""The exceptions the client raises: one per kind of failure, each carrying
the server's error code and sentence when the server answered."""

from __future__ import annotations

from typing import Any, Optional


class WagateError(Exception):
    """Base of every error this package raises.

    ``code`` is the server's machine-readable error code (``"invalid_phone"``,
    ``"unauthorized"`` …) or one of the client's own (``"connection_failed"``,
    ``"timeout"``, ``"bad_response"``); ``status`` the HTTP status, ``None``
    when no answer arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: Optional[int] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.body = body

    @property
    def status_code(self) -> Optional[int]:
        """The HTTP status, named as in requests and httpx."""
        return self.status

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status is not None else ""
        return f"{self.message} ({where}{self.code})"


class ApiError(WagateError):
    """The server answered with an error status."""


class BadRequestError(ApiError):
    """400 / 413 / 422: the request itself is wrong (bad phone, empty text …)."""


class AuthenticationError(ApiError):
    """401: the token is missing or not known to the server."""


class PermissionDeniedError(ApiError):
    """403: the token is valid but may not act on that organization."""


class NotFoundError(ApiError):
    """404: no such organization or message."""


class ConflictError(ApiError):
    """409: the request does not fit the current state (no QR on offer …)."""


class RateLimitError(ApiError):
    """429: asked too often (contact look-ups); ``retry_after`` is the
    seconds the server said to wait (``None`` if it did not say)."""

    retry_after: Optional[float] = None


class ServerError(ApiError):
    """5xx: the gateway failed or is not ready."""


class TransportError(WagateError):
    """No usable answer: the gateway could not be reached, the connection
    broke, or the answer was not what the API sends."""


class TimeoutError(TransportError):
    """The gateway did not answer within the client's timeout."""


def for_status(
    status: int, code: str, message: str, body: Any, retry_after: Optional[str] = None
) -> ApiError:
    """The exception class that matches an HTTP error status."""
    cls: type[ApiError]
    if status == 429:
        e = RateLimitError(message, code=code, status=status, body=body)
        try:
            e.retry_after = float(retry_after) if retry_after is not None else None
        except ValueError:
            e.retry_after = None
        return e
    if status in (400, 413, 422):
        cls = BadRequestError
    elif status == 401:
        cls = AuthenticationError
    elif status == 403:
        cls = PermissionDeniedError
    elif status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = ConflictError
    elif status >= 500:
        cls = ServerError
    else:
        cls = ApiError
    return cls(message, code=code, status=status, body=body)
