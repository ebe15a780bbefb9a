"""sfkeep for simple-salesforce: a real ``simple_salesforce.Salesforce`` whose calls heal.

>>> import sfkeep, sfkeep.simple_salesforce
>>> sf = sfkeep.simple_salesforce.connect(sfkeep.TokenManager.from_profile("prod"))
>>> sf.query("SELECT Id FROM Account LIMIT 1")

simple-salesforce keeps the session id it was created with: in its headers, and in every
``sf.bulk`` / ``sf.bulk2`` / ``sf.Account`` handler it makes. It has no refresh-token grant,
and on ``INVALID_SESSION_ID`` it raises ``SalesforceExpiredSession`` (or logs in again with a
password, with no single-flight). ``connect`` changes two things, without forking it:

- every request goes through :class:`sfkeep.requests.Session` (its ``session=`` hook), which
  puts the manager's current token into the request whatever the caller captured, and heals a
  dead session once, with one token request however many threads saw it die;
- :class:`Salesforce` is a subclass whose ``session_id`` is the manager's current token, so a
  handler made after a refresh starts with the new one.

REST, Bulk 2.0 (``sf.bulk2``), Bulk 1.0 (``sf.bulk``) and the Apex REST and tooling calls all
go through the session. The SOAP ``login()`` is never used: the manager gets the token.
"""

from __future__ import annotations

from typing import Any

import simple_salesforce as _ss

from . import requests as _sfkeep_requests
from ._native import TokenManager
from .errors import ConfigError

__all__ = ["Salesforce", "connect"]

# Keywords that would make simple-salesforce log in by itself, or pin a session: the manager
# does both.
_OWNED_BY_THE_MANAGER = (
    "session_id",
    "instance",
    "instance_url",
    "username",
    "password",
    "security_token",
    "organizationId",
    "consumer_key",
    "consumer_secret",
    "privatekey",
    "privatekey_file",
)


class Salesforce(_ss.Salesforce):
    """A ``simple_salesforce.Salesforce`` over a :class:`sfkeep.TokenManager`.

    Takes every keyword of ``simple_salesforce.Salesforce`` except those naming credentials
    or a session (the manager owns them). ``session=``, if given, must be a
    :class:`sfkeep.requests.Session` over the same manager.
    """

    def __init__(self, manager: TokenManager, **kw: Any) -> None:
        given = [k for k in _OWNED_BY_THE_MANAGER if kw.get(k) is not None]
        if given:
            raise ConfigError(
                "sfkeep.simple_salesforce: "
                + ", ".join(f"`{k}`" for k in given)
                + " cannot be passed: the TokenManager provides the session and its instance"
            )
        session = kw.pop("session", None)
        if session is None:
            session = _sfkeep_requests.session(manager)
        elif not isinstance(session, _sfkeep_requests.Session) or session.manager is not manager:
            raise ConfigError(
                "sfkeep.simple_salesforce: session= must be an sfkeep.requests.Session over the "
                "same TokenManager (a plain requests.Session cannot heal)"
            )
        self._sfkeep_manager = manager
        token = manager.token()
        session.remember_instance(token.instance_url)
        super().__init__(
            instance_url=token.instance_url,
            session_id=token.access_token,
            session=session,
            **kw,
        )

    @property  # type: ignore[override]
    def session_id(self) -> str:
        """The manager's current access token."""
        return self._sfkeep_manager.token().access_token

    @session_id.setter
    def session_id(self, _value: str) -> None:
        # simple-salesforce assigns the session id it was given; the manager owns it.
        pass

    @property
    def manager(self) -> TokenManager:
        """The token manager."""
        return self._sfkeep_manager


def connect(manager: TokenManager, **kw: Any) -> Salesforce:
    """A :class:`Salesforce` over ``manager``; ``kw`` as for ``simple_salesforce.Salesforce``
    (``version=``, ``domain=``, ``proxies=``, ...)."""
    return Salesforce(manager, **kw)
