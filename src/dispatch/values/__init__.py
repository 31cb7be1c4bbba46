"""Value rules shared by every stage: email addresses, absolute URLs and control characters.

Each rule has one home here so that content checks, settings, subscriber
imports and the web forms cannot drift apart.
"""
