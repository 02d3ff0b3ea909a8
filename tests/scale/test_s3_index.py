"""``s3://`` inputs: real media as objects on an S3-compatible server on loopback (moto).

The server is moto's S3 (the ``dev`` extra) in a thread of this process, behind a log of the
requests it answers, so a test can tell which objects were read. A Ray Data job (a local cluster
started by the call) lists, hashes and decodes the objects into a SQLite catalog; a search by the
local file finds its ``s3://`` object first; a second run reads no object and starts no cluster;
the in-process engine then reads only a new object and prunes a deleted one. Errors name the URI
(no bucket, no object, an unreachable endpoint, access denied).
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest_media import make_library, many_images
from testdata import require_module
from weight_server import refused_url

pytestmark = pytest.mark.slow
BUCKET = "media"


class RequestLog:
    """WSGI middleware: ``(method, path, query)`` of every request the server answers."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app, self.seen = app, []  # type: ignore[var-annotated]
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self.lock:
            self.seen.append(
                (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
            )
        return self.app(environ, start_response)

    def objects_read(self) -> list[str]:
        """Keys of the objects whose bytes were fetched (GET of a key, not a listing)."""
        with self.lock:
            return sorted(
                p.removeprefix(f"/{BUCKET}/")
                for m, p, q in self.seen
                if m == "GET" and p.startswith(f"/{BUCKET}/") and not q and not p.endswith("/")
            )

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, RequestLog]]:
    """``(endpoint URL, request log)`` of a fresh S3-compatible server on 127.0.0.1."""
    require_module("moto", "moto[server] (the dev extra) is not installed")
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    env = pytest.MonkeyPatch()
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.delenv(key, raising=False)
    env.setenv("AWS_ACCESS_KEY_ID", "embedstore-test")
    env.setenv("AWS_SECRET_ACCESS_KEY", "embedstore-test-secret")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    env.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a metadata service
    log = RequestLog(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, log, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        thread.join(timeout=10)
        env.undo()


def _client(endpoint: str, service: str = "s3") -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def _upload(endpoint: str, root: Path, prefix: str) -> list[Path]:
    s3 = _client(endpoint)
    if not s3.list_buckets()["Buckets"]:
        s3.create_bucket(Bucket=BUCKET)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for p in files:
        s3.upload_file(str(p), BUCKET, f"{prefix}/{p.relative_to(root).as_posix()}")
    return files


def _engine(tmp_path: Path, endpoint: str) -> Any:
    from embedstore.config import Settings
    from embedstore.engine import Engine

    return Engine(
        Settings(
            data_dir=tmp_path / "data",
            encoder="imagebind_test",
            device="cpu",
            workers=1,
            batch_size=4,
            s3_endpoint_url=endpoint,
        )
    )


def test_ray_job_indexes_objects_rerun_reads_nothing_local_run_prunes(
    s3: tuple[str, RequestLog], tmp_path: Path
) -> None:
    require_module("ray", "ray[data] (the scale extra) is not installed")
    import ray

    endpoint, log = s3
    lib = make_library(tmp_path / "lib", size=64)  # 3 PNGs, 3 WAVs, 3 texts
    files = _upload(endpoint, lib, "lib")
    uri = f"s3://{BUCKET}/lib"
    engine = _engine(tmp_path, endpoint)
    try:
        report = engine.index([uri], "objs", engine="ray")
        assert not report.failed, report.failed
        assert report.added == len(files) == 9
        assert not ray.is_initialized()  # the local cluster the call started is gone
        keys = [f"lib/{p.relative_to(lib).as_posix()}" for p in files]
        assert set(log.objects_read()) == set(keys)  # every object read (hash, then decode)
        for local in (lib / "images" / "dog.png", lib / "sounds" / "bird.wav"):
            hits = engine.search("objs", file=local, k=3)
            assert hits[0].uri == f"{uri}/{local.relative_to(lib).as_posix()}"

        log.clear()
        again = engine.index([uri], "objs", engine="ray")
        assert (again.added, again.updated, again.unchanged) == (0, 0, 9)
        assert log.objects_read() == []  # the listing's sizes and times matched: nothing read
        assert not ray.is_initialized()  # nothing to hash or embed: no cluster started

        s3c = _client(endpoint)
        s3c.delete_object(Bucket=BUCKET, Key="lib/images/car.png")
        new = many_images(tmp_path / "new", 1, size=64) / "img00000.png"
        s3c.upload_file(str(new), BUCKET, "lib/images/new.png")
        log.clear()
        local = engine.index([uri], "objs", engine="local", prune=True)
        assert (local.added, local.removed, local.unchanged) == (1, 1, 8), local
        assert set(log.objects_read()) == {"lib/images/new.png"}
        assert engine.search("objs", file=new, k=1)[0].uri == f"{uri}/images/new.png"
    finally:
        engine.close()


def test_missing_bucket_and_denied_access_name_the_uri(
    s3: tuple[str, RequestLog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from cli.main import cli
    from embedstore.errors import InvalidInput, PathNotAllowed, Unavailable

    endpoint, _ = s3
    _upload(endpoint, make_library(tmp_path / "lib", names=("dog",), size=32), "few")
    engine = _engine(tmp_path, endpoint)
    try:
        with pytest.raises(InvalidInput, match="s3://no-such-bucket/x: no such bucket"):
            engine.index(["s3://no-such-bucket/x"], "objs")
        with pytest.raises(InvalidInput, match=f"s3://{BUCKET}/absent: no object and no prefix"):
            engine.index([f"s3://{BUCKET}/absent"], "objs")

        closed = refused_url().rsplit("/", 1)[0]  # a loopback port that refuses connections
        unreachable = _engine(tmp_path / "closed", closed)
        try:
            with pytest.raises(
                Unavailable, match=f"s3://{BUCKET}/few: cannot reach .* at {closed}"
            ):
                unreachable.index([f"s3://{BUCKET}/few"], "objs")
        finally:
            unreachable.close()

        monkeypatch.setenv("EMBEDSTORE_S3_ENDPOINT_URL", endpoint)
        run = CliRunner().invoke(
            cli, ["index", "s3://no-such-bucket/x", "-c", "objs", "--encoder", "imagebind_test"]
        )
        assert run.exit_code == 4, run.output  # InvalidInput's exit code
        assert "s3://no-such-bucket/x: no such bucket" in run.output

        iam = _client(endpoint, "iam")  # a user with no policy: S3 refuses it everything
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        _auth(endpoint, "0")  # from now on the server checks every request's signature and policy
        try:
            with pytest.raises(PathNotAllowed, match=f"s3://{BUCKET}/few: access denied"):
                engine.index([f"s3://{BUCKET}/few"], "objs")
        finally:
            _auth(endpoint, "inf")
    finally:
        engine.close()


def _auth(endpoint: str, after: str) -> None:
    """Turn moto's request authentication on (after ``after`` requests) or off (``inf``)."""
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=after.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
