"""Fetching pretrained weight files: verified before they are moved into place, atomically.

A file is streamed into a hidden temporary file beside its destination (same filesystem, so the final rename
is atomic), hashed on the way, and renamed to its standard name only when its sha256 matches the published
one (:attr:`zoo.store.weights.WeightFile.expected_sha256`). A failed, cut, interrupted or tampered download is
deleted: zoo and torch only ever find complete, verified files under the standard names. Two processes
fetching the same file each write their own temporary file; a finished one that finds the file already in
place keeps that one (write-then-rename with a check; both are verified, so either is right).

Where from: the file's upstream URL, or ``$ZOO_WEIGHTS_MIRROR``, a base URL or a directory holding the files
under the same names. ``ZOO_OFFLINE=1`` (what ``--offline`` sets) or ``HF_HUB_OFFLINE=1`` turn downloads off.
An unreachable host is given up after ``CONNECT_TIMEOUT`` seconds (DNS included) and not asked again by the
same process.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from zoo.errors import ZooError

MIRROR_ENV = "ZOO_WEIGHTS_MIRROR"
OFFLINE_ENVS = ("ZOO_OFFLINE", "HF_HUB_OFFLINE")
CONNECT_TIMEOUT = 5.0  # s for DNS + connect + response headers: an offline machine gives up this fast
READ_TIMEOUT = 60.0  # s of silence in the middle of a body
STALE_PART_SECONDS = 3600  # a temporary file untouched this long belongs to a killed process
_CHUNK = 1 << 20


class DownloadError(ZooError):
    """A download that did not produce a verified file (nothing was left behind). One line."""


@dataclass(frozen=True)
class Downloaded:
    """A file this process fetched and verified: what run notes record."""

    filename: str
    sha256: str
    size: int
    source: str  # "upstream" or "mirror"
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    def note(self) -> str:
        return f"{self.filename}@{self.sha256[:10]} ({self.size / 2**20:.1f} MiB, from {self.source})"


DOWNLOADED: list[Downloaded] = []  # every file fetched by this process, in order
_UNREACHABLE: dict[str, str] = {}  # scheme://host -> why, for hosts this process could not reach


def offline_reason() -> str | None:
    """``"ZOO_OFFLINE=1"`` (or the HF_HUB_OFFLINE setting) when downloads are off, else None."""
    for var in OFFLINE_ENVS:
        value = os.environ.get(var, "").strip()
        if value.lower() in ("1", "true", "yes", "on"):
            return f"{var}={value}"
    return None


def mirror() -> str | None:
    return os.environ.get(MIRROR_ENV, "").strip() or None


def source_url(weight) -> str:
    """Where ``weight`` would be fetched from: ``$ZOO_WEIGHTS_MIRROR/<filename>`` when set, else upstream."""
    base = mirror()
    if base is None:
        return weight.url
    if "://" in base:
        return f"{base.rstrip('/')}/{urllib.parse.quote(weight.filename)}"
    return (Path(base).expanduser().resolve() / weight.filename).as_uri()


def _source_label(weight) -> str:
    # A mirror may be a local directory: messages name the setting, not this machine's path.
    return f"the mirror (${MIRROR_ENV})" if mirror() else weight.url


def fetch(weight, *, progress: bool | None = None) -> Path:
    """Download ``weight`` into the hub cache under its standard name, verified, and return its path.

    ``progress``: a tqdm bar on stderr (None: only when stderr is a terminal). Raises :class:`DownloadError`
    (nothing left behind) when the source is unreachable, the transfer breaks off, or the bytes do not match.
    """
    expected = weight.expected_sha256
    if not expected or len(expected) < 8:
        raise DownloadError("no published sha256 to verify a download against; place the file by hand")
    url = source_url(weight)
    host = _host(url)
    if host in _UNREACHABLE:
        raise DownloadError(_UNREACHABLE[host])
    dest = weight.path
    t0 = time.perf_counter()
    tmp = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(dest)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        with os.fdopen(fd, "wb") as out:
            digest, size = _stream(url, out, weight, progress)
            out.flush()
            os.fsync(out.fileno())
        if not digest.startswith(expected):
            raise DownloadError(f"the download from {_source_label(weight)} was refused: its sha256 "
                                f"{digest[:16]}... does not match the published {expected[:16]}; nothing was kept")
        if dest.is_file():  # another process finished first: its file is verified too, keep it
            return dest
        os.replace(tmp, dest)
    except OSError as exc:  # the hub cache is read-only, the disk is full, ...
        raise DownloadError(f"cannot write {dest.name} into {weight.folder_display}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    DOWNLOADED.append(Downloaded(weight.filename, digest, size, "mirror" if mirror() else "upstream",
                                 round(time.perf_counter() - t0, 2)))
    return dest


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _remove_stale_parts(dest: Path) -> None:
    for part in dest.parent.glob(f".{dest.name}.*.part"):
        try:
            if time.time() - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
        except OSError:
            pass


def _open(url: str, weight):
    """The response for ``url``, or DownloadError within CONNECT_TIMEOUT: the request runs in a daemon thread
    because no urllib timeout covers the DNS lookup, which is what hangs on a machine without network."""
    box: dict = {}

    def request():
        try:
            box["response"] = urllib.request.urlopen(url, timeout=READ_TIMEOUT)
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc

    worker = threading.Thread(target=request, daemon=True, name="zoo-download")
    worker.start()
    worker.join(CONNECT_TIMEOUT)
    where = _source_label(weight)
    if worker.is_alive():
        reason = f"no answer from {where} within {CONNECT_TIMEOUT:g} s"
        _UNREACHABLE[_host(url)] = reason
        raise DownloadError(reason)
    exc = box.get("error")
    if exc is None:
        return box["response"]
    if isinstance(exc, urllib.error.HTTPError):
        raise DownloadError(f"{where} answered HTTP {exc.code} {exc.reason}")
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, FileNotFoundError):
        raise DownloadError(f"{where} has no {weight.filename}")
    text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    message = f"cannot reach {where}: {text}"
    _UNREACHABLE[_host(url)] = message
    raise DownloadError(message)


def _stream(url: str, out, weight, progress: bool | None) -> tuple[str, int]:
    """Copy the body of ``url`` into ``out``; returns (sha256 hex, bytes). Raises DownloadError when the
    connection breaks or closes before the announced length."""
    from tqdm import tqdm

    h = hashlib.sha256()
    n = 0
    with _open(url, weight) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=weight.filename,
                  file=sys.stderr, disable=None if progress is None else not progress, leave=False) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, IncompleteRead
                raise DownloadError(f"the download from {_source_label(weight)} broke off after {n} bytes "
                                    f"({exc.__class__.__name__}: {exc}); nothing was kept") from None
    if total is not None and n != total:
        raise DownloadError(f"the download from {_source_label(weight)} broke off after {n} of {total} "
                            f"bytes; nothing was kept")
    return h.hexdigest(), n
