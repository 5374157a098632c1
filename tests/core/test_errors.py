"""User errors name the file and the line."""

from __future__ import annotations

from ferkaggle.core.errors import DataError


def test_data_error_message_names_file_and_line():
    err = DataError("train.csv", "expected 2304 pixels, found 2303", line=17)
    assert str(err) == "train.csv, line 17: expected 2304 pixels, found 2303"
