"""Shared by the differential HTTP tests (runtime server and router client against h11)."""

from __future__ import annotations


def joined_headers(pairs) -> tuple[tuple[str, str], ...]:
    """Header (name, value) pairs as one comparable form: names lower-cased, repeated
    headers joined with ", " (RFC 9110 5.3), sorted."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return tuple(sorted(headers.items()))
