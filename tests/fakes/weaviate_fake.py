"""A FAKE Weaviate server for tests. It is not Weaviate.

Weaviate cannot run here (no Docker, no server binary), so tests start this protocol-level stand-in
on 127.0.0.1: an HTTP server thread answers the REST calls and a ``grpc.server`` answers the gRPC
calls that weaviate-client 4.23.1 makes for the operations embedops uses, with the protobuf
modules the client ships. Everything is in memory and gone when the fake stops.

It follows Weaviate's documented behaviour (and its source where the docs are silent), not what
embedops would like:

* REST: ``/v1/meta``, ``/v1/.well-known/{ready,live}`` (no auth, as on the server),
  ``/v1/schema`` (create, list, get, delete; the server fills in defaults), tenants under
  ``/v1/schema/{class}/tenants`` and ``/v1/aliases`` (create, list, get, update, delete; absent
  below 1.32, like the route on an older server). Names get their first letter upper-cased.
* gRPC: ``Search`` (fetch with the ``after`` cursor, ``near_vector`` on a named or legacy vector,
  property and ``_id`` filters, limit/offset), ``BatchObjects`` (upsert; per-object errors),
  ``BatchDelete`` (filters, dry run, verbose; at most 10 000 matches per call like
  QUERY_MAXIMUM_RESULTS), ``Aggregate`` (object count, filters), ``TenantsGet`` and the health
  check ``/grpc.health.v1.Health/Check``.
* Aliases resolve for object operations (search, batch, delete, aggregate) and ``TenantsGet``,
  but not for schema or tenant management: ``POST /v1/schema/{alias}/tenants`` fails with 422
  "class not found", as on the server (weaviate/weaviate#8995, #11561).
* Multi-tenancy: a request without a tenant, or naming a tenant that does not exist, fails; tenant
  creation is idempotent for an existing tenant.
* API keys: with ``api_keys`` set, every call except the health and well-known endpoints needs
  ``Authorization: Bearer <key>``; a wrong or missing key gets 401 (REST) / UNAUTHENTICATED (gRPC).
* Vectors: cosine (default), dot and l2-squared distances; an index keeps the vector length of the
  first vector it saw, and an object with another length is refused with the HNSW message.
* Auto-schema is off (as with AUTOSCHEMA_ENABLED=false): an unknown property fails the object.

Not modelled: BM25/hybrid/near_text, sorting, group-by, metric aggregations, references, nested
objects, replication and consistency levels, RBAC, OIDC, aliases of a deleted collection. Such a
request gets UNIMPLEMENTED / 501 so a test never passes by accident.

Test hooks: ``requests`` logs every call (``"POST /v1/schema/X/tenants"``, ``"gRPC Search X"``);
``rejections`` maps an object UUID to an error message the fake returns for that object in a batch,
standing in for any per-object failure the server can report.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn, Self
from urllib.parse import parse_qs, unquote, urlsplit

import grpc
import numpy as np
from google.protobuf import json_format
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    base_search_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)

_CLASS_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]{0,254}$")
_PROP_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,230}$")
_TENANT_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
_DATA_TYPES = {"text", "int", "number", "boolean", "date", "uuid"}
MAX_DELETE_MATCHES = 10_000
_UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED
DEFAULT_LIMIT = 10
_INVALID_KEY = "invalid api key, please provide a valid api key"
_NO_KEY = "anonymous access not enabled, please provide an auth scheme such as OIDC"
_NO_SCHEME = "client sent an auth token, but no authentication scheme is configured"

_HNSW_DEFAULTS: dict[str, Any] = {
    "skip": False,
    "cleanupIntervalSeconds": 300,
    "maxConnections": 32,
    "efConstruction": 128,
    "ef": -1,
    "dynamicEfMin": 100,
    "dynamicEfMax": 500,
    "dynamicEfFactor": 8,
    "vectorCacheMaxObjects": 1_000_000_000_000,
    "flatSearchCutoff": 40_000,
    "distance": "cosine",
    "filterStrategy": "sweeping",
    "pq": {"enabled": False},
    "bq": {"enabled": False},
    "sq": {"enabled": False},
    "rq": {"enabled": False},
    "multivector": {"enabled": False, "aggregation": "maxSim"},
}
_INVERTED_DEFAULTS: dict[str, Any] = {
    "bm25": {"b": 0.75, "k1": 1.2},
    "cleanupIntervalSeconds": 60,
    "stopwords": {"preset": "en", "additions": None, "removals": None},
    "usingBlockMaxWAND": True,
}


class _Fail(Exception):
    """An error the server reports: REST status + message, or a gRPC status code + details."""

    def __init__(self, message: str, status: int = 422, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass
class _Object:
    uuid: str
    properties: dict[str, Any]
    vectors: dict[str, np.ndarray]
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    updated_ms: int = field(default_factory=lambda: int(time.time() * 1000))


class FakeWeaviateServer:
    """A fake Weaviate (REST + gRPC) on 127.0.0.1, on free ports; ``start()`` it, ``stop()`` it."""

    def __init__(self, *, version: str = "1.32.0", api_keys: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        self.version = version
        self.api_keys = set(api_keys)
        self.host = host
        self.http_port = 0
        self.grpc_port = 0
        self.classes: dict[str, dict[str, Any]] = {}
        self.tenants: dict[str, dict[str, str]] = {}  # class -> tenant -> activity status
        self.objects: dict[str, dict[str, dict[str, _Object]]] = {}  # class -> tenant ("" if none) -> uuid
        self.aliases: dict[str, str] = {}
        self.rejections: dict[str, str] = {}
        self.requests: list[str] = []
        self._dims: dict[tuple[str, str, str], int] = {}
        self._lock = threading.RLock()
        self._http: _HTTPServer | None = None
        self._grpc: grpc.Server | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self) -> Self:
        self._http = _HTTPServer((self.host, 0), _RestHandler, self)
        self.http_port = self._http.server_address[1]
        threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-weaviate-rest", daemon=True
        ).start()
        self._grpc = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="fake-weaviate-grpc"))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Servicer(self), self._grpc)
        self._grpc.add_generic_rpc_handlers((_health_handler(),))
        self.grpc_port = self._grpc.add_insecure_port(f"{self.host}:0")
        self._grpc.start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- shared rules ---------------------------------------------------------------------------

    def _version_at_least(self, major: int, minor: int) -> bool:
        numbers = re.match(r"^(\d+)\.(\d+)", self.version)
        return numbers is not None and (int(numbers[1]), int(numbers[2])) >= (major, minor)

    def _auth_error(self, header: str | None) -> str | None:
        """Why a request with this Authorization header is refused (None: allowed)."""
        token = header[len("Bearer ") :] if header and header.startswith("Bearer ") else None
        if not self.api_keys:
            return _NO_SCHEME if token is not None else None
        if token is None:
            return _NO_KEY
        return None if token in self.api_keys else _INVALID_KEY

    def _resolve(self, name: str) -> str:
        """The class an object operation addresses: a class name or an alias of one."""
        name = _upper_first(name)
        if name in self.classes:
            return name
        if name in self.aliases:
            return self.aliases[name]
        raise _Fail(f"could not find class {name} in schema")

    def _class(self, name: str) -> dict[str, Any]:
        """A class by its own name (schema and tenant operations do not resolve aliases)."""
        cls = self.classes.get(_upper_first(name))
        if cls is None:
            raise _Fail(f'class "{_upper_first(name)}" not found', status=422)
        return cls

    def _shard(self, cls_name: str, tenant: str) -> dict[str, _Object]:
        mt = self.classes[cls_name]["multiTenancyConfig"]["enabled"]
        if mt and not tenant:
            raise _Fail(f"class {cls_name} has multi-tenancy enabled, but request was without tenant")
        if not mt and tenant:
            raise _Fail(f"class {cls_name} has multi-tenancy disabled, but request was with tenant")
        if mt and tenant not in self.tenants[cls_name]:
            raise _Fail(f'tenant not found: "{tenant}"')
        return self.objects[cls_name].setdefault(tenant, {})

    def _create_class(self, body: dict[str, Any]) -> dict[str, Any]:
        cls = _complete_class(body)
        name = cls["class"]
        if name in self.classes:
            raise _Fail(f'class name "{name}" already exists')
        if name in self.aliases:
            raise _Fail(f'class name "{name}" conflicts with an alias of the same name')
        self.classes[name] = cls
        self.tenants[name] = {}
        self.objects[name] = {}
        return cls

    def _add_tenants(self, class_name: str, body: Any) -> list[dict[str, Any]]:
        cls = self._class(class_name)
        if not cls["multiTenancyConfig"]["enabled"]:
            raise _Fail(f'multi-tenancy is not enabled for class "{cls["class"]}"')
        if not isinstance(body, list):
            raise _Fail("tenants must be a list")
        for tenant in body:
            if not _TENANT_NAME.fullmatch(str(tenant.get("name", ""))):
                raise _Fail(f"tenant name {tenant.get('name')!r} should match {_TENANT_NAME.pattern}")
        for tenant in body:  # an existing tenant is left as it is
            self.tenants[cls["class"]].setdefault(tenant["name"], "ACTIVE")
        return [{"name": t["name"], "activityStatus": self.tenants[cls["class"]][t["name"]]} for t in body]

    # -- objects --------------------------------------------------------------------------------

    def _put_object(self, obj: batch_pb2.BatchObject) -> None:
        cls_name = self._resolve(obj.collection)
        cls = self.classes[cls_name]
        shard = self._shard(cls_name, obj.tenant)
        try:
            object_id = str(uuid.UUID(obj.uuid))
        except ValueError as exc:
            raise _Fail(f"invalid UUID {obj.uuid!r}") from exc
        if object_id in self.rejections:
            raise _Fail(self.rejections[object_id])
        properties = _coerce_properties(cls, _batch_properties(obj))
        vectors = _batch_vectors(cls, obj)
        for name, vector in vectors.items():
            key = (cls_name, obj.tenant, name)
            dims = self._dims.get(key)
            if dims is not None and dims != len(vector):
                raise _Fail(
                    f"new node has a vector with length {len(vector)}. Existing nodes have vectors with length {dims}"
                )
        for name, vector in vectors.items():
            self._dims.setdefault((cls_name, obj.tenant, name), len(vector))
        previous = shard.get(object_id)
        stored = _Object(object_id, properties, vectors)
        if previous is not None:
            stored.created_ms = previous.created_ms
        shard[object_id] = stored

    def _matching(self, cls_name: str, objects: Iterable[_Object], filters: base_pb2.Filters | None) -> list[_Object]:
        if filters is None:
            return list(objects)
        cls = self.classes[cls_name]
        return [obj for obj in objects if _matches(cls, obj, filters)]

    def _search(self, req: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
        started = time.perf_counter()
        for unsupported in ("hybrid_search", "bm25_search", "near_object", "near_text", "group_by", "rerank"):
            if req.HasField(unsupported):
                raise _Fail(f"the fake Weaviate does not model {unsupported}", code=_UNIMPLEMENTED)
        if len(req.sort_by):
            raise _Fail("the fake Weaviate does not model sort_by", code=_UNIMPLEMENTED)
        cls_name = self._resolve(req.collection)
        cls = self.classes[cls_name]
        shard = self._shard(cls_name, req.tenant)
        found = self._matching(cls_name, shard.values(), req.filters if req.HasField("filters") else None)
        distances: dict[str, float] = {}
        if req.HasField("near_vector"):
            if req.after:
                raise _Fail("cursor api: invalid 'after' parameter: vector search is not supported")
            target, query = _near_vector(cls, req.near_vector)
            scored = []
            for obj in found:
                vector = obj.vectors.get(target)
                if vector is None:
                    continue
                if len(vector) != len(query):
                    raise _Fail(
                        f"vector search: knn search: distance between entrypoint and query node: "
                        f"vector lengths don't match: {len(vector)} vs {len(query)}"
                    )
                distances[obj.uuid] = _distance(_metric(cls, target), vector, query)
                scored.append(obj)
            found = sorted(scored, key=lambda o: (distances[o.uuid], o.uuid))
            nv = req.near_vector
            if nv.HasField("distance"):
                found = [o for o in found if distances[o.uuid] <= nv.distance]
            if nv.HasField("certainty"):
                found = [o for o in found if 1 - distances[o.uuid] / 2 >= nv.certainty]
        else:
            found.sort(key=lambda o: o.uuid)
            if req.after:
                if req.HasField("filters"):
                    raise _Fail("cursor api: invalid 'after' parameter: where filter is not supported")
                found = [o for o in found if o.uuid > str(uuid.UUID(req.after))]
        limit = req.limit or DEFAULT_LIMIT
        found = found[req.offset : req.offset + limit]
        results = [
            search_get_pb2.SearchResult(
                properties=search_get_pb2.PropertiesResult(
                    non_ref_props=_properties_result(cls, obj, req),
                    target_collection=cls_name,
                ),
                metadata=_metadata_result(cls, obj, req, distances.get(obj.uuid)),
            )
            for obj in found
        ]
        return search_get_pb2.SearchReply(took=time.perf_counter() - started, results=results)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeWeaviateServer):
        super().__init__(address, handler)
        self.fake = fake


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1  # headers and body leave in one write (flushed after each request)
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(self, status: int, payload: Any = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        path = unquote(parts.path).rstrip("/")
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with fake._lock:
            fake.requests.append(f"{method} {path}")
        if path in ("/v1/.well-known/ready", "/v1/.well-known/live"):
            return self._send(200)
        if path == "/v1/.well-known/openid-configuration":
            return self._send(404)
        refused = fake._auth_error(self.headers.get("Authorization"))
        if refused is not None:
            return self._send(401, {"code": 401, "message": refused})
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return self._send(400, {"code": 400, "message": 'parsing body from "" failed'})
        try:
            with fake._lock:
                status, payload = _route(fake, method, path, query, body)
        except _Fail as failure:
            status, payload = failure.status, {"error": [{"message": failure.message}]}
        self._send(status, payload)


def _route(fake: FakeWeaviateServer, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    """The REST API: returns (status, JSON payload or None)."""
    segments = path.split("/")[2:] if path.startswith("/v1/") else []
    not_found = (404, {"code": 404, "message": f"path {path} was not found"})
    match method, segments:
        case "GET", ["meta"]:
            return 200, {
                "hostname": "http://[::]:8080",
                "modules": {},
                "version": fake.version,
                "grpcMaxMessageSize": 104858000,
            }
        case "GET", ["schema"]:
            return 200, {"classes": [copy.deepcopy(c) for c in fake.classes.values()]}
        case "POST", ["schema"]:
            return 200, copy.deepcopy(fake._create_class(body or {}))
        case "GET", ["schema", name]:
            cls = fake.classes.get(_upper_first(name))
            return (200, copy.deepcopy(cls)) if cls is not None else (404, None)
        case "DELETE", ["schema", name]:
            name = _upper_first(name)
            fake.classes.pop(name, None)
            fake.tenants.pop(name, None)
            fake.objects.pop(name, None)
            fake._dims = {k: v for k, v in fake._dims.items() if k[0] != name}
            return 200, None
        case "GET", ["schema", name, "tenants"]:
            cls = fake._class(name)
            return 200, [{"name": t, "activityStatus": s} for t, s in fake.tenants[cls["class"]].items()]
        case "POST", ["schema", name, "tenants"]:
            return 200, fake._add_tenants(name, body)
        case "DELETE", ["schema", name, "tenants"]:
            cls = fake._class(name)
            for tenant in body or []:
                fake.tenants[cls["class"]].pop(tenant, None)
                fake.objects[cls["class"]].pop(tenant, None)
            return 200, None
        case (("GET" | "HEAD"), ["schema", name, "tenants", tenant]):
            cls = fake._class(name)
            status = fake.tenants[cls["class"]].get(tenant)
            return (200, {"name": tenant, "activityStatus": status}) if status else (404, None)
        case _, ["aliases", *_] if not fake._version_at_least(1, 32):
            return not_found
        case "GET", ["aliases"]:
            wanted = _upper_first(query["class"][0]) if "class" in query else None
            return 200, {"aliases": [{"alias": a, "class": c} for a, c in fake.aliases.items() if wanted in (None, c)]}
        case "POST", ["aliases"]:
            alias, target = _upper_first(str(body.get("alias", ""))), _upper_first(str(body.get("class", "")))
            if not _CLASS_NAME.fullmatch(alias):
                raise _Fail(f"'{alias}' is not a valid alias name")
            if alias in fake.aliases or alias in fake.classes:
                raise _Fail(f"create alias: alias {alias} already exists or is the name of a class")
            if target not in fake.classes:
                raise _Fail(f"class {target}: not found")
            fake.aliases[alias] = target
            return 200, {"alias": alias, "class": target}
        case "GET", ["aliases", alias]:
            alias = _upper_first(alias)
            if alias not in fake.aliases:
                return 404, None
            return 200, {"alias": alias, "class": fake.aliases[alias]}
        case "PUT", ["aliases", alias]:
            alias, target = _upper_first(alias), _upper_first(str((body or {}).get("class", "")))
            if alias not in fake.aliases or target not in fake.classes:
                return 404, None
            fake.aliases[alias] = target  # one assignment: readers see the old target or the new
            return 200, {"alias": alias, "class": target}
        case "DELETE", ["aliases", alias]:
            return (204, None) if fake.aliases.pop(_upper_first(alias), None) else (404, None)
    if segments and segments[0] in ("schema", "aliases", "meta"):
        return 501, {"error": [{"message": f"the fake Weaviate does not model {method} {path}"}]}
    return not_found


class _Servicer(weaviate_pb2_grpc.WeaviateServicer):
    """The weaviate.v1.Weaviate gRPC service, on the fake's state."""

    def __init__(self, fake: FakeWeaviateServer) -> None:
        self.fake = fake

    def _call(self, name: str, collection: str, context: grpc.ServicerContext, work: Callable[[], Any]) -> Any:
        fake = self.fake
        with fake._lock:
            fake.requests.append(f"gRPC {name} {collection}")
        metadata = dict(context.invocation_metadata())
        refused = fake._auth_error(metadata.get("authorization"))
        if refused is not None:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, refused)
        try:
            with fake._lock:
                return work()
        except _Fail as failure:
            _abort(context, failure.code, failure.message)

    def Search(self, request: search_get_pb2.SearchRequest, context: grpc.ServicerContext) -> Any:
        return self._call("Search", request.collection, context, lambda: self.fake._search(request))

    def BatchObjects(self, request: batch_pb2.BatchObjectsRequest, context: grpc.ServicerContext) -> Any:
        def work() -> batch_pb2.BatchObjectsReply:
            started = time.perf_counter()
            errors = []
            for index, obj in enumerate(request.objects):
                try:
                    self.fake._put_object(obj)
                except _Fail as failure:
                    errors.append(batch_pb2.BatchObjectsReply.BatchError(index=index, error=failure.message))
            return batch_pb2.BatchObjectsReply(took=time.perf_counter() - started, errors=errors)

        collection = request.objects[0].collection if request.objects else ""
        return self._call("BatchObjects", collection, context, work)

    def BatchDelete(self, request: batch_delete_pb2.BatchDeleteRequest, context: grpc.ServicerContext) -> Any:
        def work() -> batch_delete_pb2.BatchDeleteReply:
            started = time.perf_counter()
            if not request.HasField("filters"):
                raise _Fail("batch delete params: filters are required", code=grpc.StatusCode.INVALID_ARGUMENT)
            cls_name = self.fake._resolve(request.collection)
            shard = self.fake._shard(cls_name, request.tenant)
            matched = self.fake._matching(cls_name, sorted(shard.values(), key=lambda o: o.uuid), request.filters)
            matched = matched[:MAX_DELETE_MATCHES]
            if not request.dry_run:
                for obj in matched:
                    del shard[obj.uuid]
            objects = [
                batch_delete_pb2.BatchDeleteObject(uuid=uuid.UUID(o.uuid).bytes, successful=not request.dry_run)
                for o in matched
            ]
            return batch_delete_pb2.BatchDeleteReply(
                took=time.perf_counter() - started,
                matches=len(matched),
                successful=0 if request.dry_run else len(matched),
                failed=0,
                objects=objects if request.verbose else [],
            )

        return self._call("BatchDelete", request.collection, context, work)

    def Aggregate(self, request: aggregate_pb2.AggregateRequest, context: grpc.ServicerContext) -> Any:
        def work() -> aggregate_pb2.AggregateReply:
            started = time.perf_counter()
            if request.WhichOneof("search") or len(request.aggregations) or request.HasField("group_by"):
                raise _Fail(
                    "the fake Weaviate models only object counts in Aggregate",
                    code=_UNIMPLEMENTED,
                )
            cls_name = self.fake._resolve(request.collection)
            shard = self.fake._shard(cls_name, request.tenant)
            filters = request.filters if request.HasField("filters") else None
            count = len(self.fake._matching(cls_name, shard.values(), filters))
            return aggregate_pb2.AggregateReply(
                took=time.perf_counter() - started,
                single_result=aggregate_pb2.AggregateReply.Single(
                    objects_count=count if request.objects_count else None
                ),
            )

        return self._call("Aggregate", request.collection, context, work)

    def TenantsGet(self, request: tenants_pb2.TenantsGetRequest, context: grpc.ServicerContext) -> Any:
        def work() -> tenants_pb2.TenantsGetReply:
            started = time.perf_counter()
            try:
                cls_name = self.fake._resolve(request.collection)
            except _Fail as exc:
                raise _Fail(f"get tenants: class {request.collection} not found") from exc
            if not self.fake.classes[cls_name]["multiTenancyConfig"]["enabled"]:
                raise _Fail(f"get tenants: multi-tenancy is not enabled for class {cls_name}")
            names = set(request.names.values) if request.HasField("names") else None
            tenants = [
                tenants_pb2.Tenant(name=name, activity_status=tenants_pb2.TENANT_ACTIVITY_STATUS_ACTIVE)
                for name in self.fake.tenants[cls_name]
                if names is None or name in names
            ]
            return tenants_pb2.TenantsGetReply(took=time.perf_counter() - started, tenants=tenants)

        return self._call("TenantsGet", request.collection, context, work)

    def BatchReferences(self, request: Any, context: grpc.ServicerContext) -> Any:
        _abort(context, grpc.StatusCode.UNIMPLEMENTED, "the fake Weaviate does not model references")

    def BatchStream(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        _abort(context, grpc.StatusCode.UNIMPLEMENTED, "the fake Weaviate does not model batch streams")


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


def _health_handler() -> grpc.GenericRpcHandler:
    def check(
        request: health_weaviate_pb2.WeaviateHealthCheckRequest, context: grpc.ServicerContext
    ) -> health_weaviate_pb2.WeaviateHealthCheckResponse:
        return health_weaviate_pb2.WeaviateHealthCheckResponse(
            status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
        )

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
                response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
            )
        },
    )


