"""Tests for the dataset downloader, against a loopback HTTP server only (never the internet)."""

from __future__ import annotations

import functools
import hashlib
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slotfill.data.download import (
    DEFAULT_BASE_URL,
    JOINTBERT_COMMIT,
    SHA256,
    dataset_files,
    ensure_dataset,
)
from slotfill.data.readers import ReadReport, read_jointbert
from slotfill.errors import SlotfillError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
Serve = Callable[[Path], str]
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves a directory without logging every request to stderr."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps loopback requests off any proxy and ignores a user's SLOTFILL_DATA_URL."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("SLOTFILL_DATA_URL", raising=False)


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Starts loopback servers over folders; returns ``serve(folder) -> base URL``."""
    servers: list[ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_constants() -> None:
    assert DEFAULT_BASE_URL == (
        f"https://raw.githubusercontent.com/monologg/JointBERT/{JOINTBERT_COMMIT}/data"
    )
    assert len(SHA256) == 18
    assert sorted(SHA256) == sorted(dataset_files("atis") + dataset_files("snips"))
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in SHA256.values())


@needs_shared
def test_checksums_match_shared_copy() -> None:
    for relative, digest in SHA256.items():
        assert hashlib.sha256((SHARED / relative).read_bytes()).hexdigest() == digest, relative


@needs_shared
def test_download_verifies_and_reads_back(
    tmp_path: Path, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    base = serve(SHARED)
    root = tmp_path / "data" / "atis"
    with caplog.at_level("INFO", logger="slotfill.data.download"):
        assert ensure_dataset("atis", root, base_url=base, timeout=5) == root
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == sorted(
        r.split("/", 1)[1] for r in dataset_files("atis")
    )
    assert [p.name for p in root.parent.iterdir()] == ["atis"]  # no partial folder left
    report = ReadReport()
    data = read_jointbert(root, report=report)
    assert [len(data[s]) for s in ("train", "dev", "test")] == [4478, 500, 893]
    assert report.repair_count == 0
    assert any(f"{base}/atis/train/seq.in" in r.getMessage() for r in caplog.records)


@needs_shared
def test_base_url_from_environment(
    tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOTFILL_DATA_URL", serve(SHARED) + "/")
    root = ensure_dataset("snips", tmp_path / "snips", timeout=5)
    assert (root / "train" / "seq.in").is_file()


@needs_shared
def test_tampered_file_fails_checksum(tmp_path: Path, serve: Serve) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(SHARED / "atis", mirror / "atis")
    tampered = mirror / "atis" / "dev" / "seq.out"
    tampered.chmod(0o644)
    tampered.write_bytes(tampered.read_bytes() + b"O\n")
    root = tmp_path / "data" / "atis"
    with pytest.raises(SlotfillError) as info:
        ensure_dataset("atis", root, base_url=serve(mirror), timeout=5)
    message = str(info.value)
    assert "checksum mismatch for atis/dev/seq.out" in message
    assert SHA256["atis/dev/seq.out"] in message
    assert hashlib.sha256(tampered.read_bytes()).hexdigest() in message
    assert "\n" not in message
    assert not root.exists()
    assert list(root.parent.iterdir()) == []


@needs_shared
def test_missing_file_on_server(tmp_path: Path, serve: Serve) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(SHARED / "atis", mirror / "atis")
    (mirror / "atis" / "test" / "label").unlink()
    base = serve(mirror)
    root = tmp_path / "data" / "atis"
    with pytest.raises(SlotfillError, match=rf"{base}/atis/test/label failed: HTTP 404"):
        ensure_dataset("atis", root, base_url=base, timeout=5)
    assert list(root.parent.iterdir()) == []


def test_closed_port_is_a_clear_error(tmp_path: Path) -> None:
    base = closed_port_url()
    root = tmp_path / "data" / "atis"
    with pytest.raises(SlotfillError) as info:
        ensure_dataset("atis", root, base_url=base, timeout=5)
    message = str(info.value)
    assert message.startswith(f"download of {base}/atis/train/seq.in failed: ")
    assert f"by hand into {root}" in message
    assert "SLOTFILL_DATA" in message and "atis/" in message
    assert "\n" not in message
    assert not root.exists()
    assert list(root.parent.iterdir()) == []


def test_existing_folder_returned_untouched(tmp_path: Path) -> None:
    root = tmp_path / "atis"
    root.mkdir()
    (root / "note").write_text("mine")
    # the URL would fail if it were used: nothing may be fetched for an existing folder
    assert ensure_dataset("atis", root, base_url=closed_port_url(), timeout=1) == root
    assert [p.name for p in root.iterdir()] == ["note"]


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(SlotfillError, match="unknown dataset 'mit'.*atis, snips"):
        ensure_dataset("mit", tmp_path / "mit", base_url=closed_port_url())
    assert not (tmp_path / "mit").exists()
