"""dispatch: Markdown articles to email, feeds and social posts, sent exactly once."""

from dispatch.errors import (
    ConfigError,
    ContentError,
    DeliveryError,
    DispatchError,
    InputError,
    Problem,
    ScheduleError,
    Severity,
    StoreError,
    TemplateError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ContentError",
    "DeliveryError",
    "DispatchError",
    "InputError",
    "Problem",
    "ScheduleError",
    "Severity",
    "StoreError",
    "TemplateError",
    "__version__",
]
