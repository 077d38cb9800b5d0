"""Where runs live: a local or NFS folder, or an object-store URI (`s3://`, `gs://`) read and
written through pyarrow.fs, the layer Ray Tune itself writes through.

Tune writes its experiment state and the trials' checkpoints to the location itself. hpo's own
files (sweep.yaml, summary.json, trials.csv, curve.csv, TensorBoard logs, reports, the
promotion ledger) are written to a local folder first: for a remote location that folder is a
mirror under `$HPO_CACHE` (`~/.cache/hpo`), `push` uploads named files from it and `pull`
downloads them. For a local location the folder is the location and both do nothing.

Endpoints and credentials come from the environment, as for every AWS or GCP tool:
`AWS_ENDPOINT_URL` (MinIO, a test server), `AWS_ACCESS_KEY_ID`..., or the node's IAM role.
"""

from __future__ import annotations

import functools
import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hpo.core.errors import UserError

REMOTE_SCHEMES = ("s3", "gs", "gcs")
MTIME_MARGIN_S = 1.0
_SCHEME_OF_FILESYSTEM = {"s3": "s3", "gcs": "gs"}  # pyarrow's type_name -> URI scheme


def user_path(text: str | Path) -> Path:
    """A path a user gave, `~` and `~user` expanded as a shell does: `~nobody` (no such user)
    stays as written, where pathlib's `expanduser` raises RuntimeError."""
    return Path(os.path.expanduser(text))


def is_remote(location: str) -> bool:
    return urlsplit(str(location)).scheme in REMOTE_SCHEMES


def normalize(location: str | Path) -> str:
    """An absolute local path, or the URI without a trailing slash."""
    text = str(location)
    if not is_remote(text):
        return str(user_path(text).resolve())
    if "?" in text:
        raise UserError(
            f"{text}: hpo takes storage URIs without options; set the endpoint in "
            f"AWS_ENDPOINT_URL (and credentials in the usual AWS/GCP variables) instead"
        )
    return text.rstrip("/")


def join(location: str, *parts: str) -> str:
    return posixpath.join(location, *parts) if is_remote(location) else str(Path(location, *parts))


@functools.lru_cache(maxsize=16)
def _bucket_filesystem(bucket_uri: str, endpoint: str | None):
    """One filesystem per bucket (and endpoint): making one resolves credentials and region."""
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(bucket_uri)[0]


def filesystem(location: str):
    """The pyarrow filesystem of a location, and the location's path on it."""
    import pyarrow
    import pyarrow.fs as pafs

    if not is_remote(location):
        return pafs.LocalFileSystem(), str(location)
    parts = urlsplit(location)
    try:
        fs = _bucket_filesystem(
            f"{parts.scheme}://{parts.netloc}", os.environ.get("AWS_ENDPOINT_URL")
        )
    except (pyarrow.ArrowException, OSError) as err:
        raise UserError(f"{location}: cannot open this storage ({err})") from None
    return fs, f"{parts.netloc}{parts.path}".rstrip("/")


def as_location(fs, path: str) -> str:
    """A path on a pyarrow filesystem (as Tune and Ray Train give checkpoint paths) as a
    location: paths on an object store get their URI scheme back."""
    scheme = _SCHEME_OF_FILESYSTEM.get(fs.type_name)
    return f"{scheme}://{path}" if scheme and "://" not in path else path


def _remote_file_type(location: str):
    fs, path = filesystem(location)
    try:
        return fs.get_file_info(path).type
    except OSError as err:
        raise UserError(f"{location}: cannot read the storage ({err})") from None


def exists(location: str) -> bool:
    import pyarrow.fs as pafs

    if not is_remote(location):
        return os.path.exists(location)
    return _remote_file_type(location) != pafs.FileType.NotFound


def is_dir(location: str) -> bool:
    import pyarrow.fs as pafs

    if not is_remote(location):
        return os.path.isdir(location)
    return _remote_file_type(location) == pafs.FileType.Directory


