"""Tenant names: validated once, before they reach a path, a filter or a collection name."""

from __future__ import annotations

import re

from embedops.errors import InvalidTenantError

_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

# The store namespace golden-set documents are indexed under (core/evaluation.py). A well-formed name,
# so the stores accept it, and reserved: no customer tenant may take it.
GOLDEN_TENANT = "embedops-golden"
RESERVED_TENANTS = frozenset({GOLDEN_TENANT})


def validate_namespace(name: str) -> str:
    """Return ``name`` when it is safe in a path, a filter or a collection name: what a store checks.

    A reserved namespace passes; every customer-facing entry point uses ``validate_tenant``.
    """
    if not isinstance(name, str) or not _TENANT.fullmatch(name):
        raise InvalidTenantError(
            f"tenant {name!r} is not a valid tenant name: use 1-63 characters of lower-case letters, "
            "digits, '-' and '_', starting with a letter or digit (for example 'acme' or 'team-42')"
        )
    return name


def validate_tenant(name: str) -> str:
    """Return ``name`` when it is a safe customer tenant name, else raise InvalidTenantError."""
    validate_namespace(name)
    if name in RESERVED_TENANTS:
        raise InvalidTenantError(
            f"tenant name {name!r} is reserved for embedops' golden-set evaluation and cannot be a customer "
            "tenant; give this tenant another name (rename its source folder)"
        )
    return name
