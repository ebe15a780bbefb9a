"""sfkeep for ``requests``: an ``AuthBase`` that injects the token, and a ``Session`` that heals.

>>> import sfkeep, sfkeep.requests
>>> manager = sfkeep.TokenManager.from_profile("prod")
>>> s = sfkeep.requests.session(manager)
>>> s.get(f"{manager.token().instance_url}/services/data/v59.0/limits").json()

What the session does on every call, by the library's rules (``sfkeep._native``: Python sends,
the library decides; nothing here reads a status or a body to judge it):

- **Token**: the current token goes into ``Authorization: Bearer`` (REST, Bulk 2.0), into
  ``X-SFDC-Session`` (Bulk 1.0, ``/services/async/``), and into the ``<sessionId>`` of a SOAP
  envelope's ``SessionHeader`` (``/services/Soap/``). A request addressed to the instance goes
  to the token's ``instance_url`` (scheme, host and port), so a client that builds
  ``https://`` URLs itself (simple-salesforce) reaches an ``http://`` loopback org, and a moved
  instance.
- **Heal**: an answer that means the session died (a 401 ``INVALID_SESSION_ID``, a 403
  ``Bad_OAuth_Token``, the SOAP fault, Bulk 1.0's ``InvalidSessionId``) invalidates the
  token's generation, takes the one shared refresh, and replays the call **once**, whatever
  its method: the org did not run it. A second dead answer, or one a refresh cannot fix ("This
  session is not valid for use with the REST API"), is returned as it is.
- **Transient failures** (a connection that failed or timed out, 429, 502, 503, 504, a
  concurrency limit): retried with backoff and ``Retry-After`` only for GET, HEAD, PUT and
  DELETE. A POST or PATCH is never replayed after a transient failure: the org may have run it.
- **Retry budget**: retries are at most about a fifth of the calls (a burst of 10 after a quiet
  spell), so an outage does not triple the load on an org that is already struggling. Each
  session has its own :class:`RetryBudget` unless given one; give every session of a process
  the same one to bound them together.
- A body that cannot be sent twice (a generator, a file) is never replayed.
- **Clock**: every answer's ``Date`` goes to the manager, which keeps expiries and JWT
  assertions on the server's clock.

Token failures raise :class:`sfkeep.ReauthRequired`, :class:`sfkeep.TransientError` or
:class:`sfkeep.StoreUnavailable`; every other answer is a normal ``requests.Response``.
"""

from __future__ import annotations

import time
from typing import Any, Optional, Set
from urllib.parse import urlsplit, urlunsplit

import requests as _requests
from requests.auth import AuthBase

from . import _native
from ._native import Token, TokenManager

__all__ = ["SfkeepAuth", "Session", "session", "RetryBudget", "RetryPolicy"]

RetryBudget = _native.RetryBudget
RetryPolicy = _native.RetryPolicy

# A dead-session answer is small; this much of a body is enough to judge it.
_BODY_PREFIX = 64 * 1024


class SfkeepAuth(AuthBase):
    """Injects the manager's current token into each request (no healing: use
    :func:`session` for that)."""

    def __init__(self, manager: TokenManager) -> None:
        self.manager = manager

    def __call__(self, r: _requests.PreparedRequest) -> _requests.PreparedRequest:
        _apply(r, self.manager.token(), _api_of(r))
        return r


class Session(_requests.Session):
    """A ``requests.Session`` whose every call carries the current token and heals a dead
    session once (see the module docs for the rules).

    Args:
        manager: the token manager.
        retry: attempts and backoff for transient failures; defaults to 3 attempts, 0.2 s
            base, 20 s cap (the library client's defaults).
        budget: the retry budget this session's retries draw on (at most about a fifth of
            its calls, burst 10); defaults to a budget of its own. Sessions given the same
            budget share it.
    """

    def __init__(
        self,
        manager: TokenManager,
        *,
        retry: Optional[_native.RetryPolicy] = None,
        budget: Optional[_native.RetryBudget] = None,
    ) -> None:
        super().__init__()
        self.manager = manager
        self.retry = retry or _native.RetryPolicy()
        self.budget = budget or _native.RetryBudget()
        # Hosts (host:port) this session has seen as the org's instance: requests to them are
        # sent to the current token's instance.
        self._instance_hosts: Set[str] = set()

    def send(  # type: ignore[override]
        self, request: _requests.PreparedRequest, **kwargs: Any
    ) -> _requests.Response:
        api = _api_of(request)
        step = _native.HealStep(api)
        replayable = request.body is None or isinstance(request.body, (bytes, str))
        retryable = replayable and _native.is_idempotent_method(request.method or "")
        # The call earns the budget its share now; each retry below withdraws one.
        run = _native.RetryRun(self.retry, self.budget, retryable)
        while True:
            token = self.manager.token()
            prepared = request.copy()
            self._route(prepared, token)
            _apply(prepared, token, api)
            try:
                response = super().send(prepared, **kwargs)
            except (_requests.ConnectionError, _requests.Timeout):
                wait = run.next_wait()
                if wait is None:
                    raise
                time.sleep(wait)
                continue
            date = response.headers.get("Date")
            if date is not None:
                self.manager.observe_server_date(date)
            status = response.status_code
            if step.inspects(status):
                action, _cause = step.decide(
                    self.manager, token, status, _prefix(response), replayable
                )
                if action == "replay":
                    response.close()
                    continue
                return response
            if retryable and _native.answer_is_transient(
                status, _prefix(response) if status >= 400 else b""
            ):
                wait = run.next_wait(_retry_after(response))
                if wait is not None:
                    response.close()
                    time.sleep(wait)
                    continue
            return response

    def _route(self, request: _requests.PreparedRequest, token: Token) -> None:
        """Sends a request addressed to the instance to the token's instance."""
        target = urlsplit(token.instance_url)
        self._instance_hosts.add(target.netloc)
        url = urlsplit(request.url or "")
        if url.netloc in self._instance_hosts and (url.scheme, url.netloc) != (
            target.scheme,
            target.netloc,
        ):
            request.url = urlunsplit(
                (target.scheme, target.netloc, url.path, url.query, url.fragment)
            )

    def remember_instance(self, url: str) -> None:
        """Treats ``url``'s host as the instance (e.g. the one a client was created with)."""
        self._instance_hosts.add(urlsplit(url).netloc)


def session(
    manager: TokenManager,
    *,
    retry: Optional[_native.RetryPolicy] = None,
    budget: Optional[_native.RetryBudget] = None,
) -> Session:
    """A :class:`Session` over ``manager`` (``retry`` and ``budget`` as for :class:`Session`)."""
    return Session(manager, retry=retry, budget=budget)


def _api_of(r: _requests.PreparedRequest) -> str:
    return _native.api_for_path(urlsplit(r.url or "").path)


def _apply(r: _requests.PreparedRequest, token: Token, api: str) -> None:
    if api == "bulk":
        r.headers["X-SFDC-Session"] = token.access_token
        if "Authorization" in r.headers:
            r.headers["Authorization"] = "Bearer " + token.access_token
    elif api == "soap":
        body = r.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, bytes):
            replaced = _native.with_soap_session(body, token)
            if replaced is not None:
                r.body = replaced
                r.headers["Content-Length"] = str(len(replaced))
        r.headers["Authorization"] = "Bearer " + token.access_token
    else:
        r.headers["Authorization"] = "Bearer " + token.access_token


def _prefix(response: _requests.Response) -> Optional[bytes]:
    try:
        return response.content[:_BODY_PREFIX]
    except _requests.RequestException:
        return None


def _retry_after(response: _requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    return _native.parse_retry_after(value)
