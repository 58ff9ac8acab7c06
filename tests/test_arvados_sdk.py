"""The real Arvados Python SDK (``arvados-python-client``) driving the API over TLS.

The SDK insists on https, so the app is served on loopback by a threaded
``wsgiref`` server (Django's ``ThreadedWSGIServer``) whose sockets are wrapped in TLS
with a throwaway self-signed certificate. Tests use transactional database access so
that the server thread's writes are visible, as pytest-django's ``live_server`` does:
an in-memory SQLite database is shared with the server thread through
``connections_override``; on PostgreSQL the server opens its own connections.

The SDK is kept off the network and away from the user's configuration: it never
reads ``~/.config/arvados/settings.conf`` or ``ARVADOS_*`` variables, proxies are
unset, and any socket connection to a non-loopback address fails the test.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arvados
import arvados.config
import arvados.errors
import arvados.util
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections
from googleapiclient.errors import MediaUploadSizeError

from job_tasks.models import JobTask
from tests.conftest import Caller

pytestmark = pytest.mark.django_db(transaction=True)

LOOPBACK = "127.0.0.1"
README = Path(__file__).resolve().parent.parent / "README.md"
#: The host the README's snippet names; the test points it at the live server instead.
README_HOST = '"jobtasks.example:8443"'
TASK_UUID_RE = re.compile(r"^zzzzz-ot0gb-[0-9a-z]{15}$")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY")


# -- the TLS server ------------------------------------------------------------------


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A one-day EC certificate for 127.0.0.1, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        # Its own CA (so that SSL_CERT_FILE can name it), valid under VERIFY_X509_STRICT.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class QuietRequestHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class TLSWSGIServer(ThreadedWSGIServer):
    """Django's threaded WSGI server (``socketserver.ThreadingMixIn`` + ``wsgiref``) over TLS.

    Each accepted socket is wrapped at once but shakes hands in its own request
    thread, so a slow client never blocks the accept loop. ``server_close()`` ends
    the keep-alive connections the SDK leaves open and waits for their threads, so
    that none outlives the database connection it borrowed.
    """

    daemon_threads = False  # joined by server_close() (socketserver's block_on_close)

    def __init__(self, *args: Any, ssl_context: ssl.SSLContext, **kwargs: Any) -> None:
        self.ssl_context = ssl_context
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        with self._open_lock:
            still_open = list(self._open)
        for request in still_open:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(request, socket.SHUT_RDWR)  # wakes a blocked read
        super().server_close()

    def setup_environ(self) -> None:
        super().setup_environ()
        self.base_environ["HTTPS"] = "on"  # wsgiref then sets wsgi.url_scheme = "https"

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # wsgiref writes headers and body apart: without this, Nagle's algorithm and
        # delayed ACKs add 40 ms to every keep-alive response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = self.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        # OSError: a client that gave up, or a connection ended by server_close().
        with contextlib.suppress(OSError):
            request.do_handshake()
            super().finish_request(request, client_address)


@dataclass
class TLSLiveServer:
    """The running server: its port, and the CA file that verifies its certificate."""

    port: int
    cert_path: Path

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"


@pytest.fixture(scope="module")
def tls_server(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TLSLiveServer]:
    """The app on https://127.0.0.1:<free port>/ for the tests of this module."""
    cert_path, key_path = write_self_signed_certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    # An in-memory SQLite test database exists only in its connection: share that
    # connection with the server's threads (what pytest-django's live_server does).
    shared = {
        conn.alias: conn
        for conn in connections.all()
        if conn.vendor == "sqlite" and conn.is_in_memory_db()
    }
    for conn in shared.values():
        conn.inc_thread_sharing()
    httpd = TLSWSGIServer(
        (LOOPBACK, 0),
        QuietRequestHandler,
        allow_reuse_address=False,
        connections_override=shared,
        ssl_context=context,
    )
    httpd.set_app(WSGIHandler())
    thread = threading.Thread(target=httpd.serve_forever, name="tls-live-server", daemon=True)
    thread.start()
    try:
        yield TLSLiveServer(port=httpd.server_address[1], cert_path=cert_path)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        for conn in shared.values():
            conn.dec_thread_sharing()


# -- keeping the SDK local -----------------------------------------------------------


