"""Byte streams: a file on disk or a zip member, plain or gzipped, as decompressed bytes.

- `FileRef`: one file to read (a path, or a member inside a zip); `display` is how errors name it.
- `open_stream`: a binary stream of its decompressed bytes (ISA-L gzip when installed: ~3x
  faster than zlib, same bytes; FERKAGGLE_GZIP=zlib forces zlib).
- `archive_errors`: what a damaged or unreadable file raises becomes one DataError naming it.
- `read_blocks`: the threaded block reader: a background thread decompresses 4 MiB blocks while
  the caller parses the previous one (decompression releases the GIL, so on two cores they overlap).
- `iter_lines`: lines of a small file (the id,emotion label file).
"""

from __future__ import annotations

import gzip
import os
import queue
import threading
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

from ferkaggle.core.errors import DataError

try:  # ISA-L inflates gzip ~3x faster than zlib; optional, same results (set FERKAGGLE_GZIP=zlib to compare)
    from isal import igzip as _isal_gzip
    from isal.isal_zlib import error as _IsalError
except ImportError:  # pragma: no cover - depends on the environment
    _isal_gzip = None
    _IsalError = zlib.error

_GZIP_ERRORS = (zlib.error, gzip.BadGzipFile, _IsalError)


def _gzip_reader(raw: BinaryIO) -> BinaryIO:
    if _isal_gzip is not None and os.environ.get("FERKAGGLE_GZIP", "").lower() != "zlib":
        return _isal_gzip.IGzipFile(fileobj=raw, mode="rb")
    return gzip.GzipFile(fileobj=raw, mode="rb")


READ_BLOCK = 4 << 20  # bytes decompressed per read: big enough to amortise Python, small for memory


@dataclass(frozen=True)
class FileRef:
    """One file to read: a path on disk, or a member inside a zip on disk; either may be .gz."""

    path: Path  # the file on disk (the zip, for a member)
    member: str | None = None  # name inside the zip, posix style

    @property
    def display(self) -> str:
        """How errors name the file: `data/x.zip:fer2013/fer2013.csv` for a zip member."""
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return PurePosixPath(self.member).name if self.member else self.path.name

    @property
    def gzipped(self) -> bool:
        return self.name.lower().endswith(".gz")


@contextmanager
def open_stream(ref: FileRef) -> Iterator[BinaryIO]:
    """Yield a binary stream of the file's (decompressed) bytes; archive errors become DataError."""
    with archive_errors(ref, opening=True):
        if ref.member is None:
            raw: BinaryIO = open(ref.path, "rb")
            archive = None
        else:
            archive = zipfile.ZipFile(ref.path)
            raw = archive.open(ref.member)
    with archive_errors(ref):
        try:
            yield _gzip_reader(raw) if ref.gzipped else raw
        finally:
            raw.close()
            if archive is not None:
                archive.close()


@contextmanager
def archive_errors(ref: FileRef, opening: bool = False) -> Iterator[None]:
    """Turn what a damaged or unreadable file raises into one DataError naming it.

    KeyError is only translated while opening (a zip member not found): later it would be a bug.
    """
    try:
        yield
    except DataError:
        raise
    except EOFError:
        raise DataError(ref.display, "compressed file is truncated (ended before its end marker); download it again") from None
    except _GZIP_ERRORS as exc:
        raise DataError(ref.display, f"corrupt gzip data ({exc}); download it again") from None
    except zipfile.BadZipFile as exc:
        raise DataError(ref.path, f"not a valid zip file or damaged ({exc})") from None
    except KeyError as exc:
        if not opening:
            raise
        raise DataError(ref.display, f"not found in the zip ({exc})") from None
    except IsADirectoryError:
        raise DataError(ref.display, "is a folder, expected a file") from None
    except OSError as exc:
        raise DataError(ref.display, f"cannot read: {exc.strerror or exc}") from None


def iter_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the lines of a stream without their line end (LF or CRLF), including empty ones.

    Used for the small id,emotion label file; pixel tables go through read_blocks.
    """
    carry = b""
    while True:
        block = stream.read(READ_BLOCK)
        if not block:
            break
        lines = (carry + block).split(b"\n") if carry else block.split(b"\n")
        carry = lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if carry:
        yield carry[:-1] if carry.endswith(b"\r") else carry


@contextmanager
def read_blocks(ref: FileRef) -> Iterator[Iterator[bytes]]:
    """Yield an iterator over decompressed blocks, read by a background thread.

    Decompression (zlib or ISA-L) releases the GIL, so on two cores it overlaps the parsing of
    the previous block. Errors raised while reading are re-raised in the caller's thread.
    """
    end = object()
    pending: queue.Queue = queue.Queue(maxsize=3)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            with open_stream(ref) as stream:
                while not stop.is_set():
                    block = stream.read(READ_BLOCK)
                    if not block:
                        break
                    put(block)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)
        finally:
            put(end)

    def consume() -> Iterator[bytes]:
        while True:
            item = pending.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    thread = threading.Thread(target=produce, name=f"read {ref.name}", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()

