"""Instant checks for learners: one module per lesson (``helpers.checks.lesson01`` ...)."""
