"""The sample corpora: those the project ships, those it downloads, those it builds.

`sample_corpora/manifest.json` lists them. A shipped corpus is a file beside the
manifest; a downloaded one (tinyshakespeare) is fetched once from its canonical
URL into the user cache and verified by sha256; a built one (python-stdlib) is
made on the fly from files already on this machine.

A download is bounded: at most the sample's known size (`size` in the manifest;
`DEFAULT_MAX_BYTES` when it has none), a Content-Length above that is refused
before the body is read; the whole download must finish within `DEADLINE_S`
(`CHARLM_DOWNLOAD_DEADLINE_S` overrides it), however slowly the server trickles
bytes. Network reads run in a daemon thread that hands blocks over a bounded
queue, so the caller's thread enforces the deadline exactly and calls `progress`.
The partial file is a `.NAME.tmp-PID-HEX` temporary, removed on any failure, and a
killed download's is removed by the next one (`engine.files.remove_dead_temps`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import queue
import socket
import sysconfig
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from engine.errors import CorpusError
from engine.files import MIB, open_for_write, remove_dead_temps, temp_name
from engine.paths import cache_dir

DownloadProgress = Callable[[int, int | None], None]
DEFAULT_MAX_BYTES = 256 * MIB  # a downloadable sample whose size the manifest omits
DEADLINE_S = 300.0  # a whole download, start to end
DEADLINE_VARIABLE = "CHARLM_DOWNLOAD_DEADLINE_S"
BLOCK_BYTES = 1 << 16


@dataclass(frozen=True)
class SampleCorpus:
    """One manifest entry."""

    name: str
    description: str
    kind: str  # "file", "download" or "builtin"
    file: str | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    builtin: str | None = None
    entropy_rate_bits: float | None = None

    @property
    def available_offline(self) -> bool:
        return self.kind != "download" or download_path(self).exists()


def _manifest_dir() -> Path:
    return Path(str(resources.files("sample_corpora")))


@cache
def _manifest() -> dict:
    return json.loads((_manifest_dir() / "manifest.json").read_text(encoding="utf-8"))


def list_samples() -> list[SampleCorpus]:
    samples = []
    for entry in _manifest()["corpora"]:
        kind = "download" if "url" in entry else "builtin" if "builtin" in entry else "file"
        samples.append(SampleCorpus(kind=kind, **entry))
    return samples


def default_sample_name() -> str:
    return str(_manifest()["default"])


def find_sample(name: str) -> SampleCorpus | None:
    return next((s for s in list_samples() if s.name == name), None)


def download_path(sample: SampleCorpus) -> Path:
    return cache_dir() / "downloads" / f"{sample.name}.txt"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _deadline(deadline: float | None) -> float:
    if deadline is not None:
        return deadline
    text = os.environ.get(DEADLINE_VARIABLE, "")
    if not text:
        return DEADLINE_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:  # NaN too
        raise CorpusError(f"{DEADLINE_VARIABLE} must be a positive number of seconds, got {text!r}")
    return value


def _pump(source: str, timeout: float, blocks: queue.Queue, cancel: threading.Event) -> None:
    """The network side (a daemon thread): ("length", header), then ("data", block)s, the
    last one empty, or ("error", exc). Stops at `cancel` within one read's timeout."""

    def put(item: tuple) -> None:
        while not cancel.is_set():
            try:
                blocks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    try:
        with urllib.request.urlopen(source, timeout=timeout) as response:
            put(("length", response.headers.get("Content-Length")))
            read = getattr(response, "read1", response.read)  # returns what one recv got
            while not cancel.is_set():
                block = read(BLOCK_BYTES)
                put(("data", block))
                if not block:
                    return
    except BaseException as exc:  # handed to the caller's thread
        put(("error", exc))