def subfolders(location: str) -> set[str]:
    """The locations of the folders directly inside `location` (none if it does not exist)."""
    import pyarrow.fs as pafs

    if not is_remote(location):
        if not os.path.isdir(location):
            return set()
        return {entry.path for entry in os.scandir(location) if entry.is_dir()}
    fs, path = filesystem(location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as err:
        raise UserError(f"{location}: cannot read the storage ({err})") from None
    return {as_location(fs, i.path) for i in infos if i.type == pafs.FileType.Directory}


def check_bucket(location: str) -> None:
    """Fails early, with a message, where Ray would fail deep inside Tune: a bucket that does
    not exist, or credentials that cannot see it."""
    if not is_remote(location):
        return
    parts = urlsplit(location)
    if not exists(f"{parts.scheme}://{parts.netloc}"):
        raise UserError(
            f"storage {location}: the bucket {parts.netloc!r} does not exist (or "
            f"these credentials cannot see it)"
        )


def cache_root() -> Path:
    return user_path(os.environ.get("HPO_CACHE", "~/.cache/hpo"))


def mirror_of(location: str) -> Path:
    """The local folder of a location: itself, or its mirror in the cache."""
    if not is_remote(location):
        return Path(location)
    parts = urlsplit(location)
    return cache_root() / "storage" / parts.scheme / parts.netloc / parts.path.lstrip("/")


def _copy(source: str, destination: str, source_fs, destination_fs) -> None:
    import pyarrow.fs as pafs

    # Ray's own uploads turn threads off for S3 too (apache/arrow#32372).
    pafs.copy_files(
        source,
        destination,
        source_filesystem=source_fs,
        destination_filesystem=destination_fs,
        use_threads=False,
    )


def _files_under(fs, path: str) -> list[str]:
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return [info.path for info in infos if info.type == pafs.FileType.File]


def inside(folder: Path, relative: str, source: str) -> Path:
    """`folder / relative`, refused where the name would lead out of `folder` (`..` in an
    object's key): a bucket's contents must not write elsewhere on this machine."""
    destination = (folder / relative).resolve()
    if not destination.is_relative_to(folder.resolve()):
        raise UserError(f"{source}: refusing to download {relative!r}, which leads out of {folder}")
    return destination


def download(
    location: str, target: Path, exclude: tuple[str, ...] = (), skip_existing: bool = False
) -> None:
    """Copies a remote file or folder to `target`, leaving out files named in `exclude` (and
    with `skip_existing`, files that `target` already has)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    local = pafs.LocalFileSystem()
    try:
        if fs.get_file_info(path).type == pafs.FileType.File:
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy(path, str(target), fs, local)
            return
        for file in _files_under(fs, path):
            if posixpath.basename(file) in exclude:
                continue
            destination = inside(target, posixpath.relpath(file, path), location)
            if skip_existing and destination.exists():
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            _copy(file, str(destination), fs, local)
    except OSError as err:
        raise UserError(f"{location}: download failed ({err})") from None


def local_checkpoint(location: str, exclude: tuple[str, ...] = ()) -> str:
    """A checkpoint folder on this machine: the folder itself, or a copy of a remote one in the
    cache, downloaded once (a serving replica on any node calls this)."""
    if not is_remote(location):
        return location
    mirror = mirror_of(location).relative_to(cache_root() / "storage")
    target = cache_root() / "checkpoints" / mirror
    if not target.is_dir():
        # replicas on one node may fetch at once: each downloads aside, the first rename wins
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        download(location, partial, exclude)
        if not partial.is_dir():
            raise UserError(f"{location}: no checkpoint there (was it deleted?)")
        try:
            partial.rename(target)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return str(target)


def write_atomically(path: Path, text: str) -> None:
    """Writes `path` through a temporary file beside it and a rename (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(text)
    partial.replace(path)


@dataclass(frozen=True)
class StorageDir:
    """A folder of the storage (a run dir, a comparison dir, the storage root), local or
    remote, with `local` the folder where hpo reads and writes its own files."""

    location: str

    @classmethod
    def at(cls, location: str | Path) -> StorageDir:
        return cls(normalize(location))

    def __str__(self) -> str:
        return self.location

    @property
    def remote(self) -> bool:
        return is_remote(self.location)

    @property
    def local(self) -> Path:
        return mirror_of(self.location)

    @property
    def name(self) -> str:
        return posixpath.basename(self.location) if self.remote else Path(self.location).name

    @property
    def parent(self) -> StorageDir:
        if self.remote:
            return StorageDir(posixpath.dirname(self.location))
        return StorageDir(str(Path(self.location).parent))

    def child(self, *parts: str) -> StorageDir:
        return StorageDir(join(self.location, *parts))

    def exists(self) -> bool:
        return exists(self.location)

    def start_fresh(self) -> None:
        """Makes the local folder of a new run dir; a remote one's mirror starts empty, so that
        no file left from an earlier run of the same location is taken for this one's."""
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)
        self.local.mkdir(parents=True, exist_ok=self.remote)

    def write_text(self, name: str, text: str) -> None:
        """Writes a file of the local folder whole or not at all: to a temporary file first,
        renamed into place, so that a crash never leaves a torn file for readers."""
        write_atomically(self.local / name, text)

    def push(self, *names: str, since: float = 0.0) -> None:
        """Uploads the named files or folders from the local folder (those present; in folders,
        the files modified after `since`, a time.time(), less a margin: file times come from
        the kernel's coarser clock, a few milliseconds behind)."""
        if not self.remote:
            return
        import pyarrow.fs as pafs

        fs, path = filesystem(self.location)
        local = pafs.LocalFileSystem()
        try:
            for name in names:
                source = self.local / name
                files = (
                    [source]
                    if source.is_file()
                    else [
                        f
                        for f in source.rglob("*")
                        if f.is_file() and f.stat().st_mtime >= since - MTIME_MARGIN_S
                    ]
                )
                for file in files:
                    destination = posixpath.join(path, file.relative_to(self.local).as_posix())
                    _copy(str(file), destination, local, fs)
        except OSError as err:
            raise UserError(f"{self.location}: upload failed ({err})") from None

    def pull(self, *names: str) -> None:
        """Downloads the named files or folders into the local folder. A file missing from the
        storage is removed locally, so the mirror never shows what the storage lacks. Folders
        only gain the files they lack: their files are written once each (TensorBoard event
        files), and a sweep on this machine may be writing to them right now."""
        if not self.remote:
            return
        import pyarrow.fs as pafs

        for name in names:
            target, source = self.local / name, join(self.location, name)
            kind = _remote_file_type(source)
            if kind == pafs.FileType.Directory:
                download(source, target, skip_existing=True)
            elif kind == pafs.FileType.File:
                partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
                download(source, partial)
                partial.replace(target)
            elif not target.is_dir():
                target.unlink(missing_ok=True)

    def remove(self) -> None:
        """Deletes this folder and what it holds (its local mirror too), if it exists."""
        shutil.rmtree(self.local, ignore_errors=True)
        if not self.remote or not self.exists():
            return
        fs, path = filesystem(self.location)
        try:
            fs.delete_dir(path)
        except OSError as err:
            raise UserError(f"{self.location}: cannot delete it ({err})") from None

    def remove_files(self, filename: str) -> None:
        """Deletes every file called `filename` beneath this folder."""
        fs, path = filesystem(self.location)
        try:
            for file in _files_under(fs, path):
                if posixpath.basename(file) == filename:
                    fs.delete_file(file)
        except OSError as err:
            raise UserError(f"{self.location}: cannot delete {filename} files ({err})") from None
