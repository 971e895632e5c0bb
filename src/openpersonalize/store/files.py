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
through a symbolic link is refused too, by every operation (read, write, move, remove, list and
the folders a write creates), before it touches anything: paths are walked one folder at a time
without following links, so a link that appears after the check cannot redirect the operation
either. A listing never descends into a link, so it never names what lies beyond one. All
refusals are ``InvalidInputException`` naming the member and the s3:// location; other errors of
the embedded store name s3:// locations too, never the data folder's own paths.

The data root (``data_root`` setting; default ``<data_dir>/data``) is where dataset rows live as
Parquet; it may itself be an ``s3://`` prefix.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import stat
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..config import Settings
from ..errors import InvalidInputException

_URI = re.compile(r"s3://(?P<bucket>[A-Za-z0-9][A-Za-z0-9.\-_]{0,254})(?:/(?P<key>.*))?", re.DOTALL)
_BAD_KEY_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")


def _refuse(member: str, uri: str, rule: str, kind: type = InvalidInputException) -> InvalidInputException:
    shown = uri if len(uri) <= 200 else uri[:200] + "..."
    return kind(f"Invalid {member}: '{shown}' {rule}")


class LinkRefused(InvalidInputException):
    """A location passes through a symbolic link on the embedded store."""


class NotAFolder(InvalidInputException):
    """A location needs a folder where the embedded store has an object."""


class _Vanished(Exception):
    """A folder was removed while a path was being created under it."""


# Folders are opened one at a time, never through a link; files never through a link either, and
# without blocking on a pipe someone put in a bucket folder.
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _location(parts: list[str]) -> str:
    """The s3:// location of a bucket folder's path parts (how errors name it)."""
    return "s3://" + "/".join(parts)


def _located(exc: OSError, parts: list[str]) -> OSError:
    """The same OS error, naming the s3:// location rather than a path of the data folder."""
    return OSError(exc.errno, exc.strerror or str(exc), _location(parts))