def download(
    sample: SampleCorpus,
    *,
    url: str | None = None,
    progress: DownloadProgress | None = None,
    timeout: float = 30.0,
    deadline: float | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Fetch a downloadable sample into the cache, verified, written atomically.

    `url` overrides the manifest's (tests use a local HTTP server). A file whose
    sha256 does not match is discarded, never used. At most `max_bytes` (default:
    the sample's size) within `deadline` seconds (default: see the module doc).
    """
    target = download_path(sample)
    if target.exists():
        return target
    variable = f"CHARLM_URL_{sample.name.upper().replace('-', '_')}"
    source = url or os.environ.get(variable) or sample.url
    if not source:
        raise CorpusError(f"sample '{sample.name}' has no download URL")
    seconds = _deadline(deadline)
    limit = max_bytes or sample.size or DEFAULT_MAX_BYTES
    what = f"download of '{sample.name}' from {source}"
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(target)
    tmp = temp_name(target)
    cancel = threading.Event()
    blocks: queue.Queue = queue.Queue(maxsize=64)
    try:
        with os.fdopen(open_for_write(tmp), "wb") as out:
            threading.Thread(
                target=_pump, args=(source, min(timeout, seconds), blocks, cancel), daemon=True
            ).start()
            done, length, digest = _receive(blocks, out, what, limit, seconds, sample, progress)
            out.flush()
            os.fsync(out.fileno())
        if length is not None and done != length:  # http.client returns a short body silently
            raise CorpusError(f"{what} was cut short ({done} of {length} bytes); nothing was kept")
        if sample.sha256 and digest != sample.sha256:
            raise CorpusError(
                f"{what} has sha256 {digest[:12]}..., expected {sample.sha256[:12]}...; "
                "nothing was kept"
            )
        os.replace(tmp, target)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: a bad URL
        reason = (
            getattr(exc, "reason", None)
            or getattr(exc, "strerror", None)
            or str(exc)
            or type(exc).__name__
        )
        if isinstance(reason, socket.gaierror) or isinstance(exc, socket.gaierror):
            reason = "this machine seems to be offline (the host name does not resolve)"
        raise CorpusError(
            f"could not download '{sample.name}' from {source}: {reason}; with a copy on disk, "
            f"open its path, or set {variable}=file:///path/to/the/file"
        ) from None
    finally:
        cancel.set()
        tmp.unlink(missing_ok=True)
    return target


def _receive(
    blocks: queue.Queue,
    out,
    what: str,
    limit: int,
    seconds: float,
    sample: SampleCorpus,
    progress: DownloadProgress | None,
) -> tuple[int, int | None, str]:
    """Write what `_pump` hands over until its end: (bytes, Content-Length, sha256)."""
    end = time.monotonic() + seconds
    too_large = CorpusError(f"{what} is larger than the sample's {limit:,} bytes; nothing was kept")
    digest = hashlib.sha256()
    length: int | None = None
    done = 0
    while True:
        left = end - time.monotonic()
        try:
            if left <= 0:
                raise queue.Empty
            kind, value = blocks.get(timeout=left)
        except queue.Empty:
            raise CorpusError(
                f"{what} took longer than {seconds:g} s ({done:,} bytes so far); nothing was "
                f"kept ({DEADLINE_VARIABLE} sets the limit)"
            ) from None
        if kind == "error":
            raise value
        if kind == "length":
            length = int(value) if value and str(value).strip().isdigit() else None
            if length is not None and length > limit:
                raise too_large
            continue
        if not value:
            return done, length, digest.hexdigest()
        done += len(value)
        if done > limit:
            raise too_large
        out.write(value)
        digest.update(value)
        if progress:
            progress(done, length or sample.size)


def stdlib_files() -> list[Path]:
    """The running interpreter's top-level standard-library modules (a few MB of Python)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())
    if not files:
        raise CorpusError(f"no standard-library sources found in {stdlib}")
    return files


def sample_files(sample: SampleCorpus, progress: DownloadProgress | None = None) -> list[Path]:
    """The files a sample corpus is made of, downloading it first if needed."""
    if sample.kind == "file":
        assert sample.file is not None
        return [_manifest_dir() / sample.file]
    if sample.kind == "download":
        return [download(sample, progress=progress)]
    if sample.builtin == "python-stdlib":
        return stdlib_files()
    raise CorpusError(f"sample '{sample.name}' has an unknown builtin '{sample.builtin}'")
