"""sfkeep keeps Salesforce integrations authenticated, in-process.

- :class:`TokenManager` (``TokenManager.from_profile("prod")`` reads an sfkeep profile, as the
  CLI does): proactive refresh, and one token request per session death across
  every thread of the process and, with a file or Redis store, every process sharing it
  (``sfkeep`` CLI processes included).
- :mod:`sfkeep.requests`: an ``AuthBase`` that injects the token, and a ``requests.Session``
  that heals a dead session once per call.
- :mod:`sfkeep.simple_salesforce`: a ``simple_salesforce.Salesforce`` whose every call heals.
- Auth events are ``logging`` records on the logger ``sfkeep.auth``.

Safe across ``fork``: a child process (a pre-fork server's worker) builds its own runtime on
first use and adopts the token from a shared store.
"""

from __future__ import annotations

import os as _os

from . import _native
from ._native import RetryBudget, RetryPolicy, Status, Token, TokenManager
from .errors import (
    ApiError,
    ConfigError,
    MalformedResponse,
    ReauthRequired,
    SfkeepError,
    StoreUnavailable,
    TransientError,
)

__all__ = [
    "TokenManager",
    "Token",
    "Status",
    "RetryPolicy",
    "RetryBudget",
    "SfkeepError",
    "ReauthRequired",
    "StoreUnavailable",
    "TransientError",
    "ConfigError",
    "MalformedResponse",
    "ApiError",
]

# A child of fork() must not touch the parent's runtime (its threads did not survive):
# the first call in the child builds a new one.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_native._after_fork_in_child)
