"""CSV tables: one file with a header (pixels + emotion / id / Usage columns) into validated arrays.

`read_table` streams a file's decompressed blocks (streams.read_blocks), cuts each at its last
newline, and hands the block to a `_TableReader`, which keeps what one file's reading knows (the
header, the line count, the rows kept so far) and parses a block in two steps:

1. split the block into rows and fields: vectorised (`_split_rows_fast`, bytes.find and numpy)
   when every line is regular, else a general per-line loop that says exactly what is wrong;
2. decode the pixel text of all its rows in place (pixels.parse_spans), on a small thread pool
   (numpy releases the GIL) while the next block is split.

Each block is completed in file order (by the function `_TableReader.block` returns): bad rows
are reported there (records.BadRows: raised, or listed and dropped), so the first bad row in the
file is the one reported.
`read_label_table` reads the small id,emotion file; `check_unique_ids` names both lines of a
repeated id.

Reasons a row is bad, in the order they are reported: wrong field count; a bad emotion / id /
Usage value; a bad pixel. A bad row is a test row, never skipped, when the table is a test file
or its Usage is PrivateTest or cannot be read.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ferkaggle.core.constants import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS
from ferkaggle.core.errors import DataError
from ferkaggle.data.pixels import SPACE, ZERO, parse_spans
from ferkaggle.data.records import UNREAD, USAGE_PRIVATE, USAGE_VALUES, BadRows, show_value
from ferkaggle.data.streams import FileRef, archive_errors, iter_lines, open_stream, read_blocks


def decode_workers() -> int:
    """Threads decoding pixel blocks side by side (numpy releases the GIL while it works).

    2 by default (1 on a 1-CPU machine), besides the thread that decompresses; set
    FERKAGGLE_DECODE_THREADS=1 to decode in the calling thread only.
    """
    value = os.environ.get("FERKAGGLE_DECODE_THREADS", "")
    if value.strip().isdigit() and int(value) >= 1:
        return int(value)
    return min(2, os.cpu_count() or 1)


@dataclass
class Table:
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
    return f"emotion is {show_value(raw)}: expected an integer 0-{NUM_CLASSES - 1}"


def _parse_id(raw: bytes) -> int | str:
    try:
        return int(raw)
    except ValueError:
        return f"id is {show_value(raw)}: expected an integer"


def _parse_usage(raw: bytes) -> int | str:
    code = USAGE_VALUES.get(raw.decode("utf-8", errors="replace").strip().lower())
    if code is None:
        return f"Usage is {show_value(raw)}: expected Training, PublicTest or PrivateTest"
    return code


_PARSERS = {"emotion": _parse_label, "id": _parse_id, "usage": _parse_usage}
_STRIP_BYTES = frozenset(b' \t"')


def _clean_field(raw: bytes) -> bytes:
    """A CSV field without surrounding spaces or quotes (pixels never contain commas or quotes)."""
    raw = raw.strip()
    if raw[:1] == b'"' and raw[-1:] == b'"':
        raw = raw[1:-1].strip()
    return raw


def _header_names(raw: bytes) -> list[str]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # UTF-8 byte-order mark (Excel, some Windows tools)
    return [h.decode("utf-8", errors="replace").strip().strip('"').strip() for h in raw.split(b",")]


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
        if ((edge == SPACE) | (edge == 9) | (edge == 34)).any():
            return None
    return starts, ends


@dataclass
class _Columns:
    """Where the header put each column, once it is read."""

    header: list[str]  # column names as written
    count: int  # fields per row
    pixel_at: int  # index of the pixels field
    present: list[str]  # the other known columns found, in required + optional order
    other_at: list[int]  # their field indices


class _TableReader:
    """What reading one CSV file knows: its columns, the line reached, the rows kept so far.

    `block(buffer)` parses the complete lines of one block and returns the function that
    completes it (reports its bad rows, keeps the rest); completions run in file order.
    A block buffer holds 4 pad bytes, the lines (each ending in LF) and 1 byte after them.
    """

    def __init__(self, ref: FileRef, required: tuple[str, ...], optional: tuple[str, ...],
                 bad_rows: BadRows, test_rows: bool, pool: Executor | None):
        self.ref, self.file = ref, ref.display
        self.required, self.optional = required, optional
        self.bad_rows, self.test_rows, self.pool = bad_rows, test_rows, pool
        self.columns: _Columns | None = None
        self.line = 0  # last file line handed out (the header is line 1)
        self.rows = 0  # rows seen, good or bad
        self.pixel_chunks: list[np.ndarray] = []
        self.line_chunks: list[np.ndarray] = []
        self.value_chunks: dict[str, list[np.ndarray]] = {}

    # ---------------------------------------------------------------- header

    def read_header(self, buffer: bytearray, position: int, stop: int) -> int:
        """Parse the header line at `position`; returns where the first data line starts."""
        newline = buffer.find(b"\n", position, stop)
        line_end = newline if newline >= 0 else stop
        header = _header_names(bytes(buffer[position:line_end]).rstrip(b"\r"))
        names = [h.lower() for h in header]
        missing = [c for c in self.required if c not in names]
        if missing:
            found = ", ".join(repr(h if len(h) <= 20 else h[:20] + "...") for h in header[:8]) or "none"
            optional_text = f" (optional: {','.join(self.optional)})" if self.optional else ""
            raise DataError(self.file, f"missing column {', '.join(missing)}: expected columns "
                                       f"{','.join(self.required)}{optional_text}, found {found}", 1)
        present = [c for c in self.required + self.optional if c in names and c != "pixels"]
        self.columns = _Columns(header, len(names), names.index("pixels"), present, [names.index(c) for c in present])
        self.value_chunks = {c: [] for c in present}
        self.line = 1
        return line_end + 1

    def _field_count_message(self, found: int) -> str:
        cols = self.columns
        return f"expected {cols.count} fields ({','.join(cols.header)}), found {found}"

    # ---------------------------------------------------------------- completing a block

    def keep(self, pixels: np.ndarray, lines: np.ndarray, values: dict[str, np.ndarray], reasons: dict[int, str]) -> None:
        """Report the block's bad rows in file order (may raise), keep the others."""
        kept = None
        if reasons:
            kept = np.ones(len(lines), bool)
            usage = values.get("usage")
            for row in sorted(reasons):
                test_row = self.test_rows or (usage is not None and int(usage[row]) in (UNREAD, USAGE_PRIVATE))
                self.bad_rows.report(self.file, int(lines[row]), reasons[row], test_row)
                kept[row] = False
        self.rows += len(lines)
        self.pixel_chunks.append(pixels if kept is None else pixels[kept])
        self.line_chunks.append(lines if kept is None else lines[kept])
        for column, array in values.items():
            self.value_chunks[column].append(array if kept is None else array[kept])

    # ---------------------------------------------------------------- parsing a block

    def block(self, buffer: bytearray) -> Callable[[], None] | None:
        """Parse the complete lines of a block; None for a block without rows."""
        position, stop = 4, len(buffer) - 1
        if self.columns is None:
            position = self.read_header(buffer, position, stop)
        padded = np.frombuffer(buffer, np.uint8)
        if position < stop:
            complete = self._block_regular(buffer, padded, position, stop)
            if complete is not None:
                return complete
        return self._block_general(buffer, padded, position, stop)

    def _decode(self, padded: np.ndarray, start: int, stop: int, first: np.ndarray, last: np.ndarray,
                get: Callable[[int], bytes]):
        """Mark each pixel text's edges, then decode them all: on the pool if there is one.

        A NUL goes before each text (a token boundary that is no separator) and a space after it
        (its last token's separator). Returns a function giving (pixels, {row: problem}).
        """
        padded[start + first - 1] = 0
        padded[start + last] = SPACE

        def decode() -> tuple[np.ndarray, dict[int, str]]:  # numpy releases the GIL throughout
            separators = np.flatnonzero(padded[start:stop] == SPACE)
            return parse_spans(padded, start, separators, last, first, get)

        if self.pool is None:
            done = decode()
            return lambda: done
        return self.pool.submit(decode).result

    def _block_regular(self, buffer: bytearray, padded: np.ndarray, start: int, stop: int) -> Callable[[], None] | None:
        """Every line regular (see _split_rows_fast): fields found vectorised; else None."""
        cols = self.columns
        split = _split_rows_fast(buffer, padded, start, stop, cols.count, cols.pixel_at)
        if split is None:
            return None
        starts, ends = split
        rows = starts.shape[1]
        reasons: dict[int, str] = {}
        values: dict[str, np.ndarray] = {}
        for column, at in zip(cols.present, cols.other_at):
            first, last = starts[at], ends[at]
            parsed = np.full(rows, UNREAD, np.int64)
            if column == "emotion":  # vectorised for single digits, the rule; else exact per row
                digit = padded[start + first].astype(np.int64) - ZERO
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
        first, last = starts[cols.pixel_at], ends[cols.pixel_at]
        result = self._decode(padded, start, stop, first, last, lambda r: bytes(buffer[start + first[r]:start + last[r]]))
        lines = np.arange(self.line + 1, self.line + 1 + rows, dtype=np.int64)
        self.line += rows
        marked = (cols.pixel_at > 0) + (cols.pixel_at < cols.count - 1)  # commas the edge marks overwrote

        def complete() -> None:
            pixels, problems = result()
            for row, message in problems.items():
                reasons.setdefault(row, message)
            for row in reasons:  # a row with too many fields says so, as in the general loop
                commas = buffer.count(b",", start + starts[0][row], start + ends[-1][row]) + marked
                if commas != cols.count - 1:
                    reasons[row] = self._field_count_message(commas + 1)
            self.keep(pixels, lines, values, reasons)

        return complete

    def _scan_lines(self, buffer: bytearray, position: int, stop: int):
        """The general loop over the block's lines: for each non-blank line its number, the bounds of its
        pixel text and its other fields (or why it has the wrong field count). Advances `self.line`."""
        cols = self.columns
        first: list[int] = []
        last: list[int] = []
        rests: list[list[bytes] | str] = []  # the other fields of a row, or why it has the wrong field count
        lines: list[int] = []
        line_number = self.line
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
            for _ in range(cols.count - 1):
                comma = find(b",", starts[-1], line_end)
                if comma < 0:
                    break
                starts.append(comma + 1)
            lines.append(line_number)
            if len(starts) < cols.count or find(b",", starts[-1], line_end) >= 0:
                rests.append(self._field_count_message(buffer.count(b",", line_start, line_end) + 1))
                first.append(line_start)
                last.append(line_start)
                continue
            ends = [s - 1 for s in starts[1:]] + [line_end]
            begin, finish_at = starts[cols.pixel_at], ends[cols.pixel_at]
            while begin < finish_at and buffer[begin] in _STRIP_BYTES:
                begin += 1
            while finish_at > begin and buffer[finish_at - 1] in _STRIP_BYTES:
                finish_at -= 1
            first.append(begin)
            last.append(finish_at)
            rests.append([_clean_field(bytes(buffer[starts[i]:ends[i]])) for i in cols.other_at])
        self.line = line_number
        return lines, first, last, rests

    def _block_general(self, buffer: bytearray, padded: np.ndarray, position: int, stop: int) -> Callable[[], None] | None:
        """Any block: a loop per line finds its fields, or says how many it found."""
        cols = self.columns
        data_start = position
        lines, first, last, rests = self._scan_lines(buffer, position, stop)
        if not lines:
            return None
        first_at, last_at = np.asarray(first, np.int64), np.asarray(last, np.int64)
        structural = np.fromiter((isinstance(r, str) for r in rests), bool, len(rests))
        problems: dict[int, str] = {}
        ok = np.flatnonzero(~structural)
        parsed = np.zeros((len(lines), NUM_PIXELS), np.uint8)
        if len(ok):
            text_slices = [(first[i], last[i]) for i in ok.tolist()]
            result = self._decode(padded, data_start, stop, first_at[ok] - data_start, last_at[ok] - data_start,
                                  lambda r: bytes(buffer[text_slices[r][0]:text_slices[r][1]]))
            sub, sub_problems = result()
            parsed[ok] = sub
            problems = {int(ok[r]): message for r, message in sub_problems.items()}
        values = {column: np.full(len(lines), UNREAD, np.int64) for column in cols.present}
        reasons: dict[int, str] = {}
        for row, rest in enumerate(rests):
            if isinstance(rest, str):
                reasons[row] = rest
                continue
            for column, raw in zip(cols.present, rest):  # every column, so a bad row's Usage is known
                value = _PARSERS[column](raw)
                if isinstance(value, str):
                    reasons.setdefault(row, value)
                else:
                    values[column][row] = value
            if row not in reasons and row in problems:
                reasons[row] = problems[row]
        line_array = np.asarray(lines, np.int64)
        return lambda: self.keep(parsed, line_array, values, reasons)

    # ---------------------------------------------------------------- the result

    def table(self) -> Table:
        if self.columns is None or self.rows == 0:
            raise DataError(self.file, "has a header but no rows", 1)
        kept = [chunk for chunk in self.pixel_chunks if len(chunk)]
        pixels = np.concatenate(kept) if len(kept) > 1 else kept[0] if kept else np.zeros((0, NUM_PIXELS), np.uint8)
        table = Table(pixels=pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE),
                      lines=np.concatenate(self.line_chunks) if self.line_chunks else np.zeros(0, np.int64),
                      header=self.columns.header)
        dtypes = {"emotion": np.int8, "id": np.int64, "usage": np.int8}
        for column, chunks in self.value_chunks.items():
            setattr(table, {"emotion": "emotion", "id": "ids", "usage": "usage"}[column],
                    np.concatenate(chunks).astype(dtypes[column]) if chunks else np.zeros(0, dtypes[column]))
        return table