# -- schema -------------------------------------------------------------------------------------


def _upper_first(name: str) -> str:
    return name[:1].upper() + name[1:]


def _complete_class(body: dict[str, Any]) -> dict[str, Any]:
    """The class as the server stores and returns it: validated, defaults filled in."""
    cls = copy.deepcopy(body)
    cls["class"] = _upper_first(str(cls.get("class", "")))
    if not _CLASS_NAME.fullmatch(cls["class"]):
        raise _Fail(f"'{cls['class']}' is not a valid class name")
    properties = []
    seen: set[str] = set()
    for prop in cls.get("properties") or []:
        name = str(prop.get("name", ""))
        if not _PROP_NAME.fullmatch(name) or name.lower() in ("id", "_id", "_additional"):
            raise _Fail(f"'{name}' is not a valid property name")
        if name.lower() in seen:
            raise _Fail(f"class '{cls['class']}' has a property named '{name}' more than once")
        seen.add(name.lower())
        data_type = (prop.get("dataType") or [""])[0]
        if data_type.removesuffix("[]") not in _DATA_TYPES:
            raise _Fail(f"property '{name}': data type {data_type!r} is not modelled by the fake Weaviate")
        is_text = data_type.startswith("text")
        completed = {
            "name": name,
            "dataType": [data_type],
            "description": prop.get("description", ""),
            "indexFilterable": prop.get("indexFilterable", True),
            "indexSearchable": prop.get("indexSearchable", is_text),
            "indexRangeFilters": prop.get("indexRangeFilters", False),
        }
        if is_text:
            completed["tokenization"] = prop.get("tokenization") or "word"
        properties.append(completed)
    cls["properties"] = properties
    mt = {"enabled": False, "autoTenantCreation": False, "autoTenantActivation": False}
    mt.update(cls.get("multiTenancyConfig") or {})
    cls["multiTenancyConfig"] = mt
    if mt["autoTenantCreation"]:
        raise _Fail("the fake Weaviate does not model automatic tenant creation")
    inverted = copy.deepcopy(_INVERTED_DEFAULTS)
    inverted.update(cls.get("invertedIndexConfig") or {})
    cls["invertedIndexConfig"] = inverted
    cls["replicationConfig"] = {
        "factor": 1,
        "asyncEnabled": False,
        "deletionStrategy": "NoAutomatedResolution",
    }
    cls["replicationConfig"].update(body.get("replicationConfig") or {})
    zero = {
        "virtualPerPhysical": 0,
        "desiredCount": 0,
        "actualCount": 0,
        "desiredVirtualCount": 0,
        "actualVirtualCount": 0,
        "key": "",
        "strategy": "",
        "function": "",
    }
    hashed = {
        "virtualPerPhysical": 128,
        "desiredCount": 1,
        "actualCount": 1,
        "desiredVirtualCount": 128,
        "actualVirtualCount": 128,
        "key": "_id",
        "strategy": "hash",
        "function": "murmur3",
    }
    cls["shardingConfig"] = zero if mt["enabled"] else hashed
    if cls.get("vectorConfig"):
        for vector in cls["vectorConfig"].values():
            _complete_vector_index(vector)
    else:
        cls.setdefault("vectorizer", "none")
        _complete_vector_index(cls)
    cls.setdefault("description", "")
    return cls


