"""Where ``s3://`` locations and the data root live, reached through fsspec.

Every ``s3://bucket/key`` in an API call (import data, export and batch paths) resolves here:

* **S3** (an S3-compatible server or AWS itself) when an endpoint is configured: the
  ``s3_endpoint_url`` setting, else the standard ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``
  variables; or when ``s3_backend`` is ``s3`` (AWS with its usual credential chain). Credentials
  come from ``s3_access_key_id`` / ``s3_secret_access_key`` or the standard ``AWS_*`` variables.
* **Embedded buckets** otherwise: bucket ``b`` is the folder ``<data_dir>/s3/b``, so a CSV dropped
  at ``<data_dir>/s3/b/in/x.csv`` is ``s3://b/in/x.csv`` (``openpersonalize cp`` copies one in).

A location never escapes its root. Keys with ``..`` or ``.`` segments, empty segments (``//``),
backslashes or control characters are refused, and on the embedded store a path that passes
through a symbolic link is refused too (checked when the object is actually touched, since a link
can appear after the call). All refusals are ``InvalidInputException`` naming the member.

The data root (``data_root`` setting; default ``<data_dir>/data``) is where dataset rows live as
Parquet; it may itself be an ``s3://`` prefix.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..config import Settings
from ..errors import InvalidInputException

_URI = re.compile(r"s3://(?P<bucket>[A-Za-z0-9][A-Za-z0-9.\-_]{0,254})(?:/(?P<key>.*))?", re.DOTALL)
_BAD_KEY_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")


def _refuse(member: str, uri: str, rule: str) -> InvalidInputException:
    shown = uri if len(uri) <= 200 else uri[:200] + "..."
    return InvalidInputException(f"Invalid {member}: '{shown}' {rule}")


def split_uri(uri: str, member: str = "path") -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://`` URI after the confinement checks (key may be empty)."""
    m = _URI.fullmatch(uri)
    if m is None:
        raise _refuse(member, uri, "is not an S3 location of the form s3://bucket/key.")
    bucket, key = m.group("bucket"), m.group("key") or ""
    if ".." in bucket.split(".") or bucket.strip(".") != bucket:
        raise _refuse(member, uri, "has a bucket name that is not allowed.")
    if _BAD_KEY_CHARS.search(key):
        raise _refuse(member, uri, "contains a backslash or a control character; keys may not.")
    segments = key.split("/")
    inner = segments[:-1] if key.endswith("/") else segments
    if key and any(s in ("", ".", "..") for s in inner):
        raise _refuse(member, uri, "has an empty, '.' or '..' path segment; a location cannot "
                                   "leave its bucket.")
    return bucket, key


def check_uri(uri: str, member: str) -> str:
    """Syntax and confinement check for an ``s3://`` location given in an API call."""
    split_uri(uri, member)
    return uri


@dataclass(frozen=True)
class ObjectInfo:
    uri: str       # s3://bucket/key
    path: str      # the filesystem's own path
    size: int


