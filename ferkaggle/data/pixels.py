"""The vectorised pixel decoder: space-separated grey levels -> uint8 rows, with exact errors.

The fast path decodes every token of a whole block of rows at once with numpy (no per-pixel
Python): each token is read from its last 1-3 bytes before a separator with plain uint8
arithmetic. A row the fast path cannot take (wrong token count, odd whitespace, a bad value)
goes through `parse_pixels_slow`, which either accepts it or says precisely what is wrong.

Inputs: the pixel text of rows, either as a list of byte strings (`parse_pixel_rows`) or as
spans inside one padded block buffer (`parse_spans`, what the CSV reader uses to decode in
place). Outputs: uint8 [n, 2304] and {row: problem} for the rows that are wrong.
"""

from __future__ import annotations

import numpy as np

from ferkaggle.core.constants import NUM_PIXELS
from ferkaggle.data.records import show_value

SPACE, ZERO = 32, 48  # ord(" "), ord("0")


def parse_pixels_slow(raw: bytes) -> np.ndarray | str:
    """Parse one row exactly: an array of 2,304 values, or a message saying what is wrong."""
    tokens = raw.split()
    if len(tokens) != NUM_PIXELS:
        return f"expected {NUM_PIXELS:,} pixel values, found {len(tokens):,}"
    for position, token in enumerate(tokens, start=1):
        if not token.isdigit() or int(token) > 255:
            return f"pixel {position:,} is {show_value(token)}: expected an integer 0-255"
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
    ones -= ZERO
    tens -= ZERO
    hundreds -= ZERO
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
    separators = np.flatnonzero(padded[4:] == SPACE)
    lengths = np.fromiter((len(f) + 1 for f in fields), np.int64, count)
    row_last = np.cumsum(lengths) - 1  # position of each row's trailing separator
    return parse_spans(padded, 4, separators, row_last, row_last - lengths + 1, fields.__getitem__)


def parse_spans(padded: np.ndarray, base: int, separators: np.ndarray, row_last: np.ndarray,
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
        parsed = parse_pixels_slow(get(row))
        if isinstance(parsed, str):
            problems[row] = parsed
            out[row] = 0
        else:
            out[row] = parsed
    return out, problems

