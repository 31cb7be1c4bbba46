"""Subscribers and lists: addresses, CSV import/export, statuses."""

# Names are imported on first use (PEP 562): reading the settings models in
# this package must not load every module of it.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatch.subscribers.csvfile import ImportReport, export_csv, import_csv
    from dispatch.subscribers.repository import (
        STATUSES,
        Subscriber,
        SubscriberStatus,
        add_subscriber,
        change_status,
        find_subscribers,
        get_subscriber,
        list_counts,
        list_names,
        reactivate,
        reactivate_subscribers,
        remove_from_list,
        unknown_lists,
    )
    from dispatch.values.address import InvalidAddress, name_problem, normalise_email

_LAZY = {
    "InvalidAddress": "dispatch.values.address",
    "name_problem": "dispatch.values.address",
    "normalise_email": "dispatch.values.address",
    "ImportReport": "dispatch.subscribers.csvfile",
    "export_csv": "dispatch.subscribers.csvfile",
    "import_csv": "dispatch.subscribers.csvfile",
    "STATUSES": "dispatch.subscribers.repository",
    "Subscriber": "dispatch.subscribers.repository",
    "SubscriberStatus": "dispatch.subscribers.repository",
    "add_subscriber": "dispatch.subscribers.repository",
    "change_status": "dispatch.subscribers.repository",
    "find_subscribers": "dispatch.subscribers.repository",
    "get_subscriber": "dispatch.subscribers.repository",
    "list_counts": "dispatch.subscribers.repository",
    "list_names": "dispatch.subscribers.repository",
    "reactivate": "dispatch.subscribers.repository",
    "reactivate_subscribers": "dispatch.subscribers.repository",
    "remove_from_list": "dispatch.subscribers.repository",
    "unknown_lists": "dispatch.subscribers.repository",
}

__all__ = [
    "STATUSES",
    "ImportReport",
    "InvalidAddress",
    "Subscriber",
    "SubscriberStatus",
    "add_subscriber",
    "change_status",
    "export_csv",
    "find_subscribers",
    "get_subscriber",
    "import_csv",
    "list_counts",
    "list_names",
    "name_problem",
    "normalise_email",
    "reactivate",
    "reactivate_subscribers",
    "remove_from_list",
    "unknown_lists",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
