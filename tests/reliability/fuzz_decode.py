"""A coverage-guided fuzz target (atheris, libFuzzer) for everything that reads a quote message:
:func:`schemas.decode`, the column checks, and the worker's :func:`decode_records`. Any input
must end as parsed rows or a :class:`schemas.SchemaError` with a reason, never another
exception. ``tests/reliability/test_fuzz_decoders.py`` runs it for a bounded time from the
corpus kept beside it (``corpus/decode``); run it longer by hand::

    .venv/bin/python tests/reliability/fuzz_decode.py -max_total_time=600 /tmp/found tests/reliability/corpus/decode
"""

import sys

import atheris
import msgpack  # noqa: F401 (imported first: only our modules are instrumented, not numpy's)
import numpy  # noqa: F401

with atheris.instrument_imports(include=["schemas", "streams"]):
    from schemas import QuoteColumns, SchemaError, decode
    from streams.worker.decode import Record, decode_records


def test_one_input(data: bytes) -> None:
    try:
        message = decode(data)
    except SchemaError as exc:
        assert exc.reason, "a refusal names its reason"
    else:
        if isinstance(message, QuoteColumns):
            message.problems()  # every row judged, none raised
    decoded = decode_records([Record(data, "fuzz.quotes", 0, 0, 0.0)])
    assert decoded.ticks >= 1 or not data
    for _, _, exc in decoded.refused:
        assert isinstance(exc, SchemaError) and exc.reason


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