def _link_rule(link: str, uri: str) -> str:
    where = "is a symbolic link" if link.rstrip("/") == uri.rstrip("/") else f"passes through a symbolic link ({link})"
    return f"{where}; locations must stay inside their bucket folder."


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

    # -- the embedded store, one folder at a time ----------------------------------------
    #
    # Every local operation walks from the root to its target one folder at a time, opening each
    # folder relative to the one before with O_NOFOLLOW. A symbolic link anywhere on the way is
    # refused before anything is created, written, moved or deleted, and a link put in place
    # between the check and the operation cannot redirect it: the operation works on the folder
    # already opened, never on a path that is looked up again. Errors name s3:// locations, never
    # the data folder's own paths.

    def _parts(self, uri: str, member: str) -> list[str]:
        bucket, key = split_uri(uri, member)
        return [bucket, *(s for s in key.split("/") if s)]

    def _open_root(self, create: bool) -> int:
        if create:
            self.local_root.mkdir(parents=True, exist_ok=True)
        return os.open(self.local_root, _DIR_FLAGS)

    def _open_folder(self, parts: list[str], uri: str, member: str, *, create: bool = False) -> int:
        """A descriptor of the folder ``parts`` under the root, created if ``create`` (links refused).

        A missing folder is ``FileNotFoundError`` naming its location when not ``create``.
        """
        for _ in range(3):  # a folder another job removed while we created under it: start again
            try:
                return self._walk(parts, uri, member, create)
            except _Vanished:
                continue
        return self._walk(parts, uri, member, create)

    def _walk(self, parts: list[str], uri: str, member: str, create: bool) -> int:
        try:
            fd = self._open_root(create)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "No such bucket", _location(parts[:1])) from None
        try:
            for i, name in enumerate(parts):
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise FileNotFoundError(errno.ENOENT, "No such folder", _location(parts[:i + 1])) from None
                    try:
                        os.mkdir(name, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                    except FileNotFoundError:  # the folder we stand in was removed meanwhile
                        raise _Vanished() from None
                    except OSError as exc:
                        raise _located(exc, parts[:i + 1]) from None
                    try:
                        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except OSError as exc:
                        self._explain(fd, name, parts[:i + 1], uri, member, exc)
                except OSError as exc:
                    self._explain(fd, name, parts[:i + 1], uri, member, exc)
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _explain(self, parent_fd: int, name: str, parts: list[str], uri: str, member: str,
                 exc: OSError) -> typing.NoReturn:
        """Raise the reason ``name`` (in ``parent_fd``) could not be opened: a link or a
        non-folder is refused; anything else is the OS error, named by its location."""
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except OSError:
            st = None
        here = _location(parts)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise _refuse(member, uri, _link_rule(here, uri), LinkRefused) from None
        if st is not None and not stat.S_ISDIR(st.st_mode) and len(parts) < len(self._parts(uri, member)):
            raise _refuse(member, uri, f"needs {here} to be a folder, and it is an object.", NotAFolder) from None
        raise _located(exc, parts) from None

    def _open_local(self, uri: str, member: str, *, write: bool):
        """A file object for an object on the embedded store (created or emptied when ``write``)."""
        parts = self._parts(uri, member)
        if len(parts) < 2:
            raise _refuse(member, uri, "names a bucket, not an object.")
        folder = self._open_folder(parts[:-1], uri, member, create=write)
        flags = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC if write else os.O_RDONLY) | _FILE_FLAGS
        try:
            try:
                fd = os.open(parts[-1], flags, 0o666, dir_fd=folder)
            except OSError as exc:
                self._explain(folder, parts[-1], parts, uri, member, exc)
        finally:
            os.close(folder)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a pipe, a device
                raise _refuse(member, uri, "is not an object: it is a folder or a special file.")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "wb" if write else "rb")

    def _entry(self, parts: list[str], uri: str, member: str, *, create: bool = False
               ) -> tuple[int, os.stat_result | None]:
        """``(descriptor of the parent folder, lstat of the last part or None if it is absent)``;
        a link as the last part is refused."""
        folder = self._open_folder(parts[:-1], uri, member, create=create)
        try:
            st = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            return folder, None
        except OSError as exc:
            os.close(folder)
            raise _located(exc, parts) from None
        if stat.S_ISLNK(st.st_mode):
            os.close(folder)
            raise _refuse(member, uri, _link_rule(_location(parts), uri), LinkRefused)
        return folder, st

    def _list_local(self, bucket: str, key: str, member: str, uri: str,
                    suffixes: tuple[str, ...]) -> list[ObjectInfo]:
        parent = key.rsplit("/", 1)[0] if "/" in key else ""
        start = [bucket, *(s for s in parent.split("/") if s)]
        try:
            fd = self._open_folder(start, uri, member)
        except (FileNotFoundError, NotADirectoryError, NotAFolder):  # nothing can be there
            return []
        found: list[tuple[str, int]] = []

        def relevant(rel: str) -> bool:  # rel names the key's objects, or a folder on the way
            return rel.startswith(key) or key.startswith(rel + "/")

        def walk(folder: int, prefix: str) -> None:
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError as exc:
                raise _refuse(member, uri, f"cannot be read: {exc.strerror}.") from None
            for e in entries:
                rel = f"{prefix}/{e.name}" if prefix else e.name
                if not relevant(rel):
                    continue
                if e.is_symlink():  # refused, and never followed: nothing beyond it is named
                    raise _refuse(member, uri, _link_rule(f"s3://{bucket}/{rel}", uri), LinkRefused)
                if e.is_dir(follow_symlinks=False):
                    if (rel + "/").startswith(key) or key.startswith(rel + "/"):
                        try:
                            child = os.open(e.name, _DIR_FLAGS, dir_fd=folder)
                        except OSError as exc:
                            self._explain(folder, e.name, [bucket, *rel.split("/")], uri, member, exc)
                        try:
                            walk(child, rel)
                        finally:
                            os.close(child)
                elif e.is_file(follow_symlinks=False) and rel.startswith(key):
                    size = e.stat(follow_symlinks=False).st_size
                    if not size and rel != key:
                        continue  # an empty object named exactly is kept, so that it can be reported
                    if suffixes and not rel.lower().endswith(suffixes):
                        continue
                    found.append((rel, size))

        try:
            walk(fd, parent)
        finally:
            os.close(fd)
        base = self.local_root / bucket
        return [ObjectInfo(uri=f"s3://{bucket}/{rel}", path=str(base / rel), size=size)
                for rel, size in sorted(found)]

    def check_confined(self, uri: str, member: str = "path") -> None:
        """Refuse a location whose existing part passes through a symbolic link (embedded store).

        For checks made before a job starts; every operation checks again when it runs."""
        split_uri(uri, member)
        if self.uses_s3:
            return
        try:
            os.close(self._open_folder(self._parts(uri, member), uri, member))
        except LinkRefused:
            raise
        except (OSError, NotAFolder):
            pass  # the rest does not exist yet, or is an object: no link on the way

    # -- objects ---------------------------------------------------------------------------

    def list_objects(self, uri: str, member: str = "dataLocation", *, suffixes: tuple[str, ...] = ()) -> list[ObjectInfo]:
        """The objects a location names: the object itself, or every object under the prefix.

        S3 prefix rules: ``s3://b/data`` also matches ``s3://b/data_old/x``; a trailing ``/``
        keeps to the folder. Zero-byte objects and folder markers are skipped. With
        ``suffixes`` only keys ending in one of them (case-insensitive) are kept. On the
        embedded store a symbolic link among the matches (or on the way to them) is refused and
        never followed.
        """
        bucket, key = split_uri(uri, member)
        if not self.uses_s3:
            return self._list_local(bucket, key, member, uri, suffixes)
        fs = self.s3
        base_uri = f"s3://{bucket}/"
        parent = key.rsplit("/", 1)[0] if "/" in key else ""
        start = f"{bucket}/{parent}".rstrip("/")
        try:
            found = fs.find(start, detail=True, withdirs=False)
        except (FileNotFoundError, NotADirectoryError):
            found = {}
        except PermissionError as exc:
            raise _refuse(member, uri, f"cannot be read: {exc.strerror or 'access denied'}.") from None
        out = []
        for fpath, info in sorted(found.items()):
            rel = fpath[len(bucket) + 1:] if fpath.startswith(bucket + "/") else None
            if rel is None or not rel.startswith(key) or rel.endswith("/"):
                continue
            if info.get("type") == "directory" or (not info.get("size") and rel != key):
                continue  # an empty object named exactly is kept, so that it can be reported
            if suffixes and not rel.lower().endswith(suffixes):
                continue
            out.append(ObjectInfo(uri=base_uri + rel, path=fpath, size=int(info["size"])))
        return out

    def open_input(self, obj: ObjectInfo, mode: str = "rb", member: str = "path"):
        """A readable binary file for a listed object."""
        if not self.uses_s3:
            return self._open_local(obj.uri, member, write=False)
        fs, path = self.filesystem(obj.uri, member)
        return fs.open(path, mode)

    def write_object(self, uri: str, member: str = "path", *, kms_key_arn: str | None = None):
        """A writable binary file for ``uri`` (buckets are folders on the embedded store).

        On S3 the object appears only when the file is closed, whole; ``kms_key_arn`` asks for
        SSE-KMS encryption with that key.
        """
        if not self.uses_s3:
            return self._open_local(uri, member, write=True)
        fs, path = self.filesystem(uri, member)
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_arn} if kms_key_arn else {}
        return fs.open(path, "wb", **extra)

    def move(self, src_uri: str, dst_uri: str, member: str = "path") -> None:
        """Publish ``src`` under ``dst`` (rename locally, copy then delete on S3)."""
        if self.uses_s3:
            fs, src = self.filesystem(src_uri, member)
            _, dst = self.filesystem(dst_uri, member)
            fs.mv(src, dst)
            return
        sp, dp = self._parts(src_uri, member), self._parts(dst_uri, member)
        if len(sp) < 2 or len(dp) < 2:
            raise _refuse(member, dst_uri if len(dp) < 2 else src_uri, "names a bucket, not an object.")
        src_folder, st = self._entry(sp, src_uri, member)
        try:
            if st is None:
                raise FileNotFoundError(errno.ENOENT, "No such object", src_uri)
            if not stat.S_ISREG(st.st_mode):
                raise _refuse(member, src_uri, "is not an object: it is a folder or a special file.")
            dst_folder, dst_st = self._entry(dp, dst_uri, member, create=True)
            try:
                if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
                    raise _refuse(member, dst_uri, "is a folder; an object cannot replace it.")
                try:
                    os.rename(sp[-1], dp[-1], src_dir_fd=src_folder, dst_dir_fd=dst_folder)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise _located(exc, dp) from None
                    self._copy_across(src_folder, sp[-1], dst_folder, dp[-1], dst_uri)
            finally:
                os.close(dst_folder)
        finally:
            os.close(src_folder)

    @staticmethod
    def _copy_across(src_folder: int, src: str, dst_folder: int, dst: str, dst_uri: str) -> None:
        """A move between two file systems (a bucket folder can be a mount point): copy, then delete."""
        try:
            fin = os.open(src, os.O_RDONLY | _FILE_FLAGS, dir_fd=src_folder)
            with os.fdopen(fin, "rb") as a:
                fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _FILE_FLAGS, 0o666, dir_fd=dst_folder)
                with os.fdopen(fout, "wb") as b:
                    shutil.copyfileobj(a, b, 1 << 20)
            os.unlink(src, dir_fd=src_folder)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, dst_uri) from None

    def remove(self, uri: str, member: str = "path") -> None:
        """Delete an object, or a folder with everything in it (nothing if absent).

        On the embedded store a link on the way, or as the target, is refused; links inside a
        removed folder are removed themselves, never followed."""
        if self.uses_s3:
            fs, path = self.filesystem(uri, member)
            try:
                fs.rm(path, recursive=True)
            except FileNotFoundError:
                pass
            return
        parts = self._parts(uri, member)
        if len(parts) < 2:
            raise _refuse(member, uri, "names a whole bucket, which is never removed.")
        try:
            folder, st = self._entry(parts, uri, member)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            if st is None:
                return
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(parts[-1], dir_fd=folder)  # descriptor-based: never follows a link
            else:
                os.unlink(parts[-1], dir_fd=folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, uri) from None
        finally:
            os.close(folder)

    def remove_empty_folder(self, uri: str, member: str = "path") -> bool:
        """Remove the folder ``uri`` if it holds nothing (S3 has no folders: nothing to do).
        True if the folder is gone (or was never there)."""
        if self.uses_s3:
            return True
        parts = self._parts(uri, member)
        if len(parts) < 2:
            return False
        try:
            folder, st = self._entry(parts, uri, member)
        except (FileNotFoundError, NotADirectoryError):
            return True
        try:
            if st is None:
                return True
            if not stat.S_ISDIR(st.st_mode):
                return False
            os.rmdir(parts[-1], dir_fd=folder)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise OSError(exc.errno, exc.strerror, uri) from None
        finally:
            os.close(folder)

    def children(self, folder_uri: str, member: str = "path") -> list[str]:
        """The names directly under a folder (objects and folders; none if it is absent).

        On the embedded store, links are listed by name and never followed."""
        if self.uses_s3:
            fs, path = self.filesystem(folder_uri.rstrip("/") + "/", member)
            try:
                return sorted({p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)})
            except (FileNotFoundError, NotADirectoryError):
                return []
        parts = self._parts(folder_uri, member)
        try:
            folder = self._open_folder(parts, folder_uri, member)
        except (FileNotFoundError, NotADirectoryError):
            return []
        try:
            with os.scandir(folder) as it:
                return sorted(e.name for e in it)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, folder_uri) from None
        finally:
            os.close(folder)

    def folder_exists(self, uri: str, member: str = "path") -> bool:
        """Whether the folder ``uri`` exists on the embedded store (always False on S3, which
        has none)."""
        if self.uses_s3:
            return False
        try:
            os.close(self._open_folder(self._parts(uri, member), uri, member))
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False

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