@pytest.fixture(autouse=True)
def _sdk_stays_local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user configuration, no proxies, no connection beyond loopback."""
    monkeypatch.setattr(arvados.config, "_settings", {})  # never read settings.conf or env
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    real_connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"the SDK tried to reach {address!r}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


def connect(server: TLSLiveServer, token: str) -> Any:
    """An SDK client for ``token``; retries off so that a failure shows at once."""
    return arvados.api(
        "v1",
        host=server.host,
        token=token,
        insecure=True,
        cache=False,
        num_retries=0,
        timeout=20,
    )


@pytest.fixture
def api(tls_server: TLSLiveServer, alice: Caller) -> Any:
    return connect(tls_server, alice.token)


def api_error(call: Callable[[], Any]) -> arvados.errors.ApiError:
    with pytest.raises(arvados.errors.ApiError) as caught:
        call()
    return caught.value


# -- the tests -----------------------------------------------------------------------


def readme_sdk_snippet() -> str:
    """The ```python block of README.md's "Using the Arvados Python SDK" section."""
    text = README.read_text(encoding="utf-8")
    _, found, rest = text.partition("\n## Using the Arvados Python SDK\n")
    assert found, "README.md has no 'Using the Arvados Python SDK' section"
    section = rest.split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, f"expected one python block in the section, found {len(blocks)}"
    return blocks[0]


def test_readme_example(tls_server: TLSLiveServer, alice: Caller) -> None:
    """The README's snippet, read from README.md, run against the live server."""
    snippet = readme_sdk_snippet()
    assert snippet.count(README_HOST) == 1, f"the snippet no longer names {README_HOST}"
    code = compile(snippet.replace(README_HOST, repr(tls_server.host)), "README.md", "exec")
    namespace: dict[str, Any] = {"token": alice.token}
    exec(code, namespace)
    page, task, every_task = namespace["page"], namespace["task"], namespace["every_task"]
    assert page["items_available"] == 1
    assert page["items"][0]["uuid"] == task["uuid"]
    assert page["items"][0]["progress"] == 0.5
    assert [item["uuid"] for item in every_task] == [task["uuid"]]


def test_the_sdk_builds_itself_from_the_discovery_document(
    api: Any, tls_server: TLSLiveServer
) -> None:
    description = api._rootDesc
    assert description["rootUrl"] == f"https://{tls_server.host}/"
    assert description["baseUrl"] == f"https://{tls_server.host}/arvados/v1/"
    assert description["uuidPrefix"] == "zzzzz"
    resource = api.job_tasks()
    for name in ("get", "list", "index", "create", "update", "delete", "show", "destroy"):
        assert callable(getattr(resource, name)), name
    assert api.config() == {}  # no ``configs`` resource: the SDK asks nothing more


def test_certificate_verification_works_with_the_ca_file(
    tls_server: TLSLiveServer, alice: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.cert_path))  # read by the SDK
    verified = arvados.api(
        "v1", host=tls_server.host, token=alice.token, insecure=False, cache=False
    )
    assert verified.job_tasks().list(limit=0).execute()["items"] == []


def test_create_with_a_wrapped_body(api: Any, alice: Caller) -> None:
    body = {"job_task": {"sequence": 1, "parameters": {"input": "a.txt"}}}
    task = api.job_tasks().create(body=body).execute()
    assert task["kind"] == "arvados#jobTask"
    assert TASK_UUID_RE.match(task["uuid"])
    assert task["owner_uuid"] == alice.uuid
    assert (task["sequence"], task["parameters"]) == (1, {"input": "a.txt"})
    assert task["success"] is None
    stored = JobTask.objects.get(uuid=task["uuid"])
    assert (stored.sequence, stored.parameters) == (1, {"input": "a.txt"})


def test_create_with_a_bare_body(api: Any) -> None:
    task = api.job_tasks().create(body={"sequence": 2, "output": "x"}).execute()
    assert (task["sequence"], task["output"]) == (2, "x")
    assert JobTask.objects.filter(uuid=task["uuid"], sequence=2).exists()


def test_get_returns_what_create_returned(api: Any) -> None:
    created = api.job_tasks().create(body={"job_task": {"sequence": 3}}).execute()
    assert api.job_tasks().get(uuid=created["uuid"]).execute() == created
    assert api.job_tasks().show(uuid=created["uuid"]).execute() == created


def test_update_with_wrapped_and_bare_bodies(api: Any) -> None:
    uuid = api.job_tasks().create(body={"job_task": {"sequence": 1}}).execute()["uuid"]
    tasks = api.job_tasks()
    updated = tasks.update(uuid=uuid, body={"job_task": {"progress": 0.25}}).execute()
    assert (updated["uuid"], updated["progress"]) == (uuid, 0.25)
    updated = tasks.update(uuid=uuid, body={"success": True, "progress": 1}).execute()
    assert (updated["success"], updated["progress"]) == (True, 1)
    stored = JobTask.objects.get(uuid=uuid)
    assert (stored.success, stored.progress) == (True, 1.0)


def test_delete_answers_the_object_then_it_is_gone(api: Any) -> None:
    created = api.job_tasks().create(body={"job_task": {"sequence": 1}}).execute()
    deleted = api.job_tasks().delete(uuid=created["uuid"]).execute()
    assert deleted["uuid"] == created["uuid"]
    assert not JobTask.objects.filter(uuid=created["uuid"]).exists()
    error = api_error(lambda: api.job_tasks().get(uuid=created["uuid"]).execute())
    assert error.resp.status == 404


def test_list_limit_offset_and_count(api: Any) -> None:
    uuids = {
        api.job_tasks().create(body={"job_task": {"sequence": n}}).execute()["uuid"]
        for n in range(3)
    }
    page = api.job_tasks().list().execute()
    assert page["kind"] == "arvados#jobTaskList"
    assert (page["offset"], page["limit"], page["items_available"]) == (0, 100, 3)
    assert {item["uuid"] for item in page["items"]} == uuids
    page = api.job_tasks().list(limit=2, offset=1).execute()
    assert (page["offset"], page["limit"], len(page["items"])) == (1, 2, 2)
    assert page["items_available"] == 3
    page = api.job_tasks().index(count="none", limit=1).execute()
    assert "items_available" not in page
    assert len(page["items"]) == 1


def test_list_filters(api: Any) -> None:
    for sequence in (1, 1, 2):
        api.job_tasks().create(body={"job_task": {"sequence": sequence}}).execute()
    page = api.job_tasks().list(filters=[["sequence", "=", 1]]).execute()
    assert [item["sequence"] for item in page["items"]] == [1, 1]
    assert page["items_available"] == 2
    page = api.job_tasks().list(filters=[["sequence", "in", [2, 3]]]).execute()
    assert [item["sequence"] for item in page["items"]] == [2]


def test_list_order(api: Any) -> None:
    for sequence in (2, 3, 1):
        api.job_tasks().create(body={"job_task": {"sequence": sequence}}).execute()
    page = api.job_tasks().list(order=["sequence desc"]).execute()
    assert [item["sequence"] for item in page["items"]] == [3, 2, 1]
    page = api.job_tasks().list(order="sequence asc").execute()  # a plain string works too
    assert [item["sequence"] for item in page["items"]] == [1, 2, 3]


def test_list_select(api: Any) -> None:
    uuid = api.job_tasks().create(body={"job_task": {"sequence": 4}}).execute()["uuid"]
    page = api.job_tasks().list(select=["uuid", "sequence"]).execute()
    assert page["items"] == [{"kind": "arvados#jobTask", "uuid": uuid, "sequence": 4}]


def test_list_where_and_distinct(api: Any) -> None:
    for sequence in (1, 1, 2):
        api.job_tasks().create(body={"job_task": {"sequence": sequence}}).execute()
    page = api.job_tasks().list(where={"sequence": 1}).execute()  # an object parameter
    assert [item["sequence"] for item in page["items"]] == [1, 1]
    page = api.job_tasks().list(select=["sequence"], distinct=True, order=["sequence"]).execute()
    assert page["items"] == [
        {"kind": "arvados#jobTask", "sequence": 1},
        {"kind": "arvados#jobTask", "sequence": 2},
    ]


def test_select_on_get_update_and_delete(api: Any) -> None:
    tasks = api.job_tasks()
    uuid = tasks.create(body={"job_task": {"sequence": 5}}, select=["uuid"]).execute()["uuid"]
    got = tasks.get(uuid=uuid, select=["uuid", "sequence"]).execute()
    assert got == {"kind": "arvados#jobTask", "uuid": uuid, "sequence": 5}
    body = {"job_task": {"progress": 0.5}}
    updated = tasks.update(uuid=uuid, body=body, select=["progress"]).execute()
    assert updated == {"kind": "arvados#jobTask", "progress": 0.5}
    assert tasks.delete(uuid=uuid, select=["uuid"]).execute() == {
        "kind": "arvados#jobTask",
        "uuid": uuid,
    }


def test_create_needs_a_body_argument_even_an_empty_one(api: Any) -> None:
    # The document marks the request body required, as Arvados did: the SDK checks it.
    with pytest.raises(TypeError, match="body"):
        api.job_tasks().create()
    task = api.job_tasks().create(body={}).execute()
    assert (task["sequence"], task["parameters"]) == (None, {})


def test_max_request_size_is_published_and_enforced(
    tls_server: TLSLiveServer, alice: Caller, api: Any, settings: Any
) -> None:
    settings.JOB_TASKS = {"MAX_BODY_BYTES": 300}
    body = {"job_task": {"output": "x" * 1000}}
    fresh = connect(tls_server, alice.token)  # reads maxRequestSize = 300
    with pytest.raises(MediaUploadSizeError):  # refused before sending
        fresh.job_tasks().create(body=body).execute()
    error = api_error(lambda: api.job_tasks().create(body=body).execute())  # built before
    assert error.resp.status == 413


def test_keyset_list_all_pages_through_every_task(
    api: Any, alice: Caller, make_task: Callable[..., JobTask], settings: Any
) -> None:
    expected = {make_task(alice, sequence=n).uuid for n in range(30)}
    settings.JOB_TASKS = {"MAX_LIMIT": 7}  # the server clamps the SDK's limit=1000 to 7
    calls: list[dict[str, Any]] = []

    def counted_list(**kwargs: Any) -> Any:
        calls.append(dict(kwargs))  # the SDK reuses (and changes) one dict
        if len(calls) > 12:
            raise AssertionError(f"keyset_list_all does not stop; last call: {kwargs}")
        return api.job_tasks().list(**kwargs)

    seen = [task["uuid"] for task in arvados.util.keyset_list_all(counted_list)]
    assert sorted(seen) == sorted(expected)  # each task exactly once
    assert len(calls) >= 5  # 30 tasks in pages of at most 7
    assert calls[0]["order"] == ["created_at asc", "uuid asc"]
    assert [condition[:2] for condition in calls[1]["filters"]] == [
        ["created_at", ">="],
        ["uuid", "!="],
    ]


def test_unknown_uuid_is_a_404_api_error(api: Any) -> None:
    error = api_error(lambda: api.job_tasks().get(uuid="zzzzz-ot0gb-000000000000000").execute())
    assert error.resp.status == 404
    assert error.reason == "Path not found"


def test_bad_token_is_a_401_api_error(tls_server: TLSLiveServer, db: None) -> None:
    api = connect(tls_server, "v2/zzzzz-gj3su-000000000000000/not-a-secret")
    error = api_error(lambda: api.job_tasks().list().execute())
    assert error.resp.status == 401
    assert error.reason == "Not logged in"


def test_refusals_are_403_api_errors(api: Any, alice: Caller, bob: Caller) -> None:
    error = api_error(
        lambda: api.job_tasks().create(body={"job_task": {"owner_uuid": bob.uuid}}).execute()
    )
    assert error.resp.status == 403
    alice.user.is_active = False
    alice.user.save(update_fields=["is_active"])
    assert api_error(lambda: api.job_tasks().list().execute()).resp.status == 403


def test_invalid_input_is_a_422_api_error(api: Any) -> None:
    uuid = api.job_tasks().create(body={"job_task": {"sequence": 1}}).execute()["uuid"]
    error = api_error(
        lambda: api.job_tasks().update(uuid=uuid, body={"job_task": {"progress": 2}}).execute()
    )
    assert error.resp.status == 422
    assert "progress" in error.reason
    error = api_error(lambda: api.job_tasks().list(filters=[["nope", "=", 1]]).execute())
    assert error.resp.status == 422
    assert "nope" in error.reason


def test_users_current_and_groups_list(api: Any, alice: Caller) -> None:
    from django.contrib.auth.models import Group

    alice.user.groups.add(Group.objects.create(name="lab"))

    me = api.users().current().execute()
    groups = api.groups().list(filters=[["name", "like", "l%"]]).execute()

    assert me["uuid"] == alice.uuid
    assert me["is_job_manager"] is False
    assert [group["name"] for group in groups["items"]] == ["lab"]
    task = api.job_tasks().create(body={"owner_uuid": groups["items"][0]["uuid"]}).execute()
    assert task["owner_uuid"] == groups["items"][0]["uuid"]
