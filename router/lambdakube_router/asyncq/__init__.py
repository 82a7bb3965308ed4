"""Durable async (``Event``) invocations: SQLite store, Lambda retry policy, dispatcher."""
