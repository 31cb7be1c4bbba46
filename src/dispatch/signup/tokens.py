"""The reader's signed tokens live in :mod:`dispatch.tokens` (delivery signs
preference links in every message, and delivery sits below signup)."""

from dispatch.tokens import (
    MAX_TOKEN,
    confirm_token,
    form_token,
    preferences_path,
    preferences_token,
    read_confirm_token,
    read_form_token,
    read_preferences_token,
    sign,
    verify,
)

__all__ = ["MAX_TOKEN", "confirm_token", "form_token", "preferences_path",
           "preferences_token", "read_confirm_token", "read_form_token",
           "read_preferences_token", "sign", "verify"]
