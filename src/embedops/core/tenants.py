"""Tenant names: validated once, before they reach a path, a filter or a collection name."""

from __future__ import annotations

import re

from embedops.errors import InvalidTenantError

_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def validate_tenant(name: str) -> str:
    """Return ``name`` when it is a safe tenant name, else raise InvalidTenantError."""
    if not isinstance(name, str) or not _TENANT.fullmatch(name):
        raise InvalidTenantError(
            f"tenant {name!r} is not a valid tenant name: use 1-63 characters of lower-case letters, "
            "digits, '-' and '_', starting with a letter or digit (for example 'acme' or 'team-42')"
        )
    return name
