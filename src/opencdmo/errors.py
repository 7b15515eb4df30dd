"""The application's error hierarchy: expected failures carry their HTTP status, never a 500."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 400
    title = "Bad request"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class ValidationFailed(AppError):
    status_code = 422
    title = "Invalid input"


class NotAuthenticated(AppError):
    status_code = 401
    title = "Sign-in required"


class Forbidden(AppError):
    status_code = 403
    title = "Not permitted"


class NotFound(AppError):
    status_code = 404
    title = "Not found"

    def __init__(self, message: str = "Not found", **kwargs: Any):
        super().__init__(message, **kwargs)


class Conflict(AppError):
    status_code = 409
    title = "Conflict"


class Gone(AppError):
    status_code = 410
    title = "No longer valid"


class TooManyAttempts(AppError):
    status_code = 429
    title = "Too many attempts"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