def _complete_vector_index(holder: dict[str, Any]) -> None:
    index_type = holder.setdefault("vectorIndexType", "hnsw")
    if index_type not in ("hnsw", "flat"):
        raise _Fail(f"vector index type {index_type!r} is not modelled by the fake Weaviate")
    config = copy.deepcopy(_HNSW_DEFAULTS)
    config.update(holder.get("vectorIndexConfig") or {})
    if config["distance"] not in ("cosine", "dot", "l2-squared"):
        raise _Fail(f"distance {config['distance']!r} is not modelled by the fake Weaviate")
    holder["vectorIndexConfig"] = config


def _prop_types(cls: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in cls["properties"]}


def _metric(cls: dict[str, Any], target: str) -> str:
    holder = cls["vectorConfig"][target] if target else cls
    return str(holder["vectorIndexConfig"]["distance"])


# -- objects in --------------------------------------------------------------------------------


def _batch_properties(obj: batch_pb2.BatchObject) -> dict[str, Any]:
    props = obj.properties
    if len(props.single_target_ref_props) or len(props.multi_target_ref_props):
        raise _Fail("the fake Weaviate does not model references")
    if len(props.object_properties) or len(props.object_array_properties):
        raise _Fail("the fake Weaviate does not model nested object properties")
    values: dict[str, Any] = json_format.MessageToDict(props.non_ref_properties)
    for text_array in props.text_array_properties:
        values[text_array.prop_name] = list(text_array.values)
    for int_array in props.int_array_properties:
        values[int_array.prop_name] = list(int_array.values)
    for bool_array in props.boolean_array_properties:
        values[bool_array.prop_name] = list(bool_array.values)
    for number_array in props.number_array_properties:
        raw = number_array.values_bytes
        values[number_array.prop_name] = (
            list(struct.unpack(f"<{len(raw) // 8}d", raw)) if raw else list(number_array.values)
        )
    for name in props.empty_list_props:
        values[name] = []
    return values


