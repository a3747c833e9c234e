"""The data plane's addresses: EMBEDOPS_DATA_URL is a folder or an object-store prefix (``s3://bucket/p``).

Lance, LanceDB and pyarrow reach object stores themselves; this module only joins paths under the
root and passes on the store's options from the standard AWS environment variables (endpoint,
region). Credentials stay in the environment, where the object-store clients read them: they are
never copied into options, metadata, logs or errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

from embedops.errors import StateUnreachableError, redacted

if TYPE_CHECKING:
    import lance

REMOTE_SCHEMES = ("s3://", "gs://", "az://", "abfs://")
SETTING = "EMBEDOPS_DATA_URL"
# variables whose values must never reach an error, even when a store's message quotes them
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY")


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


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's file system for ``uri`` (an absolute folder path or an object-store URL) and the path in it.

    An S3 endpoint set in AWS_ENDPOINT_URL_S3 (which pyarrow does not read by itself) is passed on.
    """
    if uri.startswith("s3://"):
        options = storage_options(uri)
        endpoint = options.get("aws_endpoint", "")
        scheme, _, host = endpoint.partition("://")
        bucket_and_key = uri.removeprefix("s3://")
        fs = pafs.S3FileSystem(
            endpoint_override=host or None, scheme=scheme or "https", region=options.get("aws_region"),
        ) if endpoint else pafs.S3FileSystem(region=options.get("aws_region"))
        return fs, bucket_and_key.rstrip("/")
    if is_remote(uri):
        return pafs.FileSystem.from_uri(uri)  # type: ignore[no-any-return]
    return pafs.LocalFileSystem(), str(Path(uri.removeprefix("file://")))


def put_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` as the whole object (or file) ``uri``: readers see the old or the new content, whole."""
    fs, path = filesystem(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(file)
        return
    with fs.open_output_stream(path) as out:  # one PUT: an object store replaces an object whole
        out.write(data)


def get_bytes(uri: str) -> bytes | None:
    """The content of the object (or file) ``uri``; None when there is none."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read())


def list_names(uri: str) -> list[str]:
    """The names of the objects (or files) directly under the prefix (or folder) ``uri``, sorted."""
    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(info.base_name for info in infos if info.type == pafs.FileType.File)


def store_host(uri: str, environ: dict[str, str] | None = None) -> str:
    """The host that answers for ``uri``: an S3 endpoint's host:port (AWS_ENDPOINT_URL), the store's
    bucket otherwise, or ``local disk`` for a folder. Never credentials."""
    if not is_remote(uri):
        return "local disk"
    endpoint = storage_options(uri, environ).get("aws_endpoint", "")
    if endpoint:
        place = endpoint.partition("://")[2] or endpoint
        return place.split("/", 1)[0].rpartition("@")[2]
    return uri.partition("://")[2].split("/", 1)[0]


# What a store's (long, nested) error means, by what it contains: the first that matches is the reason given.
_REASONS = (
    ("Connection refused", "connection refused"),
    ("ConnectionRefused", "connection refused"),
    ("NoSuchBucket", "no such bucket"),
    ("error sending request", "the store does not answer (nothing listens there, or no route to it)"),
    ("dns error", "the host name does not resolve"),
    ("timed out", "timed out"),
    ("InvalidAccessKeyId", "the access key is not known"),
    ("SignatureDoesNotMatch", "the credentials are refused"),
    ("AccessDenied", "access denied"),
    ("Permission denied", "permission denied"),
)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for mark, reason in _REASONS:
        if mark in text:
            return reason
    return (text.strip().splitlines() or [type(exc).__name__])[0][:200]


def unreachable(
    uri: str, exc: BaseException, what: str = "the data plane", setting: str = SETTING
) -> StateUnreachableError:
    """The one-line error for a store that cannot be read or written: it names ``what``, the setting that
    places it, its host and the store's own first line of explanation, never a credential."""
    reason = _reason(exc)
    for name in _SECRET_VARIABLES:
        secret = os.environ.get(name)
        if secret:
            reason = reason.replace(secret, "***")
    return StateUnreachableError(
        f"cannot reach {what} at {redacted(uri)} ({setting}, host {store_host(uri)}): {reason}; check that the "
        "folder or bucket exists and that its store answers (for S3: AWS_ENDPOINT_URL, AWS_REGION and the "
        "credentials in the environment)"
    )


# How Lance, LanceDB and pyarrow say that a store did not answer or has no such bucket: they raise OSError
# or ValueError with the object store's error inside (no exception class of their own). A ValueError
# without one of these is a bug or a missing dataset and is left to the caller.
_STORE_FAILURE_MARKS = (
    "LanceError(IO)", "IO {", "Generic {", "store:", "NoSuchBucket", "Connection refused", "ConnectError",
    "dns error", "AWS Error", "error sending request", "Permission denied",
)


def is_store_failure(exc: BaseException) -> bool:
    """True when ``exc`` (from Lance, LanceDB or pyarrow) says the store did not answer or lacks the bucket."""
    if isinstance(exc, FileNotFoundError):
        return False
    if isinstance(exc, OSError) and not isinstance(exc, ValueError):
        text = str(exc)
        return "Commit conflict" not in text and "CommitConflict" not in text
    return isinstance(exc, ValueError) and any(mark in str(exc) for mark in _STORE_FAILURE_MARKS)


@contextmanager
def reaching(uri: str, what: str = "the data plane") -> Iterator[None]:
    """Run a block that reads or writes ``uri``; a store failure in it becomes ONE StateUnreachableError
    naming ``what``, EMBEDOPS_DATA_URL and the host (``unreachable``). Other errors pass unchanged."""
    try:
        yield
    except (OSError, ValueError) as exc:
        if is_store_failure(exc):
            raise unreachable(uri, exc, what) from exc
        raise


def open_dataset(url: str, options: dict[str, str], what: str) -> lance.LanceDataset | None:
    """The Lance dataset at ``url`` at its newest version, or None when none was ever committed there; a store
    that does not answer is ``unreachable`` (one line naming ``what``)."""
    import lance

    try:
        return lance.dataset(url, storage_options=options)
    except ValueError as error:
        # Lance has no exception class of its own for a missing dataset (nor a dataset whose first
        # version was never committed); tests/core/test_tables.py fails if this message changes
        if "was not found" in str(error):
            return None
        if is_store_failure(error):
            raise unreachable(url, error, what) from error
        raise
    except OSError as error:
        raise unreachable(url, error, what) from error