class Storage:
    """The filesystems behind ``s3://`` URIs and the data root, for one set of settings."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.endpoint = settings.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") \
            or os.environ.get("AWS_ENDPOINT_URL") or ""
        backend = (settings.s3_backend or "auto").lower()
        if backend not in ("auto", "local", "s3"):
            raise ValueError(f"s3_backend must be auto, local or s3, not {settings.s3_backend!r}")
        self.uses_s3 = backend == "s3" or (backend == "auto" and bool(self.endpoint))
        self.local_root = (Path(settings.data_dir) / "s3").resolve()

    # -- filesystems ----------------------------------------------------------------------

    @functools.cached_property
    def s3(self):
        """The s3fs filesystem (created on first use)."""
        # No listing cache: objects are written by other processes between our reads.
        kwargs: dict = {"client_kwargs": {}, "use_listings_cache": False}
        if self.endpoint:
            kwargs["endpoint_url"] = self.endpoint
        if self.settings.s3_access_key_id:
            kwargs["key"] = self.settings.s3_access_key_id
            kwargs["secret"] = self.settings.s3_secret_access_key
        region = self.settings.s3_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kwargs["client_kwargs"]["region_name"] = region
        # A fresh instance per Storage: settings differ between servers in one process (tests).
        return fsspec.filesystem("s3", skip_instance_cache=True, **kwargs)

    @functools.cached_property
    def local(self) -> LocalFileSystem:
        return LocalFileSystem()

    def filesystem(self, uri: str, member: str = "path") -> tuple[fsspec.AbstractFileSystem, str]:
        """``(fs, path)`` for an ``s3://`` URI."""
        bucket, key = split_uri(uri, member)
        if self.uses_s3:
            return self.s3, f"{bucket}/{key}".rstrip("/") if key else bucket
        path = self.local_root / bucket / key if key else self.local_root / bucket
        return self.local, str(path)

    # -- confinement on the embedded store -----------------------------------------------

    def confine(self, fs, path: str, member: str, uri: str) -> None:
        """Refuse a local path that resolves outside the embedded root (symbolic links)."""
        if fs is not self.local:
            return
        root = self.local_root
        resolved = Path(os.path.realpath(path))
        if resolved != Path(os.path.abspath(path)) or not resolved.is_relative_to(root):
            raise _refuse(member, uri, "passes through a symbolic link; locations must stay "
                                       "inside their bucket folder.")

    # -- objects ---------------------------------------------------------------------------

    def list_objects(self, uri: str, member: str = "dataLocation", *, suffixes: tuple[str, ...] = ()) -> list[ObjectInfo]:
        """The objects a location names: the object itself, or every object under the prefix.

        S3 prefix rules: ``s3://b/data`` also matches ``s3://b/data_old/x``; a trailing ``/``
        keeps to the folder. Zero-byte objects and folder markers are skipped. With
        ``suffixes`` only keys ending in one of them (case-insensitive) are kept.
        """
        bucket, key = split_uri(uri, member)
        fs, path = self.filesystem(uri, member)
        base_uri = f"s3://{bucket}/"
        if self.uses_s3:
            bucket_path = bucket
        else:
            bucket_path = str(self.local_root / bucket)
            self.confine(fs, bucket_path, member, uri)
        parent = key.rsplit("/", 1)[0] if "/" in key else ""
        start = f"{bucket_path}/{parent}".rstrip("/")
        try:
            found = fs.find(start, detail=True, withdirs=False)
        except (FileNotFoundError, NotADirectoryError):
            found = {}
        except PermissionError as exc:
            raise _refuse(member, uri, f"cannot be read: {exc}.") from None
        out = []
        for fpath, info in sorted(found.items()):
            rel = fpath[len(bucket_path) + 1:] if fpath.startswith(bucket_path + "/") else None
            if rel is None or not rel.startswith(key) or rel.endswith("/"):
                continue
            if info.get("type") == "directory" or (not info.get("size") and rel != key):
                continue  # an empty object named exactly is kept, so that it can be reported
            if suffixes and not rel.lower().endswith(suffixes):
                continue
            if fs is self.local:
                self.confine(fs, fpath, member, base_uri + rel)
            out.append(ObjectInfo(uri=base_uri + rel, path=fpath, size=int(info["size"])))
        return out

    def open_input(self, obj: ObjectInfo, mode: str = "rb"):
        fs, _ = self.filesystem(obj.uri)
        return fs.open(obj.path, mode)

    def write_object(self, uri: str, member: str = "path", *, kms_key_arn: str | None = None):
        """A writable binary file for ``uri`` (buckets are folders on the embedded store).

        On S3 the object appears only when the file is closed, whole; ``kms_key_arn`` asks for
        SSE-KMS encryption with that key.
        """
        fs, path = self.filesystem(uri, member)
        if fs is self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.confine(fs, os.path.dirname(path), member, uri)
            self.confine(fs, path, member, uri)
            return fs.open(path, "wb")
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_arn} if kms_key_arn else {}
        return fs.open(path, "wb", **extra)

    def move(self, src_uri: str, dst_uri: str) -> None:
        """Publish ``src`` under ``dst`` (rename locally, copy then delete on S3)."""
        fs, src = self.filesystem(src_uri)
        _, dst = self.filesystem(dst_uri)
        if fs is self.local:
            os.makedirs(os.path.dirname(dst), exist_ok=True)  # a key's folders may not exist yet
        fs.mv(src, dst)

    def remove(self, uri: str) -> None:
        fs, path = self.filesystem(uri)
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

    def kms_for(self, folder_uri: str, kms_key_arn: str | None, member: str = "path") -> str | None:
        """``kms_key_arn`` if writes under ``folder_uri`` can use SSE-KMS, else None.

        AWS accepts SSE-KMS; some S3-compatible stores refuse it, and the embedded store has no
        encryption at rest to ask for. A small probe object finds out, and is removed.
        """
        if not kms_key_arn or not self.uses_s3:
            return None
        probe = f"{folder_uri.rstrip('/')}/.kms-probe-{os.urandom(4).hex()}"
        try:
            with self.write_object(probe, member, kms_key_arn=kms_key_arn) as fh:
                fh.write(b"probe")
        except OSError:
            return None
        finally:
            try:
                self.remove(probe)
            except OSError:
                pass
        return kms_key_arn

    def check_bucket(self, uri: str, member: str) -> None:
        """The bucket of an output location must exist on S3 (it is created on the embedded store)."""
        bucket, _ = split_uri(uri, member)
        if self.uses_s3 and not self.s3.exists(bucket):
            raise _refuse(member, uri, f"names bucket {bucket}, which does not exist.")

    # -- data root ------------------------------------------------------------------------

    @functools.cached_property
    def data_root(self) -> "DataRoot":
        root = self.settings.data_root
        if root.startswith("s3://"):
            fs, path = self.filesystem(root.rstrip("/") + "/", "data_root")
            return DataRoot(fs, path.rstrip("/"))
        base = Path(root) if root else Path(self.settings.data_dir) / "data"
        base.mkdir(parents=True, exist_ok=True)
        return DataRoot(self.local, str(base.resolve()))


@dataclass(frozen=True)
class DataRoot:
    """The folder (or S3 prefix) that holds dataset Parquet files and reports."""

    fs: fsspec.AbstractFileSystem
    base: str

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def open(self, rel: str, mode: str = "rb"):
        path = self.path(rel)
        if "w" in mode and isinstance(self.fs, LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return self.fs.open(path, mode)

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm(self.path(rel), recursive=True)
        except FileNotFoundError:
            pass

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def walk_files(self, rel: str) -> Iterator[str]:
        try:
            for path in self.fs.find(self.path(rel)):
                yield path[len(self.base) + 1:]
        except FileNotFoundError:
            return


@functools.lru_cache(maxsize=8)
def _storage_for(key: tuple) -> Storage:
    return Storage(Settings(**dict(key)))


def storage(settings: Settings) -> Storage:
    """The shared Storage for these settings (one filesystem client per configuration)."""
    fields = ("data_dir", "data_root", "s3_backend", "s3_endpoint_url", "s3_access_key_id",
              "s3_secret_access_key", "s3_region")
    return _storage_for(tuple((f, getattr(settings, f)) for f in fields))
