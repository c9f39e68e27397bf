"""The decoders under coverage-guided fuzzing (atheris, libFuzzer) for a bounded time, from the
corpus kept in the repo: any input ends as rows or a SchemaError with a reason. It found that
a map whose keys mix text and bytes raised TypeError (sorting them for the error message);
that input is in the corpus (regression-mixed-key-types)."""

import re
import subprocess
import sys
from pathlib import Path

import msgpack

from schemas import SchemaError, decode

HERE = Path(__file__).parent
SECONDS = 20


def test_the_decoders_survive_coverage_guided_fuzzing(tmp_path):
    found = tmp_path / "found"
    found.mkdir()
    out = subprocess.run(
        [sys.executable, str(HERE / "fuzz_decode.py"), f"-max_total_time={SECONDS}",
         # a process started from the suite's inherits its peak RSS as its own (getrusage):
         # libFuzzer's RSS limit would judge the suite's memory; a single allocation over
         # 1 GB is what fails instead
         "-rss_limit_mb=0", "-malloc_limit_mb=1024", f"-artifact_prefix={tmp_path}/", str(found),
         str(HERE / "corpus" / "decode")],
        capture_output=True, text=True, timeout=SECONDS + 240,
    )  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert out.returncode == 0 and not crashes, out.stderr[-4000:]
    runs = re.search(r"Done (\d+) runs", out.stderr)
    assert runs and int(runs[1]) > 10_000, out.stderr[-2000:]


def test_keys_that_mix_text_and_bytes_are_refused_not_raised():
    for kind in ("quote", "quote_columns"):
        value = msgpack.packb({"type": kind, "v": 1, "x": 1, b"y": 2}, use_bin_type=True)
        try:
            decode(value)
        except SchemaError as exc:
            assert exc.reason in ("unknown_field", "missing_field", "wrong_type")
    columns = msgpack.packb({"type": "quote_columns", "v": 1, "n": 1, "numbers": {"a": 1, b"b": 2},
                             "text": {}}, use_bin_type=True)  # fmt: skip
    try:
        decode(columns)
    except SchemaError as exc:
        assert exc.reason == "unknown_field" and "'a'" in exc.detail and "b'b'" in exc.detail
