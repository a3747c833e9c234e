"""A small two-tenant corpus that `embedops demo` indexes."""

from pathlib import Path

DEMO_ROOT = Path(__file__).resolve().parent
DEMO_TENANTS = ("acme", "globex")
DEMO_QUERIES = {"acme": "how do I rotate the API key?", "globex": "what happens when a shipment is late?"}