def _coerce_properties(cls: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    types = _prop_types(cls)
    coerced: dict[str, Any] = {}
    for name, value in values.items():
        if name not in types:
            raise _Fail(
                f"no such prop with name '{name}' found in class '{cls['class']}' in the schema. "
                "Check your schema files for which properties in this class are available"
            )
        if value is None:
            continue
        data_type = types[name]["dataType"][0]
        if data_type.endswith("[]"):
            if not isinstance(value, list):
                raise _Fail(f"invalid {data_type} property '{name}' on class '{cls['class']}': not a list")
            coerced[name] = [_coerce(cls, name, data_type[:-2], v) for v in value]
        else:
            coerced[name] = _coerce(cls, name, data_type, value)
    return coerced


def _coerce(cls: dict[str, Any], name: str, data_type: str, value: Any) -> Any:
    def bad(requires: str) -> _Fail:
        return _Fail(
            f"invalid {data_type} property '{name}' on class '{cls['class']}': "
            f"requires {requires}, got {type(value).__name__}"
        )

    if data_type == "text":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if data_type == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
            raise bad("an integer")
        return int(value)
    if data_type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a float")
        return float(value)
    if data_type == "boolean":
        if not isinstance(value, bool):
            raise bad("a boolean")
        return value
    if data_type == "date":
        if not isinstance(value, str):
            raise bad("an RFC3339 date string")
        try:
            return _parse_date(value)
        except ValueError as exc:
            raise bad("an RFC3339 date string") from exc
    if data_type == "uuid":
        try:
            return str(uuid.UUID(str(value)))
        except ValueError as exc:
            raise bad("a UUID") from exc
    raise _Fail(f"data type {data_type} is not modelled by the fake Weaviate")


def _batch_vectors(cls: dict[str, Any], obj: batch_pb2.BatchObject) -> dict[str, np.ndarray]:
    named = cls.get("vectorConfig") or {}
    legacy = _floats(obj.vector_bytes) if obj.vector_bytes else np.asarray(obj.vector, dtype=np.float32)
    vectors: dict[str, np.ndarray] = {}
    if legacy.size:
        if named:
            raise _Fail(f"collection {cls['class']} has named vectors {sorted(named)}; supply the vector by name")
        vectors[""] = legacy
    for vector in obj.vectors:
        if vector.type == base_pb2.Vectors.VECTOR_TYPE_MULTI_FP32:
            raise _Fail("the fake Weaviate does not model multi-vectors")
        if vector.name not in named:
            raise _Fail(f"collection {cls['class']} does not have named vector {vector.name!r} configured")
        vectors[vector.name] = _floats(vector.vector_bytes)
    return vectors


def _floats(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def _near_vector(cls: dict[str, Any], nv: base_search_pb2.NearVector) -> tuple[str, np.ndarray]:
    """(target vector name, query vector) of a near_vector request."""
    named = cls.get("vectorConfig") or {}
    targets = list(nv.targets.target_vectors) if nv.HasField("targets") else list(nv.target_vectors)
    if len(targets) > 1:
        raise _Fail("the fake Weaviate does not model multi-target vector search", code=_UNIMPLEMENTED)
    if named:
        if not targets and len(named) > 1:
            raise _Fail(f"multiple vectors in collection {cls['class']}: a target vector is required")
        target = targets[0] if targets else next(iter(named))
        if target not in named:
            raise _Fail(f"collection {cls['class']} does not have named vector {target!r} configured")
    else:
        if targets:
            raise _Fail(f"collection {cls['class']} has no named vectors, but target vectors were given")
        target = ""
    if len(nv.vectors):
        query = _floats(nv.vectors[0].vector_bytes)
    elif nv.vector_bytes:
        query = _floats(nv.vector_bytes)
    elif len(nv.vector_for_targets):
        entry = nv.vector_for_targets[0]
        query = _floats(entry.vectors[0].vector_bytes if len(entry.vectors) else entry.vector_bytes)
    else:
        query = np.asarray(nv.vector, dtype=np.float32)
    if not query.size:
        raise _Fail("near_vector: no vector given")
    return target, query


def _distance(metric: str, vector: np.ndarray, query: np.ndarray) -> float:
    a, b = vector.astype(np.float64), query.astype(np.float64)
    if metric == "dot":
        return float(-np.dot(a, b))
    if metric == "l2-squared":
        return float(np.sum((a - b) ** 2))
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(1.0 - np.dot(a, b) / norms) if norms else 1.0


# -- objects out -------------------------------------------------------------------------------


def _properties_result(
    cls: dict[str, Any], obj: _Object, req: search_get_pb2.SearchRequest
) -> properties_pb2.Properties:
    if req.HasField("properties") and not req.properties.return_all_nonref_properties:
        if len(req.properties.object_properties) or len(req.properties.ref_properties):
            raise _Fail("the fake Weaviate does not model nested or reference properties")
        names = list(req.properties.non_ref_properties)
    else:
        names = [p["name"] for p in cls["properties"]]
    types = _prop_types(cls)
    fields = {}
    for name in names:
        if name not in types:
            raise _Fail(f"no such prop with name '{name}' found in class '{cls['class']}' in the schema")
        if name in obj.properties:
            fields[name] = _value(types[name]["dataType"][0], obj.properties[name])
    return properties_pb2.Properties(fields=fields)


def _value(data_type: str, value: Any) -> properties_pb2.Value:
    if data_type.endswith("[]"):
        base = data_type[:-2]
        if base == "text":
            listed = properties_pb2.ListValue(text_values=properties_pb2.TextValues(values=value))
        elif base == "int":
            packed = struct.pack(f"<{len(value)}q", *value)
            listed = properties_pb2.ListValue(int_values=properties_pb2.IntValues(values=packed))
        elif base == "number":
            packed = struct.pack(f"<{len(value)}d", *value)
            listed = properties_pb2.ListValue(number_values=properties_pb2.NumberValues(values=packed))
        elif base == "boolean":
            listed = properties_pb2.ListValue(bool_values=properties_pb2.BoolValues(values=value))
        elif base == "date":
            dates = [_format_date(v) for v in value]
            listed = properties_pb2.ListValue(date_values=properties_pb2.DateValues(values=dates))
        else:
            listed = properties_pb2.ListValue(uuid_values=properties_pb2.UuidValues(values=value))
        return properties_pb2.Value(list_value=listed)
    if data_type == "text":
        return properties_pb2.Value(text_value=value)
    if data_type == "int":
        return properties_pb2.Value(int_value=value)
    if data_type == "number":
        return properties_pb2.Value(number_value=value)
    if data_type == "boolean":
        return properties_pb2.Value(bool_value=value)
    if data_type == "date":
        return properties_pb2.Value(date_value=_format_date(value))
    return properties_pb2.Value(uuid_value=value)


def _metadata_result(
    cls: dict[str, Any], obj: _Object, req: search_get_pb2.SearchRequest, distance: float | None
) -> search_get_pb2.MetadataResult:
    meta = req.metadata
    result = search_get_pb2.MetadataResult(id=obj.uuid, id_as_bytes=uuid.UUID(obj.uuid).bytes)
    if distance is not None and meta.distance:
        result.distance, result.distance_present = distance, True
    if distance is not None and meta.certainty:
        result.certainty, result.certainty_present = 1 - distance / 2, True
    if meta.creation_time_unix:
        result.creation_time_unix, result.creation_time_unix_present = obj.created_ms, True
    if meta.last_update_time_unix:
        result.last_update_time_unix, result.last_update_time_unix_present = obj.updated_ms, True
    if meta.vector or len(meta.vectors):
        wanted = list(meta.vectors) or list(obj.vectors)
        for name in wanted:
            if name not in obj.vectors:
                continue
            raw = obj.vectors[name].astype("<f4").tobytes()
            if name == "":
                result.vector_bytes = raw
            else:
                result.vectors.append(
                    base_pb2.Vectors(name=name, vector_bytes=raw, type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32)
                )
    return result


# -- filters -----------------------------------------------------------------------------------

_Op = base_pb2.Filters


def _matches(cls: dict[str, Any], obj: _Object, f: base_pb2.Filters) -> bool:
    op = f.operator
    if op == _Op.OPERATOR_AND:
        return all(_matches(cls, obj, sub) for sub in f.filters)
    if op == _Op.OPERATOR_OR:
        return any(_matches(cls, obj, sub) for sub in f.filters)
    if op == _Op.OPERATOR_NOT:
        return not _matches(cls, obj, f.filters[0])
    if f.HasField("target"):
        if f.target.WhichOneof("target") != "property":
            raise _Fail("the fake Weaviate does not model reference filters", code=_UNIMPLEMENTED)
        prop = f.target.property
    else:
        prop = f.on[-1] if len(f.on) else ""
    wanted = _filter_value(f)
    if prop == "_id":
        actual: Any = obj.uuid
        data_type, tokenization = "uuid", "field"
    else:
        types = _prop_types(cls)
        if prop not in types:
            raise _Fail(f"invalid 'where' filter: no such prop with name '{prop}' found in class '{cls['class']}'")
        actual = obj.properties.get(prop)
        data_type = types[prop]["dataType"][0]
        tokenization = types[prop].get("tokenization", "field")
    if op == _Op.OPERATOR_IS_NULL:
        return (actual is None or actual == []) == bool(wanted)
    if actual is None:
        return op in (_Op.OPERATOR_NOT_EQUAL, _Op.OPERATOR_CONTAINS_NONE)
    base = data_type.removesuffix("[]")
    actual_values = actual if isinstance(actual, list) else [actual]
    wanted_values = [_filter_operand(base, v) for v in (wanted if isinstance(wanted, list) else [wanted])]

    def equal(a: Any, b: Any) -> bool:
        if base == "text":
            return _text_equal(a, b, tokenization)
        return bool(a == b)

    if op in (_Op.OPERATOR_EQUAL, _Op.OPERATOR_NOT_EQUAL):
        hit = any(equal(a, wanted_values[0]) for a in actual_values)
        return hit if op == _Op.OPERATOR_EQUAL else not hit
    if op == _Op.OPERATOR_CONTAINS_ANY:
        return any(equal(a, w) for a in actual_values for w in wanted_values)
    if op == _Op.OPERATOR_CONTAINS_ALL:
        return all(any(equal(a, w) for a in actual_values) for w in wanted_values)
    if op == _Op.OPERATOR_CONTAINS_NONE:
        return not any(equal(a, w) for a in actual_values for w in wanted_values)
    if op == _Op.OPERATOR_LIKE:
        pattern = str(wanted_values[0])
        return any(fnmatch.fnmatchcase(str(a), pattern) for a in actual_values)
    comparisons: dict[int, Callable[[Any, Any], bool]] = {
        _Op.OPERATOR_GREATER_THAN: lambda a, b: a > b,
        _Op.OPERATOR_GREATER_THAN_EQUAL: lambda a, b: a >= b,
        _Op.OPERATOR_LESS_THAN: lambda a, b: a < b,
        _Op.OPERATOR_LESS_THAN_EQUAL: lambda a, b: a <= b,
    }
    if op in comparisons:
        return any(comparisons[op](a, wanted_values[0]) for a in actual_values)
    raise _Fail(f"the fake Weaviate does not model filter operator {op}", code=_UNIMPLEMENTED)


def _filter_value(f: base_pb2.Filters) -> Any:
    kind = f.WhichOneof("test_value")
    if kind is None:
        return None
    value = getattr(f, kind)
    if kind.endswith("_array"):
        return list(value.values)
    return value


def _filter_operand(data_type: str, value: Any) -> Any:
    if data_type == "date" and isinstance(value, str):
        return _parse_date(value)
    if data_type == "uuid":
        return str(uuid.UUID(str(value)))
    return value


def _text_equal(actual: str, wanted: str, tokenization: str) -> bool:
    """Equality on a text property, as Weaviate applies it: on the tokens of the value."""
    if tokenization == "field":
        return actual.strip() == str(wanted).strip()
    if tokenization == "word":
        split: Callable[[str], list[str]] = lambda s: re.findall(r"[0-9A-Za-z]+", s.lower())  # noqa: E731
    elif tokenization == "lowercase":
        split = lambda s: s.lower().split()  # noqa: E731
    else:
        split = str.split
    have = set(split(actual))
    return all(token in have for token in split(str(wanted)))


# -- dates -------------------------------------------------------------------------------------


def _parse_date(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"date {value!r} has no time zone")
    return parsed.astimezone(UTC)


def _format_date(value: datetime) -> str:
    """RFC3339 with trailing zeros of the fraction trimmed, as Go's time.RFC3339Nano writes it."""
    value = value.astimezone(UTC)
    fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
    return value.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
