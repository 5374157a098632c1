"""Read every competition layout into validated uint8 arrays, fast.

Inputs: a folder, a zip or a single file holding one of these layouts (column names match
ignoring case and surrounding spaces; each file may be plain, `.csv.gz`, or inside a zip, with
LF or CRLF line ends and an optional UTF-8 byte-order mark):

- Kaggle competition: `train.csv` (emotion,pixels) + `test.csv` (id,pixels or pixels alone),
  optionally `test_labels.csv` (id,emotion) beside test.csv;
- `fer2013.csv` (emotion,pixels,Usage) or its twin `icml_face_data.csv` (emotion, Usage, pixels):
  Training + PublicTest rows are the labelled set (PublicTest marked as predefined validation),
  PrivateTest rows are the (labelled) test set;
- image folders `train/<class>/*` and `test/<class>/*` or a flat `test/*` (see images.py).

Output: a `RawData` with x uint8 [N,48,48], y int8 [N], x_test uint8 [M,48,48], test_ids int64 [M]
and the optional test labels / predefined validation mask, plus what was skipped and notes.

Every problem a user can cause raises `DataError(file, message, line)` with the 1-based line an
editor shows (header = line 1). With `on_bad_row="skip"` bad rows are dropped and listed instead;
structural problems (missing column, empty file, corrupt archive) always raise.

Speed: pixel strings are parsed with vectorised numpy over whole chunks of rows (no per-pixel
Python); a row the fast path rejects is re-read by a slow, exact path that either accepts it
(odd whitespace) or says precisely what is wrong. Files are streamed, so memory stays small.
"""

from __future__ import annotations

import gzip
import os
import queue
import threading
import zipfile
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator

import numpy as np

from ferkaggle import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS
from ferkaggle.errors import DataError, FerkaggleError

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

DEFAULT_FOLDER = Path("data")
BAD_ROW_MODES = ("error", "skip")

LAYOUT_KAGGLE = "Kaggle CSV (train.csv + test.csv)"
LAYOUT_FER2013 = "fer2013.csv (emotion,pixels,Usage)"
LAYOUT_ICML = "icml_face_data.csv (emotion, Usage, pixels)"
LAYOUT_IMAGES = "image folders (train/<class>, test/<class>)"

# Names are matched case-insensitively; each may also end in .gz.
TRAIN_NAMES = ("train.csv",)
TEST_NAMES = ("test.csv",)
TEST_LABEL_NAMES = ("test_labels.csv",)
FER2013_NAMES = ("fer2013.csv", "icml_face_data.csv")

USAGE_VALUES = {"training": 0, "publictest": 1, "privatetest": 2}
_USAGE_TRAINING, _USAGE_PUBLIC, _USAGE_PRIVATE = 0, 1, 2

_READ_BLOCK = 4 << 20  # bytes decompressed per read: big enough to amortise Python, small for memory


def _decode_workers() -> int:
    """Threads decoding pixel blocks side by side (numpy releases the GIL while it works).

    2 by default (1 on a 1-CPU machine), besides the thread that decompresses; set
    FERKAGGLE_DECODE_THREADS=1 to decode in the calling thread only.
    """
    value = os.environ.get("FERKAGGLE_DECODE_THREADS", "")
    if value.strip().isdigit() and int(value) >= 1:
        return int(value)
    return min(2, os.cpu_count() or 1)
_SPACE, _ZERO = 32, 48
_UNREAD = -1  # a column value that could not be parsed (its row is bad)


@dataclass
class RawData:
    layout: str  # shown on screen, e.g. "Kaggle CSV (train.csv + test.csv)"
    sources: list[Path]  # every file actually read (csv / gz / zip paths; folders for image layouts)
    x: np.ndarray  # uint8 [N,48,48] labelled rows in source order
    y: np.ndarray  # int8 [N] labels 0..6
    x_test: np.ndarray  # uint8 [M,48,48]
    test_ids: np.ndarray  # int64 [M]
    y_test: np.ndarray | None = None  # int8 [M] when the source labels its test set
    predefined_val: np.ndarray | None = None  # bool [N]: rows the source marks as validation
    skipped: list[dict] = field(default_factory=list)  # {"file": str, "line": int, "reason": str}
    notes: list[str] = field(default_factory=list)  # things to tell the user
    test_id_source: str = ""  # how the test ids were formed, for the manifest
    test_files: list[str] | None = None  # image layouts: the file of each test row, in x_test order


# --------------------------------------------------------------------------------------------
# Files: plain, gzip, or a member of a zip, streamed as decompressed bytes


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
    with _archive_errors(ref, opening=True):
        if ref.member is None:
            raw: BinaryIO = open(ref.path, "rb")
            archive = None
        else:
            archive = zipfile.ZipFile(ref.path)
            raw = archive.open(ref.member)
    with _archive_errors(ref):
        try:
            yield _gzip_reader(raw) if ref.gzipped else raw
        finally:
            raw.close()
            if archive is not None:
                archive.close()


@contextmanager
def _archive_errors(ref: FileRef, opening: bool = False) -> Iterator[None]:
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


