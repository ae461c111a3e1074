"""The CSV dialect every table reader shares (:class:`CsvOptions`), and the checks that refuse a file
read in the wrong dialect (a foreign byte-order mark, one column that holds another delimiter, text that
does not decode), naming the option to set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_mlops.exceptions import TableError

if TYPE_CHECKING:
    import pyarrow as pa


#: Byte-order marks of encodings that a UTF-8 reader turns into one garbled column.
_BOMS = {
    b"\xff\xfe\x00\x00": "utf-32", b"\x00\x00\xfe\xff": "utf-32", b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16",
    b"\xef\xbb\xbf": "utf-8",
}  # fmt: skip


#: The keys ``csv_options`` takes (the rest of :class:`CsvOptions` is set by the operators).
CSV_KEYS = ("delimiter", "encoding", "null_values")


_DELIMITERS = {";": "';'", "\t": "a tab ('\\t')", "|": "'|'"}


class CsvOptions(NamedTuple):
    """The dialect of CSV input: every table reader takes it, so validation, drift, training and
    inference read a file the same way.

    :param delimiter: one character (default ``,``).
    :param encoding: text encoding (default ``utf-8``; e.g. ``utf-16``, ``latin-1``).
    :param null_values: strings read as null (default pyarrow's: empty, ``NA``, ``NaN``, ``null``...).
        Empty text fields are null either way, as pandas writes missing text.
    :param column_types: arrow types of known columns (set by operators from the FeatureSpec, not by
        users), so a column's type does not depend on what its first block holds: a numeric column
        empty at the top stays numeric, a categorical of digits (zip codes) stays text.
    """

    delimiter: str = ","
    encoding: str = "utf-8"
    null_values: tuple[str, ...] | None = None
    column_types: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: CsvOptions | Mapping[str, Any] | str | None) -> CsvOptions:
        """Accept a mapping (or its JSON text, or ``None``); raise ``ValueError`` naming a bad key or value."""
        import codecs

        from airflow_mlops.values import as_mapping

        if isinstance(value, CsvOptions):
            return value
        value = as_mapping(value, "csv_options")
        unknown = sorted(set(value) - set(CSV_KEYS))
        if unknown:
            raise ValueError(f"csv_options: unknown key(s) {unknown}; allowed: {list(CSV_KEYS)}")
        nulls = value.get("null_values")
        options = cls(
            delimiter=value.get("delimiter") or ",",
            encoding=value.get("encoding") or "utf-8",
            null_values=(nulls,) if isinstance(nulls, str) else tuple(nulls) if nulls is not None else None,
        )
        if len(options.delimiter) != 1:
            raise ValueError(f"csv_options.delimiter must be one character, got {options.delimiter!r}")
        try:
            codecs.lookup(options.encoding)
        except LookupError as exc:
            raise ValueError(f"csv_options.encoding: unknown encoding {options.encoding!r}") from exc
        return options


def _check_csv_head(filesystem: Any, path: str, csv: CsvOptions, uri: str) -> None:
    """Refuse a file whose byte-order mark says another encoding than ``csv`` reads it with.

    By hand: arrow's CSV reader keeps a foreign byte-order mark as characters of the first column name.
    """
    import codecs

    with filesystem.open_input_stream(path) as stream:
        head = stream.read(4)
    bom = next((enc for mark, enc in _BOMS.items() if head.startswith(mark)), None)
    # utf-16/32 read the byte-order mark and drop it; their -le/-be variants, or any other codec, keep it in the header.
    reads_bom = {"utf-8": ("utf-8", "utf-8-sig"), "utf-16": ("utf-16",), "utf-32": ("utf-32",)}
    if bom and codecs.lookup(csv.encoding).name not in reads_bom[bom]:
        raise TableError(
            f"the file starts with a {bom.upper()} byte-order mark but is read as {csv.encoding}; "
            f"set csv_options={{'encoding': '{bom}'}}",
            uri=uri,
        )


def _check_csv_schema(schema: pa.Schema, csv: CsvOptions, uri: str) -> None:
    """Refuse (naming the option to set) a CSV schema that shows the file needs another dialect.

    By hand: arrow reads a file in the wrong dialect without complaint, into one column or binary ones.
    """
    import pyarrow as pa

    names = schema.names
    if len(names) == 1:
        seen = [label for mark, label in _DELIMITERS.items() if mark in names[0] and mark != csv.delimiter]
        if seen:
            mark = next(m for m, label in _DELIMITERS.items() if label == seen[0])
            raise TableError(
                f"the file parsed into a single column {names[0][:80]!r}, which contains {seen[0]}: it looks "
                f"{seen[0]}-delimited; set csv_options={{'delimiter': {mark!r}}}",
                uri=uri,
            )
    # pyarrow types a text column that does not decode as binary and reads on; refuse it instead of
    # carrying raw bytes into validation and predictions.
    binary = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if binary:
        raise TableError(
            f"column(s) {binary} are not valid {csv.encoding} text; set csv_options={{'encoding': ...}} to the file's encoding",
            uri=uri,
        )
