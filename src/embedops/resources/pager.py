from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import dagster as dg

from embedops.core.monitoring.pager import with_routing_key
from embedops.errors import PagerDeliveryError


class PagerResource(dg.ConfigurableResource):
    """A PagerDuty Events API v2 endpoint (``url``, e.g. https://events.pagerduty.com/v2/enqueue).

    Bind ``routing_key`` with ``dg.EnvVar("EMBEDOPS_PAGER_ROUTING_KEY")``: it is sent, never logged or stored.
    With no ``url`` the pager is off and the pager sensor skips.
    """

    url: str = ""
    routing_key: str = ""
    timeout_s: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def send(self, event: dict[str, Any]) -> int:
        """POST one event; returns the HTTP status, raises PagerDeliveryError unless it is 2xx."""
        body = json.dumps(with_routing_key(event, self.routing_key)).encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 (configured URL)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            raise PagerDeliveryError(
                f"pager {self.url} refused the {event.get('event_action')} event for {event.get('dedup_key')}: "
                f"HTTP {exc.code}; it stays queued and is retried on the next sensor tick"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PagerDeliveryError(
                f"pager {self.url} could not be reached ({reason}); the event for {event.get('dedup_key')} "
                "stays queued and is retried on the next sensor tick"
            ) from None
