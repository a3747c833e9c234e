"""A table source's health: the WAL its replication slot holds on the source database, and its columns.

A consumer that stops leaves WAL piling up on the user's primary database, which can fill its disk: the slot
check grades the WAL written since the slot's confirmed position (what a stopped consumer grows) against the
thresholds, and reports the WAL the server retains for the slot (from its restart position, which PostgreSQL
moves forward a little after each confirmation) beside it.
A dropped or renamed text column stops every read of the table: the columns check names it.
"""

from __future__ import annotations

from embedops.core.cdc import SlotLag, TableSource
from embedops.core.monitoring import ERROR, WARN, Outcome, graded
from embedops.core.monitoring.config import ReplicationSlotConfig

MIB = 1024 * 1024


def slot_outcome(source: TableSource, lag: SlotLag, config: ReplicationSlotConfig) -> Outcome:
    """ERROR at ``error_bytes`` of WAL held (and when the slot is gone: changes are no longer captured), WARN
    at ``warn_bytes``."""
    check = "replication_slot_lag"
    if not lag.exists:
        return Outcome(check, False, ERROR, f"the replication slot {lag.slot} of {source.describe()} does not "
                       "exist, so changes are not captured; run `embedops ingest --tenant T` to create it with a "
                       "new initial load")
    held = lag.unconfirmed_bytes
    level = ERROR if held >= config.error_bytes else WARN if held >= config.warn_bytes else None
    limit = config.error_bytes if level == ERROR else config.warn_bytes
    description = (
        f"slot {lag.slot} is {held / MIB:.1f} MiB of WAL behind on the source database (limit {limit / MIB:.1f} MiB; "
        f"{lag.retained_bytes / MIB:.1f} MiB retained): "
        "the consumer is behind or stopped; check the cdc_sensor and table_changes_job runs, or drop the slot "
        "on purpose with `embedops sources drop-slot`"
        if level else f"slot {lag.slot} is {held / MIB:.1f} MiB behind; {lag.retained_bytes / MIB:.1f} MiB retained"
    )
    return graded(check, level, description, metadata={
        "slot": lag.slot, "retained_bytes": lag.retained_bytes, "unconfirmed_bytes": lag.unconfirmed_bytes,
        "warn_bytes": config.warn_bytes, "error_bytes": config.error_bytes, "active": lag.active,
    })


def columns_outcome(source: TableSource, missing: list[str]) -> Outcome:
    """ERROR naming every declared column the table no longer has."""
    if not missing:
        return Outcome("table_source_columns", True, description=f"{source.describe()} has every declared column")
    return Outcome(
        "table_source_columns", False, ERROR,
        f"{source.describe()} no longer has column {', '.join(missing)}, so the source stops; restore the column "
        "or declare the source again with `embedops sources add-postgres`",
        ids=missing,
    )
