"""The exceptions sfkeep raises. Each mirrors a cause the library tells apart.

``str()`` and ``repr()`` of every one of them are the library's own message, which never
contains a token, refresh token, password, client secret or key.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

__all__ = [
    "SfkeepError",
    "ReauthRequired",
    "StoreUnavailable",
    "TransientError",
    "ConfigError",
    "MalformedResponse",
    "ApiError",
]


class SfkeepError(Exception):
    """Base of every sfkeep exception.

    Attributes:
        message: what went wrong and where.
        token_error: the token endpoint's class of failure (``"authentication_failure"``,
            ``"transient"``, ...) when there is one, else ``None``.
        retryable: trying again later, unchanged, may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        token_error: Optional[str] = None,
        retryable: bool = False,
        **attrs: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.token_error = token_error
        self.retryable = retryable
        for key, value in attrs.items():
            setattr(self, key, value)

    def _attrs(self) -> Dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "message"}

    def __reduce__(self) -> Any:
        # Keyword attributes survive pickling (multiprocessing sends exceptions between
        # processes).
        return (_rebuild, (type(self), self.message, self._attrs()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


def _rebuild(cls: type, message: str, attrs: Dict[str, Any]) -> SfkeepError:
    return cls(message, **attrs)


class ReauthRequired(SfkeepError):
    """The credential is dead and only a person can revive it (or another grant).

    Raised at once, without a token request, until the cooldown passes.

    Attributes:
        cause: why, as ``sfkeep doctor`` names it: ``"user_frozen"``, ``"user_deactivated"``,
            ``"app_tokens_revoked"``, ``"ip_restricted"``, ``"app_not_approved"``, ...
        fix: what to do about it, in one sentence.
        detail: what the server said (never a secret).
    """

    cause: str
    fix: str
    detail: str


class StoreUnavailable(SfkeepError):
    """The token store cannot be read or written (a file's permissions, a wrong cache key,
    Redis down while the refresh token rotates)."""


class TransientError(SfkeepError):
    """The org or the network failed in a way that may pass (5xx, timeout, rate limit, a
    cooldown after such a failure). Retry later, with backoff."""


class ConfigError(SfkeepError, ValueError):
    """The settings are wrong: a missing profile or keyword, a bad value, a secret that
    cannot be read."""


class MalformedResponse(SfkeepError):
    """Salesforce (or something in between) answered with what the library refuses to use,
    e.g. a token response without ``instance_url``."""


class ApiError(SfkeepError):
    """Salesforce answered an API call with an error.

    Attributes:
        status: the HTTP status.
        error_code: ``errorCode`` (e.g. ``INVALID_FIELD``), empty when the body had none.
    """

    status: int
    error_code: str
