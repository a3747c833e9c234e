"""The exceptions embedops raises. Each message names the thing at fault and the fix."""

from __future__ import annotations


class EmbedopsError(Exception):
    """Base class for every error embedops raises on purpose."""


class ConfigError(EmbedopsError):
    """A setting or the space config file is missing or malformed."""


class InvalidTenantError(EmbedopsError):
    """A tenant name is not safe to use in a path, a filter or a collection name."""


class UnknownTenantError(EmbedopsError):
    """A command names a tenant that has never been ingested."""


class UnknownSpaceError(EmbedopsError):
    """A command names a space that the space config does not declare."""


class SpaceMismatchError(EmbedopsError):
    """A vector of one embedding space met an index of another space."""


class ModelLoadError(EmbedopsError):
    """The embedding model named by a space could not be loaded offline."""


class NotMaterializedError(EmbedopsError):
    """An index or table that a command needs has not been built yet."""


class VectorStoreError(EmbedopsError):
    """The vector store refused an operation or could not be reached."""


class PagerDeliveryError(EmbedopsError):
    """The pager endpoint did not accept an event; it stays queued for the next attempt."""


class RowContractError(VectorStoreError):
    """Rows given to a vector store break its contract (another tenant's, a repeated chunk id); nothing is written."""
