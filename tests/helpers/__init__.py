"""Code the tests share: settings, command runners, on-disk dataset writers, test callbacks.

Test modules import from here, never from one another.
"""
