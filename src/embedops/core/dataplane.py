"""The data plane's addresses: EMBEDOPS_DATA_URL is a folder or an object-store prefix (``s3://bucket/p``).

Lance, LanceDB and pyarrow reach object stores themselves; this module only joins paths under the
root and passes on the store's options from the standard AWS environment variables (endpoint,
region). Credentials stay in the environment, where the object-store clients read them: they are
never copied into options, metadata, logs or errors.
"""

from __future__ import annotations

import os
from pathlib import Path

REMOTE_SCHEMES = ("s3://", "gs://", "az://", "abfs://")


def is_remote(root: str) -> bool:
    return root.startswith(REMOTE_SCHEMES)


def join(root: str, *parts: str) -> str:
    """``parts`` under the data root: a URL under a URL, an absolute path under a folder."""
    if is_remote(root):
        return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(root).joinpath(*parts))


def storage_options(root: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Options for Lance's object store at ``root``: endpoint and region from AWS_* variables, no secrets."""
    if not root.startswith("s3://"):
        return {}
    env = os.environ if environ is None else environ
    options: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["aws_region"] = region
    return options
