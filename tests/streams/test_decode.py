"""decode_records: the rows of every record checked at once, each refusal kept with its own
record and its row index there."""

import msgpack
import numpy as np

from schemas import QuoteColumns, decode, encode
from streams.feed.simulate import TickSimulator
from streams.worker.decode import Record, decode_records

T0 = 1.795e9


def test_bad_rows_of_several_partitions_are_refused_alone_with_their_record_and_row():
    ticks = QuoteColumns.concat(
        list(TickSimulator(pairs=2, indices=1, seed=3).columns(T0, 1e3, 60))
    )
    pieces = [ticks.take(slice(i, i + 10)) for i in range(0, 60, 10)]
    numbers = {k: a.copy() for k, a in pieces[3].numbers.items()}
    numbers["strike"][7] = -1.0  # the 4th record's row 7
    pieces[3] = QuoteColumns(pieces[3].n, numbers, pieces[3].text)
    numbers = {k: a.copy() for k, a in pieces[4].numbers.items()}
    numbers["ts"][2] = np.inf  # the 5th record's row 2
    pieces[4] = QuoteColumns(pieces[4].n, numbers, pieces[4].text)
    partitions = [0, 1, 0, 1, 2, 1]
    records = [
        Record(encode(p), "q", part, offset, T0) for offset, (p, part) in enumerate(zip(pieces, partitions))
    ]  # fmt: skip

    decoded = decode_records(records)

    assert decoded.ticks == 60 and decoded.rows.n == 58
    why = {(r.offset, e.reason, e.detail.split(":")[0]) for r, _, e in decoded.refused}
    assert why == {(3, "out_of_range", "row 7, field 'strike'"), (4, "not_finite", "row 2, field 'ts'")}  # fmt: skip
    for _, value, _ in decoded.refused:  # each refused row is a message of its own
        (row,) = decode(value, QuoteColumns).quotes()
        assert row.strike == -1.0 or row.ts == np.inf
    # each partition's rows, in the order its records hold them, tagged with the partition
    for part in (0, 1, 2):
        mine = [p for p, q in zip(pieces, partitions) if q == part]
        want = np.concatenate([p.numbers["seq"] for p in mine])
        want = want[(want != pieces[3].numbers["seq"][7]) & (want != pieces[4].numbers["seq"][2])]
        np.testing.assert_array_equal(decoded.rows.numbers["seq"][decoded.partitions == part], want)


def test_a_single_quote_whose_seq_a_column_cannot_hold_is_refused_not_raised():
    """Single quotes are gathered into columns (seq int64) after decoding: a seq of 2**63 once
    passed the single quote's checks and overflowed there, taking the worker down."""
    good = {"ts": T0, "underlying": "EURUSD", "asset_class": "fx", "expiry": "2030-01-01",
            "strike": 1.1, "source": "sim", "forward": 1.1, "mid_vol": 0.1}  # fmt: skip
    values = [msgpack.packb({"type": "quote", "v": 1, **good, "seq": seq}) for seq in (1, 2**63, 2)]
    decoded = decode_records([Record(v, "q", 0, i, T0) for i, v in enumerate(values)])
    assert decoded.rows.numbers["seq"].tolist() == [1, 2]
    ((record, _, error),) = decoded.refused
    assert record.offset == 1 and error.reason == "out_of_range" and "'seq'" in str(error)