def read_table(ref: FileRef, required: tuple[str, ...], optional: tuple[str, ...] = (),
               bad_rows: BadRows | None = None, test_rows: bool = False) -> Table:
    """Read one CSV file with a header into arrays, validating every row (see the module docstring).

    `required` columns must be present (else DataError naming found and expected columns);
    `optional` ones are read when present. Known columns: pixels, emotion, id, usage.
    A bad row is a test row, never skipped, when `test_rows` is set (a test file) or when its
    Usage is PrivateTest or cannot be read (fer2013: it may be a test row).
    """
    bad_rows = bad_rows or BadRows("error")
    workers = decode_workers()
    pending: deque[Callable[[], None]] = deque()
    saw_bytes = False
    with (ThreadPoolExecutor(workers, thread_name_prefix="decode") if workers > 1 else nullcontext()) as pool, \
            read_blocks(ref) as blocks, archive_errors(ref):
        reader = _TableReader(ref, required, optional, bad_rows, test_rows, pool)

        def queue_block(buffer: bytearray) -> None:
            complete = reader.block(buffer)
            if complete is not None:
                pending.append(complete)
            while len(pending) > workers:  # in file order, so the first bad row is the one reported
                pending.popleft()()

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
        if carry.strip() or (carry and reader.columns is None):  # a last line without its newline
            buffer = bytearray(4)
            buffer += carry
            buffer += b"\n\0"
            queue_block(buffer)
        while pending:
            pending.popleft()()
    if not saw_bytes:
        raise DataError(ref.display, "file is empty (0 bytes)")
    return reader.table()


def read_label_table(ref: FileRef, bad_rows: BadRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an id,emotion CSV (test labels): (ids int64, labels int8, lines int64)."""
    file = ref.display
    ids: list[int] = []
    labels: list[int] = []
    lines_kept: list[int] = []
    with open_stream(ref) as stream, archive_errors(ref):
        lines = iter_lines(stream)
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


def check_unique_ids(ids: np.ndarray, lines: np.ndarray, file: str) -> None:
    if len(ids) == len(np.unique(ids)):
        return
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    repeat = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    # Report the repeat that comes first in the file, pointing at its second occurrence.
    pairs = [(int(lines[order[k + 1]]), int(lines[order[k]]), int(sorted_ids[k])) for k in repeat]
    line, first_line, test_id = min(pairs)
    raise DataError(file, f"duplicate test id {test_id} (first seen at line {first_line}); test ids must be unique", line)


