"""The sample corpora: those the project ships, those it downloads, those it builds.

`sample_corpora/manifest.json` lists them. A shipped corpus is a file beside the
manifest; a downloaded one (tinyshakespeare) is fetched once from its canonical
URL into the user cache and verified by sha256; a built one (python-stdlib) is
made on the fly from files already on this machine.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import sysconfig
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from engine.errors import CorpusError
from engine.paths import cache_dir

DownloadProgress = Callable[[int, int | None], None]


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


def download(
    sample: SampleCorpus,
    *,
    url: str | None = None,
    progress: DownloadProgress | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch a downloadable sample into the cache, verified, written atomically.

    `url` overrides the manifest's (tests use a local HTTP server). A file whose
    sha256 does not match is discarded, never used.
    """
    target = download_path(sample)
    if target.exists():
        return target
    source = url or os.environ.get(f"CHARLM_URL_{sample.name.upper().replace('-', '_')}")
    source = source or sample.url
    if not source:
        raise CorpusError(f"sample '{sample.name}' has no download URL")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(source, timeout=timeout) as response,
        ):
            length = response.headers.get("Content-Length")
            total = int(length) if length else sample.size
            done = 0
            while block := response.read(1 << 16):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if length and done != int(length):  # http.client returns a short body silently
            raise CorpusError(
                f"download of '{sample.name}' from {source} was cut short "
                f"({done} of {length} bytes); nothing was kept"
            )
        if sample.sha256 and digest.hexdigest() != sample.sha256:
            raise CorpusError(
                f"download of '{sample.name}' from {source} has sha256 {digest.hexdigest()[:12]}..., "
                f"expected {sample.sha256[:12]}...; nothing was kept"
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
        variable = f"CHARLM_URL_{sample.name.upper().replace('-', '_')}"
        raise CorpusError(
            f"could not download '{sample.name}' from {source}: {reason}; with a copy on disk, "
            f"open its path, or set {variable}=file:///path/to/the/file"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


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
