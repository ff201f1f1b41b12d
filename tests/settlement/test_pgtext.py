"""Settlement's text COPY and text numerics (cex.settlement.pgtext): every value arrives
exactly, strings that need COPY's escapes included, amounts beyond 64 bits included."""

from __future__ import annotations

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cex.settlement.pgtext import copy_rows, text_copy, texts

values = st.one_of(st.none(), st.integers(-(10**37), 10**37), st.text(max_size=8))


def parse_text_copy(payload: bytes) -> list[list[str | None]]:
    """COPY's text format read back (the server's rules: ``\\N`` is NULL, backslash
    escapes), to check the encoder against."""
    escapes = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    rows: list[list[str | None]] = []
    for line in payload.decode().split("\n")[:-1]:
        fields: list[str | None] = []
        for raw in line.split("\t"):
            if raw == "\\N":
                fields.append(None)
                continue
            out, i = [], 0
            while i < len(raw):
                if raw[i] == "\\":
                    out.append(escapes[raw[i + 1]])
                    i += 2
                else:
                    out.append(raw[i])
                    i += 1
            fields.append("".join(out))
        rows.append(fields)
    return rows


@given(st.lists(st.tuples(values, values, values), max_size=5))
def test_text_copy_reads_back_as_written(rows: list[tuple[int | str | None, ...]]) -> None:
    expected = [[None if v is None else str(v) for v in row] for row in rows]
    assert parse_text_copy(text_copy(rows, 3)) == expected


def test_plain_rows_are_not_escaped() -> None:
    rows = [(1, "AVAILABLE", "USDT", -12), (2, None, "EXTERNAL", 10**30)]
    assert text_copy(rows, 4) == (
        b"1\tAVAILABLE\tUSDT\t-12\n2\t\\N\tEXTERNAL\t1000000000000000000000000000000\n"
    )


@pytest.mark.parametrize("text", ["a\tb", "a\nb", "back\\slash", "\\N", "cr\r", "plain"])
async def test_copy_rows_stores_every_value_exactly(exchange_dsn: str, text: str) -> None:
    conn = await asyncpg.connect(exchange_dsn)
    try:
        await conn.execute("CREATE TEMP TABLE t (i bigint, s text, n numeric(38, 0))")
        rows = [(1, text, -(10**37) + 1), (2, None, 10**37 - 1), (3, "x", None)]
        await copy_rows(conn, "t", ("i", "s", "n"), rows)
        stored = await conn.fetch("SELECT i, s, n::text FROM t ORDER BY i")
        assert [(r[0], r[1], None if r[2] is None else int(r[2])) for r in stored] == rows
        # Numerics as a text array cast by the statement: exact beyond 64 bits.
        amounts = [10**37 - 1, -(2**70), 0]
        back = await conn.fetchval("SELECT $1::text[]::numeric[]::text[]", texts(amounts))
        assert [int(a) for a in back] == amounts
    finally:
        await conn.close()
