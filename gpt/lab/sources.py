"""Online data sources, downloaded once into a cache and checked before use.

:func:`fetch` takes a name from :data:`SOURCES` or any ``http(s)://`` URL of a plain-text file
(pretraining text) and returns the path of the cached, validated file::

    path = fetch("sms-spam")          # ~/.cache/gpt2lab/sms_spam_collection.tsv
    examples = read_spam(path)

The cache folder is ``cache_dir``, else the ``GPT2LAB_CACHE`` environment variable, else
``~/.cache/gpt2lab``. A download goes to a temporary file in that folder and is renamed into
place only after it passed every check (sha256 where the source is fixed and the value is
known, size cap, the reader of its kind from :mod:`gpt.train.data`, a minimum record count), so
the cache never holds a partial or unchecked file. A cached file is used as is: nothing here
needs the network once it has been fetched, and nothing in the tests touches it.

The named sources need the network until they are cached. :func:`availability` says whether
one can be used now: cached, or :mod:`gpt.lab.hub`'s network check has not found the machine
offline. :func:`fetch` refuses at once with "needs the network: <reason>" when the check found
it offline (or ``HF_HUB_OFFLINE=1`` / ``GPT2LAB_ALLOW_DOWNLOAD=0`` is set), and says the same
when every address fails to connect, instead of a raw ``urlopen error``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gpt.lab.paths import SOURCES_CACHE_ENV
from gpt.train.data import DEFAULT_MAX_BYTES, DataError, DataKind, validate_file

DEFAULT_CACHE = Path("~/.cache/gpt2lab")
USER_AGENT = "gpt2lab-data/0.1 (+urllib)"
CHUNK = 1 << 20

Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


class SourceError(OSError):
    """A source could not be downloaded or failed its checks; the message lists each try."""


@dataclass(frozen=True)
class Source:
    """Where a data file comes from and what it must look like.

    Attributes:
        url: the primary address.
        filename: the file's name in the cache (its suffix picks the reader: .tsv, .json...).
        kind: the :func:`gpt.train.data.validate_file` kind the file must pass.
        mirrors: addresses tried, in order, when the primary one fails.
        sha256: hex digest of the downloaded file (the archive for a zip); None where no
            trusted value is known, and then only size and format are checked.
        member: for a zip archive, the name of the file inside it to keep.
        min_records: fewer records than this means a truncated or wrong file.
        skip_empty: read instruction records with empty outputs as skipped, not as errors.
        max_bytes: cap on the download (and on the extracted member).
        description: one line for the UI.
    """

    url: str
    filename: str
    kind: DataKind
    mirrors: tuple[str, ...] = ()
    sha256: str | None = None
    member: str | None = None
    min_records: int = 0
    skip_empty: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    description: str = ""

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)


# sha256: only instruction-data's is known (of the file as published in 2024); the other two
# were not published by their maintainers and could not be downloaded here to compute one, so
# they are checked by format and record count instead.
SOURCES: dict[str, Source] = {
    "sms-spam": Source(
        url="https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
        # The backup address used by the LLMs-from-scratch book code (chapter 6). The
        # raw.githubusercontent.com path sometimes suggested for it could not be confirmed.
        mirrors=(
            "https://f001.backblazeb2.com/file/LLMs-from-scratch/sms%2Bspam%2Bcollection.zip",
        ),
        filename="sms_spam_collection.tsv",
        kind="classify",
        member="SMSSpamCollection",
        min_records=5000,  # the collection has 5,574 messages
        description="UCI SMS Spam Collection: 5,574 English SMS labelled ham or spam",
    ),
    "instruction-data": Source(
        url="https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/instruction-data.json",
        filename="instruction-data.json",
        kind="instruct",
        sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        min_records=1000,  # 1,100 records
        description="LLMs-from-scratch chapter 7 instruction data: 1,100 Alpaca-style records",
    ),
    "alpaca": Source(
        url="https://raw.githubusercontent.com/tatsu-lab/stanford_alpaca/main/alpaca_data.json",
        filename="alpaca_data.json",
        kind="instruct",
        min_records=50_000,  # about 52k records
        skip_empty=True,  # the original release has a few records with an empty output
        description="Stanford Alpaca: 52k instruction-following records (CC BY-NC 4.0)",
    ),
}


def cache_folder(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path``, else ``$GPT2LAB_CACHE``, else ``~/.cache/gpt2lab``."""
    chosen = path if path is not None else os.environ.get(SOURCES_CACHE_ENV) or DEFAULT_CACHE
    return Path(chosen).expanduser()


