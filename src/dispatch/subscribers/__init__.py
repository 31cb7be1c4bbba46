"""Subscribers and lists: addresses, CSV import/export, statuses."""

from dispatch.subscribers.address import InvalidAddress, name_problem, normalise_email
from dispatch.subscribers.csvfile import ImportReport, export_csv, import_csv, parse_csv
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
    "parse_csv",
    "reactivate",
    "reactivate_subscribers",
    "remove_from_list",
    "unknown_lists",
]
