"""The exceptions embedops raises. Each message names the thing at fault and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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


class UnknownCheckError(EmbedopsError):
    """A command names a check that the Definitions do not have."""


class InvalidQueryError(EmbedopsError):
    """A search query that cannot be embedded (empty)."""


class SpaceMismatchError(EmbedopsError):
    """A vector of one embedding space met an index of another space."""


class ModelLoadError(EmbedopsError):
    """The embedding model named by a space could not be loaded offline."""


class ModelFailureError(EmbedopsError):
    """The model failed on too large a share of a run's texts; the run syncs nothing."""


class RayClusterError(EmbedopsError):
    """The Ray cluster named by EMBEDOPS_RAY_ADDRESS could not be reached."""


class NotMaterializedError(EmbedopsError):
    """An index or table that a command needs has not been built yet."""


class VectorStoreError(EmbedopsError):
    """The vector store refused an operation or could not be reached."""


class StateUnreachableError(EmbedopsError):
    """The control database (EMBEDOPS_DATABASE_URL) or the data store (EMBEDOPS_DATA_URL) cannot be reached."""


class SourceUnreachableError(EmbedopsError):
    """A tenant's source database (a table source's URL variable) cannot be reached or refuses the login."""


class OldLayoutError(ConfigError):
    """EMBEDOPS_HOME holds state in the layout of an earlier embedops, which this one does not read."""


class PartitionBusyError(EmbedopsError):
    """Another run holds the lease on the partition this run would write."""


class PagerDeliveryError(EmbedopsError):
    """The pager endpoint did not accept an event; it stays queued for the next attempt."""


class AliasError(EmbedopsError):
    """An alias cannot be moved as asked (nothing to roll back to, space retired, already there)."""


class GateRefusedError(EmbedopsError):
    """The cutover gate refused to move an alias; the message lists every reason."""


class RunFailedError(EmbedopsError):
    """A Dagster run failed. The message has a line per failed step: the asset's own error first, then
    the job, partition, step and run id (the traceback is in that run's event log)."""

    def __init__(self, message: str, run_id: str = "", failures: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.failures = list(failures)

    @classmethod
    def of(cls, job: str, partition: str | None, run_id: str, failures: Sequence[Any]) -> RunFailedError:
        """From a run's step failures (objects with ``step`` and ``error``)."""
        where = f"{job}{f' for {partition}' if partition else ''}"
        lines = [f"{f.error} ({where}, step {f.step}, run {run_id})" for f in failures]
        return cls("\n".join(lines) or f"{where} failed (run {run_id})", run_id, failures)


class RowContractError(VectorStoreError):
    """Rows given to a vector store break its contract (another tenant's, a repeated chunk id); nothing is written."""


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``: the form of a URL fit for a log line or an error."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, place = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{place}" if ":" in credentials else url
