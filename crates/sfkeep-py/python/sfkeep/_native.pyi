"""Type stubs of the extension module (crates/sfkeep-py/src)."""

from os import PathLike
from typing import Optional, Tuple, Union

LOGGER: str

class Token:
    """A valid access token and where to use it. ``repr()``/``str()`` show its fingerprint only."""

    @property
    def access_token(self) -> str:
        """The access token (a secret: send it, never log it)."""
    @property
    def instance_url(self) -> str:
        """The instance URL API calls go to."""
    @property
    def generation(self) -> int:
        """Pass it to ``TokenManager.invalidate_if_current`` after a 401."""
    @property
    def expires_at(self) -> float:
        """When the token must no longer be used, seconds since the epoch (server clock)."""
    @property
    def fingerprint(self) -> str:
        """First 8 hex digits of the token's SHA-256: safe to log."""

class Status:
    """The manager's state, as ``sfkeep status`` shows it. Never contains a token."""

    state: str
    generation: Optional[int]
    expires_in: Optional[float]
    fingerprint: Optional[str]
    expiry_source: Optional[str]
    store: str
    last_failure: Optional[str]
    clock_offset_ms: int

class TokenManager:
    """Keeps one Salesforce credential authenticated: proactive refresh, one token request per
    session death across threads (and, with a file or Redis store, across processes)."""

    def __init__(
        self,
        *,
        login_url: str,
        grant: str = "refresh_token",
        fallback_grant: Optional[str] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        refresh_token: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        security_token: Optional[str] = None,
        private_key: Optional[str] = None,
        api_version: str = "59.0",
        store: str = "memory",
        store_path: Optional[Union[str, PathLike[str]]] = None,
        redis_url: Optional[str] = None,
        cache_key: Optional[str] = None,
        session_timeout: Optional[float] = None,
    ) -> None:
        """A manager from keyword arguments named as in a profile.

        ``grant``/``fallback_grant``: ``refresh_token``, ``jwt_bearer``, ``client_credentials``,
        ``password`` or ``soap_login``. ``store``: ``memory``, ``file`` (``store_path``) or
        ``redis`` (``redis_url``); the file and Redis stores are encrypted with ``cache_key``
        (base64 of 32 bytes; default ``$SFKEEP_CACHE_KEY``). Raises ``ConfigError`` naming the
        keyword that is missing or wrong, ``StoreUnavailable`` for a store it cannot read.
        """
    @staticmethod
    def from_profile(
        name: Optional[str] = None, config: Optional[Union[str, PathLike[str]]] = None
    ) -> "TokenManager":
        """A manager from profile ``name`` of an sfkeep config file, built as the ``sfkeep`` CLI
        builds it: the same file (``config``, else ``./sfkeep.toml``, else
        ``$XDG_CONFIG_HOME/sfkeep/sfkeep.toml``), secrets, grants, store and store key, so this
        process shares the profile's token with its CLI processes. ``name`` defaults to
        ``$SFKEEP_PROFILE``, else ``default``.

        Raises ``ConfigError`` naming the file and key that is wrong, ``StoreUnavailable`` for a
        store it cannot read, ``ReauthRequired`` when the profile has no credential yet
        (``cause == "no_refresh_token"``: run ``sfkeep login`` once).
        """
    def token(self) -> Token:
        """A valid token (waits, with the GIL released, for the one shared refresh if needed).

        Raises ``ReauthRequired``, ``TransientError`` or ``StoreUnavailable``.
        """
    def invalidate_if_current(self, generation: int, api: str = "rest") -> bool:
        """Declares the token of ``generation`` dead after a 401 from ``api``
        (``rest``, ``soap``, ``bulk``); a no-op when a newer token is current."""
    def force_refresh(self) -> Token:
        """A new token now, whatever the state of the current one (clears any cooldown)."""
    def observe_server_date(self, date: str) -> None:
        """Records a response's ``Date`` header, to correct clock skew."""
    def status(self) -> Status:
        """The current state (never a token)."""

class HealStep:
    """One request's heal step (the library's rules): at most one replay after a dead session."""

    def __init__(self, api: str) -> None: ...
    def inspects(self, status: int) -> bool:
        """Whether an answer with ``status`` may mean a dead session (read its body, ``decide``)."""
    def decide(
        self,
        manager: TokenManager,
        token: Token,
        status: int,
        body: Optional[bytes],
        replayable: bool = True,
    ) -> Tuple[str, Optional[str]]:
        """``("deliver" | "replay" | "dead_again" | "unfixable", cause)``."""

class RetryPolicy:
    """Attempts and backoff for transient failures (the library client's defaults)."""

    def __init__(
        self,
        max_attempts: Optional[int] = None,
        base: Optional[float] = None,
        cap: Optional[float] = None,
    ) -> None: ...
    @property
    def max_attempts(self) -> int: ...
    def backoff(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based)."""

class RetryBudget:
    """Bounds retries to about a fifth of the calls (burst 10): the library client's budget.
    A session has its own unless given one; sessions given the same one share it."""

    BURST: int
    RATIO_PER_MILLE: int
    def __init__(self) -> None: ...

class RetryRun:
    """One call's retries under a policy and a budget; create it before the first attempt."""

    def __init__(self, policy: RetryPolicy, budget: RetryBudget, idempotent: bool) -> None: ...
    def next_wait(self, retry_after: Optional[float] = None) -> Optional[float]:
        """After a transient failure: seconds to wait before the next attempt, or ``None`` to
        give up (not idempotent, attempts used up, or the budget spent)."""
    @property
    def failed_attempts(self) -> int: ...

def api_for_path(path: str) -> str:
    """``soap``, ``bulk`` or ``rest`` for a path on the instance."""

def is_idempotent_method(method: str) -> bool:
    """GET, HEAD, PUT, DELETE."""

def answer_is_transient(status: int, body: bytes) -> bool:
    """429, 502, 503, 504 or a concurrency limit (the library client's rule)."""

def parse_retry_after(value: str) -> Optional[float]:
    """``Retry-After`` (seconds or an HTTP date) as seconds from now."""

def with_soap_session(body: bytes, token: Token) -> Optional[bytes]:
    """The envelope with its ``sessionId`` replaced by the token; ``None`` without one."""

def _after_fork_in_child() -> None: ...
