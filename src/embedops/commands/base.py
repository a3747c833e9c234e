"""What every `embedops` command shares: the context it runs in and how it reports a user's mistake."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import click

from embedops.core.settings import Settings
from embedops.errors import EmbedopsError


class UserError(click.ClickException):
    """An embedops error as click shows it: one ``error:`` line per line of the message, exit code 2.

    Only EmbedopsError becomes a UserError; any other exception is a bug and keeps its traceback.
    """

    exit_code = 2

    def show(self, file: Any = None) -> None:
        for line in self.format_message().splitlines() or [""]:
            click.echo(f"error: {line}", err=True, file=file)


def printable(name: object) -> str:
    """A name (document id, path, reason) for human-readable output: backslashes and every character
    that is not printable (line breaks, escape codes, bidi controls, zero-width characters) are escaped
    as in a Python string literal, so a file name cannot forge an output line or hide what it is.
    JSON output needs none of this: json escapes by itself."""
    return "".join(
        "\\\\" if c == "\\" else c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in str(name)
    )


class EmbedopsGroup(click.Group):
    """The command group whose commands report EmbedopsError as a UserError."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbedopsError as exc:
            raise UserError(str(exc)) from exc


# A new DAGSTER_HOME: no storage block (Dagster's embedded SQLite), the hot-first run queue that
# `dagster dev` and the daemon use for runs launched from the UI or by sensors, and run monitoring,
# which fails runs whose process died (embedops.pipelines.liveness) so they do not hold the queue.
# Runs of one partition take turns in the queue (dagster.yaml says why).
INSTANCE_YAML = """telemetry:
  enabled: false
run_coordinator:
  module: embedops.pipelines.queue
  class: HotFirstRunCoordinator
  config:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      - key: dagster/partition
        value: {applyLimitPerUniqueValue: true}
        limit: 1
run_launcher:
  module: embedops.pipelines.liveness
  class: WatchedRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_runtime_seconds: 0
"""


class Context:
    """What every command needs: settings, the Definitions, and (lazily) the Dagster instance."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        os.environ.setdefault("DAGSTER_HOME", str(self.settings.dagster_home))
        dagster_home = Path(os.environ["DAGSTER_HOME"])
        dagster_home.mkdir(parents=True, exist_ok=True)
        instance_yaml = dagster_home / "dagster.yaml"
        if not instance_yaml.exists():
            instance_yaml.write_text(INSTANCE_YAML)
        import dagster as dg

        # Dagster marks some of the APIs used here as beta or preview; a user of the CLI cannot act on that
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        from embedops.definitions import build_defs

        self.defs = build_defs(self.settings)
        command = click.get_current_context(silent=True)
        if command is not None:  # the store's connection closes with the command
            resources: Any = self.defs.resources
            command.call_on_close(resources["vector_store"].close)

    def instance(self):  # type: ignore[no-untyped-def]
        import dagster as dg

        return dg.DagsterInstance.get()

    @property
    def workspace(self):  # type: ignore[no-untyped-def]
        return self.defs.resources["workspace"]

    def store(self):  # type: ignore[no-untyped-def]
        return self.defs.resources["vector_store"].open()