def _iter_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the lines of a stream without their line end (LF or CRLF), including empty ones.

    Used for the small id,emotion label file; pixel tables go through read_table's block reader.
    """
    carry = b""
    while True:
        block = stream.read(_READ_BLOCK)
        if not block:
            break
        lines = (carry + block).split(b"\n") if carry else block.split(b"\n")
        carry = lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if carry:
        yield carry[:-1] if carry.endswith(b"\r") else carry


def _clean_field(raw: bytes) -> bytes:
    """A CSV field without surrounding spaces or quotes (pixels never contain commas or quotes)."""
    raw = raw.strip()
    if raw[:1] == b'"' and raw[-1:] == b'"':
        raw = raw[1:-1].strip()
    return raw


def _show(raw: bytes, limit: int = 20) -> str:
    text = raw.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --------------------------------------------------------------------------------------------
# Pixels: vectorised fast path, exact slow path for the rows it rejects


def _parse_pixels_slow(raw: bytes) -> np.ndarray | str:
    """Parse one row exactly: an array of 2,304 values, or a message saying what is wrong."""
    tokens = raw.split()
    if len(tokens) != NUM_PIXELS:
        return f"expected {NUM_PIXELS:,} pixel values, found {len(tokens):,}"
    for position, token in enumerate(tokens, start=1):
        if not token.isdigit() or int(token) > 255:
            return f"pixel {position:,} is {_show(token)}: expected an integer 0-255"
    return np.array([int(token) for token in tokens], dtype=np.uint8)


def _digits_before(padded: np.ndarray, base: int, separators: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 3 bytes before each separator, minus ord('0'): (ones, tens, hundreds), uint8.

    `padded[base + s]` is the separator at position s, so `base` >= 3. Three 1-byte gathers
    from a contiguous array take numpy's fast path (a wider unaligned gather does not).
    A byte that is not a digit comes out >= 10 (uint8 wraps: space -> 240, NUL -> 208).
    """
    ones = np.take(padded[base - 1:], separators)
    tens = np.take(padded[base - 2:], separators)
    hundreds = np.take(padded[base - 3:], separators)
    ones -= _ZERO
    tens -= _ZERO
    hundreds -= _ZERO
    return ones, tens, hundreds


def _decode_tokens(padded: np.ndarray, base: int, separators: np.ndarray) -> tuple[np.ndarray, int, bool]:
    """(values, decoded byte count, all plausible) of the tokens ending before each separator.

    A token is decoded from its last 1-3 bytes: the trailing run of digits (at most 3) before
    the separator, with plain uint8 arithmetic, no lookup table. Checked here: the last byte is
    a digit (no empty token) and the value is at most 255. Not checked here: that the token is
    no longer than its digit run (a 4th digit, "-4", "1.5"): the caller compares the decoded
    byte count, which equals the text's token bytes iff every token was decoded whole.
    """
    count = len(separators)
    if count == 0:
        return np.zeros(0, np.uint8), 0, True
    ones, tens, hundreds = _digits_before(padded, base, separators)
    has_tens = tens < 10
    has_hundreds = hundreds < 10
    has_hundreds &= has_tens
    decoded_bytes = count + int(np.count_nonzero(has_tens)) + int(np.count_nonzero(has_hundreds))
    tens *= has_tens
    hundreds *= has_hundreds
    plausible = int(ones.max()) < 10 and int(hundreds.max()) <= 2
    tens *= 10
    tens += ones  # 0..99
    hundreds *= 100
    hundreds += tens  # wraps (ends below tens) iff the value is over 255
    plausible = plausible and not bool((hundreds < tens).any())
    return hundreds, decoded_bytes, plausible


