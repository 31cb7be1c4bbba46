"""Consent records live with the subscribers (:mod:`dispatch.subscribers.consent`):
imports and the subscriber repository record them too, and the subscriber
package sits below signup."""

from dispatch.subscribers.consent import Consent, consents_of, record, record_members_without

__all__ = ["Consent", "consents_of", "record", "record_members_without"]