def url_source(url: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Source:
    """A :class:`Source` for a plain-text URL: cached under a name made from its hash.

    >>> name = url_source("https://example.org/books/tale.txt").filename
    >>> name.startswith("url-"), name.endswith("-tale.txt")
    (True, True)
    """
    if not re.match(r"https?://", url):
        raise ValueError(f"not an http(s) URL: {url!r}")
    tail = re.sub(r"[^A-Za-z0-9._-]", "_", url.rstrip("/").rsplit("/", 1)[-1])[:60] or "text"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    return Source(url=url, filename=f"url-{digest}-{tail}", kind="lm", max_bytes=max_bytes)


def resolve(name_or_url: str) -> Source:
    """The :class:`Source` named in :data:`SOURCES`, or one for an ``http(s)://`` URL."""
    if name_or_url in SOURCES:
        return SOURCES[name_or_url]
    if re.match(r"https?://", name_or_url):
        return url_source(name_or_url)
    raise ValueError(
        f"unknown data source {name_or_url!r}; expected one of {sorted(SOURCES)} "
        "or an http(s):// URL of a plain-text file"
    )


def availability(name_or_url: str, cache_dir: str | os.PathLike | None = None) -> str | None:
    """None when the source can be used now (cached, or the network is not known to be off),
    else why not: "needs the network: <reason>".

    Never touches the network: it reads :func:`gpt.lab.hub.status` (which the app's background
    check fills in; "unknown" counts as usable, and :func:`fetch` then tries).
    """
    source = resolve(name_or_url)
    if (cache_folder(cache_dir) / source.filename).is_file():
        return None
    return _offline_reason()


def _offline_reason() -> str | None:
    from gpt.lab import hub

    state = hub.status()
    return f"needs the network: {state.reason}" if state.offline else None


def _network_reason(error: BaseException) -> str | None:
    """The reason when a download failed before any byte (no connection), else None."""
    if isinstance(error, urllib.error.HTTPError):
        return None
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
    if isinstance(error, TimeoutError | ConnectionError):
        return str(error) or type(error).__name__
    return None


def download_url(
    url: str, dest: Path, max_bytes: int, progress: Progress | None = None, timeout: float = 60
) -> None:
    """Write the body of ``url`` to ``dest``, stopping with SourceError past ``max_bytes``."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise SourceError(f"{url}: {total} bytes, over the {max_bytes}-byte limit")
        done = 0
        while chunk := response.read(CHUNK):
            done += len(chunk)
            if done > max_bytes:
                raise SourceError(f"{url}: more than the {max_bytes}-byte limit")
            out.write(chunk)
            if progress is not None:
                progress(done, total)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _extract_member(archive: Path, member: str, dest: Path, max_bytes: int) -> None:
    """Copy the zip entry whose base name is ``member`` to ``dest``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if i.filename.rsplit("/", 1)[-1] == member]
            if not infos:
                names = ", ".join(zf.namelist()[:10])
                raise SourceError(f"the archive holds no {member!r} (it has: {names})")
            if infos[0].file_size > max_bytes:
                raise SourceError(f"{member!r} is {infos[0].file_size} bytes, over the limit")
            with zf.open(infos[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
    except zipfile.BadZipFile as e:
        raise SourceError(f"not a zip archive ({e})") from None


def _check(source: Source, path: Path) -> None:
    """Validate a downloaded (and extracted) file as the source's kind and record count."""
    summary = validate_file(source.kind, path, source.max_bytes, skip_empty=source.skip_empty)
    records = summary.get("examples", 0) + summary.get("skipped_empty", 0)
    if records < source.min_records:
        raise DataError(
            f"{path}: {records} records; expected at least {source.min_records} "
            "(a truncated or different file?)"
        )


def _try_one(source: Source, url: str, folder: Path, progress: Progress | None) -> Path:
    """Download ``url`` into a temporary file, check it, return the temporary path."""
    suffix = Path(source.filename).suffix
    fd, raw_name = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part" + suffix)
    os.close(fd)
    raw = Path(raw_name)
    keep = raw
    try:
        download_url(url, raw, source.max_bytes, progress)
        if source.sha256 is not None:
            got = sha256_file(raw)
            if got != source.sha256:
                raise SourceError(f"sha256 mismatch: expected {source.sha256}, got {got}")
        if source.member is not None:
            keep = raw.with_name(raw.name.replace(".download-", ".extract-", 1))
            _extract_member(raw, source.member, keep, source.max_bytes)
            raw.unlink()
        _check(source, keep)
        return keep
    except BaseException:
        for p in {raw, keep}:
            p.unlink(missing_ok=True)
        raise


def fetch(
    name_or_url: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Path of the cached file for a source name or a plain-text URL, downloading it first
    (primary address, then mirrors) when it is not cached yet or ``force`` is set.

    Raises SourceError naming every address tried and why each failed; nothing is left in
    the cache after a failure.
    """
    source = resolve(name_or_url)
    folder = cache_folder(cache_dir)
    target = folder / source.filename
    if target.is_file() and not force:
        return target
    offline = _offline_reason()
    if offline is not None:
        raise SourceError(f"{name_or_url!r} {offline}. {_offline_advice(target)}")
    folder.mkdir(parents=True, exist_ok=True)
    failures, unreachable = [], []
    for url in source.urls:
        try:
            checked = _try_one(source, url, folder, progress)
        except (OSError, http.client.HTTPException, DataError) as e:  # URLError is an OSError
            reason = _network_reason(e)
            if reason is not None:
                unreachable.append(f"{urllib.parse.urlsplit(url).netloc}: {reason}")
                failures.append(f"  {url}: cannot connect ({reason})")
            else:
                failures.append(f"  {url}: {e}")
            continue
        os.replace(checked, target)
        return target
    if len(unreachable) == len(source.urls):  # no address answered: say it plainly
        raise SourceError(
            f"{name_or_url!r} needs the network: {'; '.join(unreachable)}. "
            + _offline_advice(target)
        )
    raise SourceError(f"could not fetch {name_or_url!r}:\n" + "\n".join(failures))


def _offline_advice(target: Path) -> str:
    return (
        f"Connect to the internet and try again, or put the file at {target} (or upload it / "
        "pass its path instead)."
    )