def _bad_tokens(padded: np.ndarray, base: int, separators: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Mask of invalid tokens, given each token's first byte position (the rare, exact path)."""
    ones, tens, hundreds = _digits_before(padded, base, separators)
    has_tens = tens < 10
    has_hundreds = has_tens & (hundreds < 10)
    length = 1 + has_tens.astype(np.int64) + has_hundreds
    value = ones.astype(np.int64) + 10 * (tens * has_tens) + 100 * (hundreds.astype(np.int64) * has_hundreds)
    return (ones >= 10) | (length != separators - starts) | (value > 255)


def parse_pixel_rows(fields: list[bytes]) -> tuple[np.ndarray, dict[int, str]]:
    """Parse space-separated pixel strings into uint8 [n, 2304]; return (array, {row: problem}).

    Rows with a problem are left as zeros. The fast path joins the rows with single spaces and
    decodes every token at once; rows it cannot take (wrong token count, odd whitespace, bad
    values) go through the exact slow path, which either accepts them or says what is wrong.
    """
    count = len(fields)
    if count == 0:
        return np.zeros((0, NUM_PIXELS), np.uint8), {}
    joined = b"\0\0\0\0" + b" ".join(fields) + b" "
    padded = np.frombuffer(joined, np.uint8)
    separators = np.flatnonzero(padded[4:] == _SPACE)
    lengths = np.fromiter((len(f) + 1 for f in fields), np.int64, count)
    row_last = np.cumsum(lengths) - 1  # position of each row's trailing separator
    return _parse_spans(padded, 4, separators, row_last, row_last - lengths + 1, fields.__getitem__)


def _parse_spans(padded: np.ndarray, base: int, separators: np.ndarray, row_last: np.ndarray,
                 row_first: np.ndarray, get) -> tuple[np.ndarray, dict[int, str]]:
    """Decode rows whose pixel text spans [row_first[r], row_last[r]], row_last being a separator.

    Positions are relative to `base` in `padded` (padded[base + s] is position s) and
    `separators` are all the separator positions in the region, sorted. The byte before each
    row's text must not be a digit (the reader writes a NUL there). `get(r)` gives a row's
    pixel bytes for the exact slow path.
    """
    count = len(row_last)
    problems: dict[int, str] = {}
    # Every row has exactly 2,304 separators iff the total matches, each row's last one is
    # where its text ends and its first is inside it: then token k belongs to row k // 2304.
    aligned = (len(separators) == count * NUM_PIXELS
               and np.array_equal(separators[NUM_PIXELS - 1::NUM_PIXELS], row_last)
               and bool((separators[::NUM_PIXELS] >= row_first).all()))
    slow: list[int] = []
    if aligned:
        text_bytes = int((row_last - row_first).sum()) - (NUM_PIXELS - 1) * count
        values, decoded_bytes, plausible = _decode_tokens(padded, base, separators)
        out = values.reshape(count, NUM_PIXELS)  # no copy
        if not plausible or decoded_bytes != text_bytes:
            token_starts = np.empty_like(separators)
            token_starts[0] = row_first[0]
            token_starts[1:] = separators[:-1] + 1
            token_starts[::NUM_PIXELS] = row_first
            bad = _bad_tokens(padded, base, separators, token_starts)
            slow = np.unique(np.flatnonzero(bad) // NUM_PIXELS).tolist()
    else:
        # Rare: some row has the wrong number of tokens or stray spaces. Count per row; rows
        # that look right are decoded (checked token by token), the rest take the slow path.
        first_index = np.searchsorted(separators, row_first, side="left")
        last_index = np.searchsorted(separators, row_last, side="right")
        good = ((last_index - first_index) == NUM_PIXELS) & (last_index > 0)
        good &= separators[np.maximum(last_index - 1, 0)] == row_last
        slow = np.flatnonzero(~good).tolist()
        good_rows = np.flatnonzero(good)
        out = np.zeros((count, NUM_PIXELS), np.uint8)
        if len(good_rows):
            take = (first_index[good_rows][:, None] + np.arange(NUM_PIXELS)[None, :]).ravel()
            chosen = separators[take]
            token_starts = np.empty_like(chosen)
            token_starts[1:] = chosen[:-1] + 1
            token_starts[::NUM_PIXELS] = row_first[good_rows]
            values, _, _ = _decode_tokens(padded, base, chosen)
            out[good_rows] = values.reshape(len(good_rows), NUM_PIXELS)
            bad = _bad_tokens(padded, base, chosen, token_starts)
            if bad.any():
                slow = sorted(set(slow) | set(good_rows[np.unique(np.flatnonzero(bad) // NUM_PIXELS)].tolist()))
    for row in slow:
        parsed = _parse_pixels_slow(get(row))
        if isinstance(parsed, str):
            problems[row] = parsed
            out[row] = 0
        else:
            out[row] = parsed
    return out, problems


# --------------------------------------------------------------------------------------------
# CSV tables


@dataclass
class _Table:
    """The parsed content of one CSV file; optional columns are None when the file lacks them."""

    pixels: np.ndarray  # uint8 [n,48,48]
    lines: np.ndarray  # int64 [n] file line of each row
    emotion: np.ndarray | None = None  # int8 [n]
    ids: np.ndarray | None = None  # int64 [n]
    usage: np.ndarray | None = None  # int8 [n]: 0 Training, 1 PublicTest, 2 PrivateTest
    header: list[str] = field(default_factory=list)  # column names as written


def _parse_label(raw: bytes) -> int | str:
    if raw.isdigit() and len(raw) <= 3 and int(raw) < NUM_CLASSES:
        return int(raw)
    return f"emotion is {_show(raw)}: expected an integer 0-{NUM_CLASSES - 1}"


def _parse_id(raw: bytes) -> int | str:
    try:
        return int(raw)
    except ValueError:
        return f"id is {_show(raw)}: expected an integer"


def _parse_usage(raw: bytes) -> int | str:
    code = USAGE_VALUES.get(raw.decode("utf-8", errors="replace").strip().lower())
    if code is None:
        return f"Usage is {_show(raw)}: expected Training, PublicTest or PrivateTest"
    return code


_PARSERS = {"emotion": _parse_label, "id": _parse_id, "usage": _parse_usage}


def check_on_bad_row(value: str) -> str:
    """The one check of the --on-bad-row value (error or skip); returns it."""
    if value not in BAD_ROW_MODES:
        raise FerkaggleError(f"--on-bad-row must be one of {', '.join(BAD_ROW_MODES)}, not {value!r}")
    return value


TEST_ROW_NEVER_SKIPPED = ("a test row is never skipped, even with --on-bad-row skip (which applies to labelled "
                          "rows only): every test id needs a prediction, so fix the row")


class _BadRows:
    """Where bad rows go: raised at once (on_bad_row="error") or recorded and dropped ("skip").

    A test row (or a row that may be one: a fer2013 row whose Usage cannot be read) always
    raises, whatever the mode: dropping it would leave its id without a prediction.
    """

    def __init__(self, on_bad_row: str, skipped: list[dict]):
        self.skip = check_on_bad_row(on_bad_row) == "skip"
        self.skipped = skipped

    def report(self, file: str, line: int | None, reason: str, test_row: bool = False) -> None:
        """line is None for an image file (it has no line)."""
        if test_row and self.skip:
            raise DataError(file, f"{reason}; {TEST_ROW_NEVER_SKIPPED}", line)
        if not self.skip:
            raise DataError(file, reason, line)
        self.skipped.append({"file": file, "line": None if line is None else int(line), "reason": reason})


_STRIP_BYTES = frozenset(b' \t"')


def _header_names(raw: bytes) -> list[str]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # UTF-8 byte-order mark (Excel, some Windows tools)
    return [h.decode("utf-8", errors="replace").strip().strip('"').strip() for h in raw.split(b",")]


@contextmanager
def _blocks(ref: FileRef) -> Iterator[Iterator[bytes]]:
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
                    block = stream.read(_READ_BLOCK)
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


def _split_rows_fast(buffer: bytearray, padded: np.ndarray, start: int, stop: int, count: int, pixel_at: int):
    """Field bounds of the lines in buffer[start:stop] (each ends with LF), or None if irregular.

    For the common case: every line has at least `count` fields (count - 1 commas), a non-empty
    pixel field with no surrounding spaces or quotes, and no blank line. Returns (field_starts,
    field_ends): int64 [count, rows] positions relative to `start`. Anything else (None) goes
    through the general per-line loop, which says exactly what is wrong. Newlines and commas
    are found with bytes.find (memchr), faster here than two numpy passes over the block.
    """
    find = buffer.find
    newlines: list[int] = []
    at = find(b"\n", start, stop)
    while at >= 0:
        newlines.append(at)
        at = find(b"\n", at + 1, stop)
    rows = len(newlines)
    if rows == 0:
        return None
    line_start = [start] + [n + 1 for n in newlines[:-1]]
    commas: list[list[int]] = []
    previous = line_start
    for _ in range(count - 1):  # the k-th comma of each line, within the line
        previous = [find(b",", at, end) for at, end in zip(previous, newlines)]
        if min(previous) < 0:
            return None
        commas.append(previous)
        previous = [at + 1 for at in previous]
    # Each line holds at least count-1 commas. More would put a comma in its last field, which
    # no column accepts (digits, spaces, quotes or a Usage word): the row fails, and
    # process_fast then reports it as having too many fields, like the general loop.
    newline_at = np.asarray(newlines, np.int64) - start
    line_end = newline_at - (padded[start - 1 + newline_at] == 13)
    starts, ends = np.empty((count, rows), np.int64), np.empty((count, rows), np.int64)
    starts[0] = np.asarray(line_start, np.int64) - start
    ends[-1] = line_end
    if count > 1:
        grouped = np.asarray(commas, np.int64) - start
        starts[1:] = grouped + 1
        ends[:-1] = grouped
    first, last = starts[pixel_at], ends[pixel_at]
    if not (last > first).all():
        return None
    for edge in (padded[start + first], padded[start + last - 1]):
        if ((edge == _SPACE) | (edge == 9) | (edge == 34)).any():
            return None
    return starts, ends


def read_table(ref: FileRef, required: tuple[str, ...], optional: tuple[str, ...] = (),
               bad_rows: _BadRows | None = None, test_rows: bool = False) -> _Table:
    """Read one CSV file with a header into arrays, validating every row.

    `required` columns must be present (else DataError naming found and expected columns);
    `optional` ones are read when present. Known columns: pixels, emotion, id, usage.
    A bad row is a test row, never skipped, when `test_rows` is set (a test file) or when its
    Usage is PrivateTest or cannot be read (fer2013: it may be a test row).

    How: decompressed blocks are cut at their last newline. Lines and fields are found with
    bytes.find in a few list comprehensions when every line is regular, else by a general
    Python loop per line; then the pixel text of all rows in the block is decoded in place with
    numpy, without copying it out row by row.
    """
    bad_rows = bad_rows or _BadRows("error", [])
    file = ref.display
    pixel_chunks: list[np.ndarray] = []
    line_chunks: list[np.ndarray] = []
    state: dict = {"header": None, "line": 0, "rows": 0}
    columns: dict[str, list[np.ndarray]] = {}

    def start_header(buffer: bytearray, position: int, stop: int) -> int:
        newline = buffer.find(b"\n", position, stop)
        line_end = newline if newline >= 0 else stop
        raw = bytes(buffer[position:line_end]).rstrip(b"\r")
        header = _header_names(raw)
        names = [h.lower() for h in header]
        missing = [c for c in required if c not in names]
        if missing:
            found = ", ".join(repr(h if len(h) <= 20 else h[:20] + "...") for h in header[:8]) or "none"
            optional_text = f" (optional: {','.join(optional)})" if optional else ""
            raise DataError(file, f"missing column {', '.join(missing)}: expected columns "
                                  f"{','.join(required)}{optional_text}, found {found}", 1)
        state["header"] = header
        state["count"] = len(names)
        state["pixel_at"] = names.index("pixels")
        state["present"] = [c for c in required + optional if c in names and c != "pixels"]
        state["other_at"] = [names.index(c) for c in state["present"]]
        columns.update({c: [] for c in state["present"]})
        state["line"] = 1
        return line_end + 1

    def finish(pixels: np.ndarray, lines: np.ndarray, values: dict[str, np.ndarray], reasons: dict[int, str]) -> None:
        """Report bad rows in file order (raises in "error" mode), keep the others."""
        keep = None
        if reasons:
            keep = np.ones(len(lines), bool)
            usage = values.get("usage")
            for row in sorted(reasons):
                test_row = test_rows or (usage is not None and int(usage[row]) in (_UNREAD, _USAGE_PRIVATE))
                bad_rows.report(file, int(lines[row]), reasons[row], test_row)
                keep[row] = False
        state["rows"] += len(lines)
        pixel_chunks.append(pixels if keep is None else pixels[keep])
        line_chunks.append(lines if keep is None else lines[keep])
        for column, array in values.items():
            columns[column].append(array if keep is None else array[keep])

    def process_fast(buffer: bytearray, padded: np.ndarray, start: int, stop: int) -> Callable[[], None] | None:
        """Split the block's rows here; decode its pixels on the pool. Returns what completes it."""
        split = _split_rows_fast(buffer, padded, start, stop, state["count"], state["pixel_at"])
        if split is None:
            return None
        starts, ends = split
        rows = starts.shape[1]
        reasons: dict[int, str] = {}
        values: dict[str, np.ndarray] = {}
        for column, at in zip(state["present"], state["other_at"]):
            first, last = starts[at], ends[at]
            parsed = np.full(rows, _UNREAD, np.int64)
            if column == "emotion":  # vectorised for single digits, the rule; else exact per row
                digit = padded[start + first].astype(np.int64) - _ZERO
                simple = (last - first == 1) & (digit >= 0) & (digit < NUM_CLASSES)
                parsed[simple] = digit[simple]
                others = np.flatnonzero(~simple).tolist()
            else:
                others = range(rows)
            parser = _PARSERS[column]
            for row in others:
                value = parser(_clean_field(bytes(buffer[start + first[row]:start + last[row]])))
                if isinstance(value, str):
                    reasons.setdefault(row, value)
                else:
                    parsed[row] = value
            values[column] = parsed
        first, last = starts[state["pixel_at"]], ends[state["pixel_at"]]
        # Mark each pixel text's edges: NUL before it (a token boundary that is no separator),
        # a space after it (its last token's separator).
        padded[start + first - 1] = 0
        padded[start + last] = _SPACE

        def decode() -> tuple[np.ndarray, dict[int, str]]:  # numpy releases the GIL throughout
            separators = np.flatnonzero(padded[start:stop] == _SPACE)
            return _parse_spans(padded, start, separators, last, first,
                                lambda r: bytes(buffer[start + first[r]:start + last[r]]))

        decoded = pool.submit(decode) if pool is not None else None
        done = None if pool is not None else decode()
        lines = np.arange(state["line"] + 1, state["line"] + 1 + rows, dtype=np.int64)
        state["line"] += rows
        count, header = state["count"], state["header"]
        marked = (state["pixel_at"] > 0) + (state["pixel_at"] < count - 1)  # commas overwritten above

        def complete() -> None:
            pixels, problems = decoded.result() if decoded is not None else done
            for row, message in problems.items():
                reasons.setdefault(row, message)
            for row in reasons:  # a row with too many fields says so, as in the general loop
                commas = buffer.count(b",", start + starts[0][row], start + ends[-1][row]) + marked
                if commas != count - 1:
                    reasons[row] = f"expected {count} fields ({','.join(header)}), found {commas + 1}"
            finish(pixels, lines, values, reasons)

        return complete

    def process(buffer: bytearray, position: int) -> Callable[[], None] | None:
        """Parse the complete lines in buffer[position:-1] (buffer has 4 pad bytes in front, 1 after).

        Returns what completes the block (reports its bad rows, keeps the rest), to be called
        in file order, or None for a block without rows.
        """
        stop = len(buffer) - 1
        if state["header"] is None:
            position = start_header(buffer, position, stop)
        padded = np.frombuffer(buffer, np.uint8)
        if position < stop:
            complete = process_fast(buffer, padded, position, stop)
            if complete is not None:
                return complete
        data_start = position
        count, pixel_at, other_at = state["count"], state["pixel_at"], state["other_at"]
        first: list[int] = []
        last: list[int] = []
        rests: list[list[bytes] | str] = []
        lines: list[int] = []
        line_number = state["line"]
        find = buffer.find
        while position < stop:
            newline = find(b"\n", position, stop)
            if newline < 0:
                newline = stop
            line_end = newline - 1 if newline > position and buffer[newline - 1] == 13 else newline
            line_number += 1
            line_start, position = position, newline + 1
            if line_end - line_start < 64 and not buffer[line_start:line_end].strip():
                continue  # blank lines (often one at the end) carry no row
            starts = [line_start]
            for _ in range(count - 1):
                comma = find(b",", starts[-1], line_end)
                if comma < 0:
                    break
                starts.append(comma + 1)
            lines.append(line_number)
            if len(starts) < count or find(b",", starts[-1], line_end) >= 0:
                found = buffer.count(b",", line_start, line_end) + 1
                rests.append(f"expected {count} fields ({','.join(state['header'])}), found {found}")
                first.append(line_start)
                last.append(line_start)
                continue
            ends = [s - 1 for s in starts[1:]] + [line_end]
            begin, finish_at = starts[pixel_at], ends[pixel_at]
            while begin < finish_at and buffer[begin] in _STRIP_BYTES:
                begin += 1
            while finish_at > begin and buffer[finish_at - 1] in _STRIP_BYTES:
                finish_at -= 1
            first.append(begin)
            last.append(finish_at)
            rests.append([_clean_field(bytes(buffer[starts[i]:ends[i]])) for i in other_at])
        state["line"] = line_number
        if not lines:
            return None
        first_at = np.asarray(first, np.int64)
        last_at = np.asarray(last, np.int64)
        structural = np.fromiter((isinstance(r, str) for r in rests), bool, len(rests))
        problems: dict[int, str] = {}
        ok = np.flatnonzero(~structural)
        parsed = np.zeros((len(lines), NUM_PIXELS), np.uint8)
        if len(ok):
            text_slices = [(first[i], last[i]) for i in ok.tolist()]
            padded[first_at[ok] - 1] = 0
            padded[last_at[ok]] = _SPACE
            separators = np.flatnonzero(padded[data_start:stop] == _SPACE)
            sub, sub_problems = _parse_spans(
                padded, data_start, separators, last_at[ok] - data_start, first_at[ok] - data_start,
                lambda r: bytes(buffer[text_slices[r][0]:text_slices[r][1]]))
            parsed[ok] = sub
            problems = {int(ok[r]): message for r, message in sub_problems.items()}
        present = state["present"]
        values = {column: np.full(len(lines), _UNREAD, np.int64) for column in present}
        reasons: dict[int, str] = {}
        for row, rest in enumerate(rests):
            if isinstance(rest, str):
                reasons[row] = rest
                continue
            for column, raw in zip(present, rest):  # every column, so a bad row's Usage is known
                value = _PARSERS[column](raw)
                if isinstance(value, str):
                    reasons.setdefault(row, value)
                else:
                    values[column][row] = value
            if row not in reasons and row in problems:
                reasons[row] = problems[row]
        line_array = np.asarray(lines, np.int64)
        return lambda: finish(parsed, line_array, values, reasons)

    saw_bytes = False
    workers = _decode_workers()
    pending: deque[Callable[[], None]] = deque()

    def queue_block(buffer: bytearray) -> None:
        complete = process(buffer, 4)
        if complete is not None:
            pending.append(complete)
        while len(pending) > workers:  # in file order, so the first bad row is the one reported
            pending.popleft()()

    with (ThreadPoolExecutor(workers, thread_name_prefix="decode") if workers > 1 else nullcontext()) as pool, \
            _blocks(ref) as blocks, _archive_errors(ref):
        carry = b""
        for block in blocks:
            saw_bytes = True
            cut = block.rfind(b"\n")
            if cut < 0:
                carry += block
                continue
            buffer = bytearray(4)
            buffer += carry
            buffer += memoryview(block)[:cut + 1]
            buffer += b"\0"
            carry = block[cut + 1:]
            queue_block(buffer)
        if carry.strip() or (carry and state["header"] is None):
            buffer = bytearray(4)
            buffer += carry
            buffer += b"\n\0"
            queue_block(buffer)
        while pending:
            pending.popleft()()
    if not saw_bytes:
        raise DataError(file, "file is empty (0 bytes)")
    if state["header"] is None or state["rows"] == 0:
        raise DataError(file, "has a header but no rows", 1)
    kept = [chunk for chunk in pixel_chunks if len(chunk)]
    pixels = np.concatenate(kept) if len(kept) > 1 else kept[0] if kept else np.zeros((0, NUM_PIXELS), np.uint8)
    table = _Table(pixels=pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE),
                   lines=np.concatenate(line_chunks) if line_chunks else np.zeros(0, np.int64),
                   header=state["header"])
    dtypes = {"emotion": np.int8, "id": np.int64, "usage": np.int8}
    for column, chunks in columns.items():
        setattr(table, {"emotion": "emotion", "id": "ids", "usage": "usage"}[column],
                np.concatenate(chunks).astype(dtypes[column]) if chunks else np.zeros(0, dtypes[column]))
    return table


def read_label_table(ref: FileRef, bad_rows: _BadRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an id,emotion CSV (test labels): (ids int64, labels int8, lines int64)."""
    file = ref.display
    ids: list[int] = []
    labels: list[int] = []
    lines_kept: list[int] = []
    with open_stream(ref) as stream, _archive_errors(ref):
        lines = _iter_lines(stream)
        header_line = next(lines, None)
        if header_line is None:
            raise DataError(file, "file is empty (0 bytes)")
        header = _header_names(header_line)
        names = [h.lower() for h in header]
        missing = [c for c in ("id", "emotion") if c not in names]
        if missing:
            raise DataError(file, f"missing column {', '.join(missing)}: expected columns id,emotion, found "
                                  f"{', '.join(repr(h[:20]) for h in header[:8])}", 1)
        id_at, label_at = names.index("id"), names.index("emotion")
        line_number = 1
        for line in lines:
            line_number += 1
            if not line.strip():
                continue
            fields = line.split(b",")
            if len(fields) != len(names):
                bad_rows.report(file, line_number, f"expected {len(names)} fields ({','.join(header)}), found {len(fields)}")
                continue
            test_id = _parse_id(_clean_field(fields[id_at]))
            label = _parse_label(_clean_field(fields[label_at]))
            reason = test_id if isinstance(test_id, str) else label if isinstance(label, str) else None
            if reason is not None:
                bad_rows.report(file, line_number, reason)
                continue
            ids.append(test_id)
            labels.append(label)
            lines_kept.append(line_number)
    if line_number == 1:
        raise DataError(file, "has a header but no rows", 1)
    return np.asarray(ids, np.int64), np.asarray(labels, np.int8), np.asarray(lines_kept, np.int64)


def _check_unique_ids(ids: np.ndarray, lines: np.ndarray, file: str) -> None:
    if len(ids) == len(np.unique(ids)):
        return
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    repeat = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    # Report the repeat that comes first in the file, pointing at its second occurrence.
    pairs = [(int(lines[order[k + 1]]), int(lines[order[k]]), int(sorted_ids[k])) for k in repeat]
    line, first_line, test_id = min(pairs)
    raise DataError(file, f"duplicate test id {test_id} (first seen at line {first_line}); test ids must be unique", line)


# --------------------------------------------------------------------------------------------
# Finding a layout


@dataclass
class Source:
    """A detected layout: which files to read. Built by find_source or from explicit paths."""

    kind: str  # "kaggle" | "fer2013" | "images"
    location: Path  # the folder, zip or file that holds it
    train: FileRef | None = None  # kaggle: train.csv
    test: FileRef | None = None  # kaggle: test.csv
    test_labels: FileRef | None = None  # kaggle: optional id,emotion file
    table: FileRef | None = None  # fer2013: the single file
    images: object | None = None  # images: an images.ImageSet
    notes: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        return {"kaggle": LAYOUT_KAGGLE, "fer2013": LAYOUT_FER2013, "images": LAYOUT_IMAGES}[self.kind]


def _strip_gz(name: str) -> str:
    name = name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _pick_named(entries: dict[str, FileRef], names: tuple[str, ...]) -> FileRef | None:
    """The entry whose name (case-insensitive, .gz or not) is one of `names`, plain before .gz."""
    for wanted in names:
        matches = sorted((ref for key, ref in entries.items() if _strip_gz(key) == wanted), key=lambda r: r.gzipped)
        if matches:
            return matches[0]
    return None


def _sources_in_listing(location: Path, files: dict[str, FileRef], dirs: dict[str, object]) -> list[Source]:
    """Layouts present in one folder level: files maps lowercase name -> ref; dirs maps lowercase name -> image set builder."""
    found: list[Source] = []
    train, test = _pick_named(files, TRAIN_NAMES), _pick_named(files, TEST_NAMES)
    if train is not None and test is not None:
        found.append(Source("kaggle", location, train=train, test=test, test_labels=_pick_named(files, TEST_LABEL_NAMES)))
    for name in FER2013_NAMES:
        table = _pick_named(files, (name,))
        if table is not None:
            found.append(Source("fer2013", location, table=table))
    if "images" in dirs and dirs["images"] is not None:
        found.append(Source("images", location, images=dirs["images"]))
    return found


def _sources_in_dir(folder: Path) -> list[Source]:
    from ferkaggle.data import images

    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise FerkaggleError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
    files = {p.name.lower(): FileRef(p) for p in entries if p.is_file()}
    dirs = {"images": images.find_image_set_in_dir(folder)}
    return _sources_in_listing(folder, files, dirs)


def _sources_in_zip(zip_path: Path) -> list[Source]:
    """Layouts inside a zip, at the shallowest folder level that holds one."""
    from ferkaggle.data import images

    with _archive_errors(FileRef(zip_path)):
        with zipfile.ZipFile(zip_path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
    by_folder: dict[str, dict[str, FileRef]] = {}
    for name in names:
        posix = PurePosixPath(name)
        if any(part.startswith((".", "__MACOSX")) for part in posix.parts):
            continue
        by_folder.setdefault(str(posix.parent), {})[posix.name.lower()] = FileRef(zip_path, name)
    image_sets = images.find_image_sets_in_zip(zip_path, names)
    prefixes = sorted(set(by_folder) | set(image_sets), key=lambda p: (0 if p == "." else p.count("/") + 1, p))
    for prefix in prefixes:
        found = _sources_in_listing(zip_path, by_folder.get(prefix, {}), {"images": image_sets.get(prefix)})
        if found:
            return found
    return []


def _choose(found: list[Source], where: Path) -> Source:
    best = found[0]
    for other in found[1:]:
        best.notes.append(f"{where} also holds {other.description}; reading {best.description} "
                          f"(pass the other file explicitly to use it instead)")
    return best


def _skip_subfolder(path: Path) -> bool:
    return path.name.startswith((".", "__")) or path.name.lower() in {"prepared"}


class NoDataFound(FerkaggleError):
    """A folder or zip holds no competition data in any known layout (`--demo-if-missing` acts on this)."""


DEMO_SUBFOLDER = "demo"
"""Where `--demo-if-missing` puts the demo competition; real data beside it takes precedence."""


def find_source(folder: Path) -> Source:
    """Detect which layout a folder, zip or file holds.

    A folder is searched at its own level first, then in zips at its level and in its
    immediate subfolders (not `prepared/` or hidden ones); if layouts turn up in several
    places, that is ambiguous and raises. Raises FerkaggleError naming what was looked for.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FerkaggleError(f"{folder}: no such file or folder")
    if folder.is_file():
        return _source_from_file(folder)
    found = _sources_in_dir(folder)
    if found:
        return _choose(found, folder)
    places: list[tuple[Path, list[Source]]] = []
    try:
        children = sorted(folder.iterdir())
    except OSError as exc:
        raise FerkaggleError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
    for child in children:
        if child.is_file() and child.suffix.lower() == ".zip":
            inner = _sources_in_zip(child)
        elif child.is_dir() and not _skip_subfolder(child):
            inner = _sources_in_dir(child)
        else:
            continue
        if inner:
            places.append((child, inner))
    if len(places) > 1:
        # A generated demo never competes with the user's own data.
        places = [(place, inner) for place, inner in places if place.name != DEMO_SUBFOLDER] or places
    if len(places) > 1:
        listed = "; ".join(f"{place} ({inner[0].description})" for place, inner in places)
        raise FerkaggleError(f"{folder}: several data sets found: {listed}; pass the one to use explicitly")
    if places:
        return _choose(places[0][1], places[0][0])
    raise NoDataFound(
        f"{folder}: no competition data found. Looked for train.csv + test.csv, fer2013.csv, "
        f"icml_face_data.csv (each also as .csv.gz), image folders train/<class>/ + test/, "
        f"and the same inside a .zip or one subfolder down")


def _source_from_file(path: Path) -> Source:
    lower = path.name.lower()
    if lower.endswith(".zip"):
        found = _sources_in_zip(path)
        if not found:
            raise NoDataFound(
                f"{path}: no competition data found in the zip. Looked for train.csv + test.csv, fer2013.csv, "
                f"icml_face_data.csv (each also as .csv.gz) and image folders train/<class>/ + test/")
        return _choose(found, path)
    if lower.endswith((".tar", ".tar.gz", ".tgz")):
        raise FerkaggleError(f"{path}: tar archives are not read directly; extract it (tar xzf) and pass the folder")
    # Any other single file must be fer2013-style (it holds train and test); its header decides.
    return Source("fer2013", path, table=FileRef(path))


# --------------------------------------------------------------------------------------------
# Reading a layout


def _read_kaggle(source: Source, bad_rows: _BadRows, notes: list[str]) -> RawData:
    assert source.train is not None and source.test is not None
    train = read_table(source.train, ("emotion", "pixels"), bad_rows=bad_rows)
    test = read_table(source.test, ("pixels",), ("id", "emotion"), bad_rows=bad_rows, test_rows=True)
    test_file = source.test.display
    if test.ids is None:
        # Every test row was kept (a bad one raises), so position k is the k-th data row of the file.
        test_ids = np.arange(len(test.pixels), dtype=np.int64)
        id_source = f"{source.test.name} has no id column: the id is the row's position among its data rows, from 0"
        notes.append(id_source)
    else:
        test_ids = test.ids
        id_source = f"the id column of {source.test.name}"
        _check_unique_ids(test_ids, test.lines, test_file)
    y_test = test.emotion
    labels_ref = source.test_labels
    if labels_ref is not None:
        if y_test is not None:
            notes.append(f"{source.test.name} has an emotion column; ignoring {labels_ref.display}")
        else:
            y_test = _align_test_labels(labels_ref, test_ids, bad_rows, notes)
    refs = [source.train, source.test] + ([labels_ref] if labels_ref is not None and test.emotion is None else [])
    return RawData(
        layout=LAYOUT_KAGGLE,
        sources=_unique_paths(refs),
        x=train.pixels,
        y=train.emotion,
        x_test=test.pixels,
        test_ids=test_ids,
        y_test=y_test,
        predefined_val=None,
        test_id_source=id_source,
    )


def _align_test_labels(ref: FileRef, test_ids: np.ndarray, bad_rows: _BadRows, notes: list[str]) -> np.ndarray:
    """Labels from an id,emotion file, in test_ids order; every test id needs exactly one."""
    ids, labels, lines = read_label_table(ref, bad_rows)
    _check_unique_ids(ids, lines, ref.display)
    order = np.argsort(ids)
    sorted_ids = ids[order]
    where = np.searchsorted(sorted_ids, test_ids)
    where_clipped = np.minimum(where, max(len(sorted_ids) - 1, 0))
    found = (where < len(sorted_ids)) & (sorted_ids[where_clipped] == test_ids) if len(sorted_ids) else np.zeros(len(test_ids), bool)
    if not found.all():
        missing = test_ids[~found]
        shown = ", ".join(str(int(i)) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(ref.display, f"no label for {len(missing):,} test id(s): {shown}; every test id needs exactly one label")
    extra = len(ids) - len(test_ids)
    if extra > 0:
        notes.append(f"{ref.display} labels {extra:,} id(s) that are not in the test file; they are ignored")
    return labels[order[where]]


def _read_fer2013(source: Source, bad_rows: _BadRows, notes: list[str]) -> RawData:
    assert source.table is not None
    ref = source.table
    table = read_table(ref, ("emotion", "pixels", "usage"), bad_rows=bad_rows)
    names = [h.lower() for h in table.header]
    layout = LAYOUT_ICML if names.index("usage") < names.index("pixels") else LAYOUT_FER2013
    labelled = table.usage != _USAGE_PRIVATE
    test = ~labelled
    if not test.any():
        raise DataError(ref.display, "has no PrivateTest rows: nothing to use as the test set")
    if not labelled.any():
        raise DataError(ref.display, "has no Training or PublicTest rows: nothing to train on")
    return RawData(
        layout=layout,
        sources=_unique_paths([ref]),
        x=table.pixels[labelled],
        y=table.emotion[labelled],
        x_test=table.pixels[test],
        # PrivateTest rows are never dropped (a bad one raises), so these positions are the file's.
        test_ids=np.arange(int(test.sum()), dtype=np.int64),
        y_test=table.emotion[test],
        predefined_val=table.usage[labelled] == _USAGE_PUBLIC,
        test_id_source=f"the row's position among the PrivateTest rows of {ref.name}, from 0",
    )


def _unique_paths(refs: list[FileRef]) -> list[Path]:
    paths: list[Path] = []
    for ref in refs:
        if ref.path not in paths:
            paths.append(ref.path)
    return paths


def _explicit_source(train: Path | None, test: Path | None, test_labels: Path | None) -> Source:
    if train is None or test is None:
        given, needed = ("train", "test") if train is not None else ("test", "train")
        raise FerkaggleError(f"a {given} file was given without a {needed} file: pass both")
    for path in (train, test) + ((test_labels,) if test_labels is not None else ()):
        if not Path(path).exists():
            raise FerkaggleError(f"{path}: no such file")
        if Path(path).is_dir():
            raise FerkaggleError(f"{path}: is a folder, expected a CSV file (.csv or .csv.gz)")
    labels_ref = FileRef(Path(test_labels)) if test_labels is not None else None
    if labels_ref is None:
        beside = Path(test).parent
        candidates = {p.name.lower(): FileRef(p) for p in beside.glob("*") if p.is_file()}
        labels_ref = _pick_named(candidates, TEST_LABEL_NAMES)
    return Source("kaggle", Path(train).parent, train=FileRef(Path(train)), test=FileRef(Path(test)), test_labels=labels_ref)


def read_source(source: Path | None = None, *, train: Path | None = None, test: Path | None = None,
                test_labels: Path | None = None, on_bad_row: str = "error") -> RawData:
    """Read a competition's data into validated arrays.

    `source` is a fer2013-style file, a zip or a folder (searched with find_source); `train`
    and `test` are explicit Kaggle-layout files. With neither, the folder `data/` is searched.
    `test_labels` (an id,emotion file) labels the test set; by default a test_labels.csv beside
    test.csv is used. `on_bad_row` is "error" (raise on the first bad row) or "skip" (drop bad
    rows and list them in RawData.skipped).
    """
    skipped: list[dict] = []
    bad_rows = _BadRows(on_bad_row, skipped)
    if source is not None and (train is not None or test is not None):
        raise FerkaggleError("give either a source (folder, zip or fer2013.csv) or train/test files, not both")
    if train is not None or test is not None:
        found = _explicit_source(train, test, test_labels)
    else:
        found = find_source(Path(source) if source is not None else DEFAULT_FOLDER)
        if test_labels is not None:
            if found.kind != "kaggle":
                raise FerkaggleError(f"test labels only apply to the Kaggle layout; {found.location} holds {found.description}")
            if not Path(test_labels).is_file():
                raise FerkaggleError(f"{test_labels}: no such file")
            found.test_labels = FileRef(Path(test_labels))
    notes = list(found.notes)
    if found.kind == "kaggle":
        data = _read_kaggle(found, bad_rows, notes)
    elif found.kind == "fer2013":
        data = _read_fer2013(found, bad_rows, notes)
    else:
        from ferkaggle.data import images

        data = images.read_image_set(found.images, bad_rows, notes)
    if len(data.x) == 0:
        raise DataError(data.sources[0] if data.sources else found.location, "no usable labelled rows")
    data.skipped = skipped
    data.notes = notes
    if skipped:
        notes.append(f"skipped {len(skipped):,} bad row(s); see RawData.skipped")
    return data
