"""Worker settings from the environment: every variable documented, bad values named."""

import re

import pytest

import streams.access
import streams.settings
from streams.settings import Settings


@pytest.mark.parametrize("module", [streams.settings, streams.access])
def test_every_variable_read_is_documented_and_every_documented_one_is_read(module):
    with open(module.__file__) as fh:
        source = fh.read()
    doc, code = module.__doc__, source[len(module.__doc__) :]
    read = set(re.findall(r'(?:get\(|env\[)"((?:VOLSTREAM|KAFKA)_[A-Z_]+)"', code))
    documented = set(re.findall(r"``((?:VOLSTREAM|KAFKA)_[A-Z_]+)``", doc))
    assert read == documented and read


def test_values_are_parsed():
    s = Settings.from_env(
        {
            "VOLSTREAM_WARM_BATCHES": "32, 8,32",
            "VOLSTREAM_BETAS": "USDJPY=0.6, EURUSD=0.5",
            "VOLSTREAM_EPOCH": "0.05",
            "VOLSTREAM_JAX_CACHE": "/tmp/x",
            "VOLSTREAM_WARM_RUNBOOK": "0",
            "VOLSTREAM_ALERTS": "z=4, per_minute=3,condition=800",
            "VOLSTREAM_MATERIAL": "move=0.2, heston.move=1,rmse_jump=2, sabr.failed_gate=0",
            "VOLSTREAM_APPROVERS": f"bob={'AB' * 32}",
        }
    )
    sabr, heston = s.material["sabr"], s.material["heston"]
    assert (sabr.move, sabr.rmse_jump, sabr.failed_gate) == (0.2, 2.0, False)
    assert (heston.move, heston.rmse_jump, heston.failed_gate) == (1.0, 2.0, True)
    assert s.approvers == {"bob": "ab" * 32} and s.approvals
    assert not Settings.from_env({}).approvals  # nobody registered: nothing waits
    assert Settings.from_env({}).operator_name == "volstream worker volstream"
    assert (s.alerts.z, s.alerts.per_minute, s.alerts.condition) == (4.0, 3, 800.0)
    assert Settings.from_env({}).alerts.z == 3.0
    assert not s.warm_runbook and Settings.from_env({}).warm_runbook
    assert s.warm_batches == (8, 32)  # sorted, once each: the first compiles before listening
    assert s.betas == {"USDJPY": 0.6, "EURUSD": 0.5}
    assert s.surface.epoch == 0.05
    assert str(s.compile_cache) == "/tmp/x"
    assert Settings.from_env({}).warm_batches == (8, 32, 128, 512)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("VOLSTREAM_WARM_BATCHES", "8,big", "VOLSTREAM_WARM_BATCHES"),
        ("VOLSTREAM_WARM_BATCHES", "0", "each >= 1"),
        ("VOLSTREAM_WARM_BATCHES", " , ", "at least one"),
        ("VOLSTREAM_BETAS", "USDJPY=1.5", "beta of USDJPY"),
        ("VOLSTREAM_WARM_RUNBOOK", "yes", "VOLSTREAM_WARM_RUNBOOK must be 1 or 0"),
        ("VOLSTREAM_ALERTS", "zz=3", "no threshold 'zz'; known: z, min_history"),
        ("VOLSTREAM_ALERTS", "per_minute=many", "per_minute takes a whole number, got 'many'"),
        ("VOLSTREAM_MATERIAL", "sabr.moves=1", "no rule 'moves'; known: move, floor"),
        ("VOLSTREAM_MATERIAL", "bs.move=1", "no model 'bs'; known: sabr, heston"),
        ("VOLSTREAM_MATERIAL", "move=far", "move takes a number, got 'far'"),
        ("VOLSTREAM_APPROVERS", "bob=12ab", "bob=12ab is not NAME=PUBLIC_KEY"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name, value, says):
    with pytest.raises(ValueError, match=says):
        Settings.from_env({name: value})


def test_job_schedules_are_parsed_and_bad_ones_named():
    (weekly, quarterly) = Settings.from_env(
        {"VOLSTREAM_JOBS": "weekly-heston=weekly Tuesday 07:15; model-selection=quarterly 2 05:00"}
    ).jobs
    assert (weekly.cadence, weekly.day, weekly.hour, weekly.minute) == ("weekly", 1, 7, 15)
    assert (quarterly.job, quarterly.day) == ("model-selection", 2)
    assert Settings.from_env({"VOLSTREAM_JOBS": "none"}).jobs == ()
    assert [s.job for s in Settings.from_env({}).jobs] == [
        "daily-sabr", "weekly-heston", "joint", "model-selection"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="'joint=monthly 31 06:00': day 31 of the month"):
        Settings.from_env({"VOLSTREAM_JOBS": "joint=monthly 31 06:00"})
    with pytest.raises(ValueError, match="no playbook job 'weekly'"):
        Settings.from_env({"VOLSTREAM_JOBS": "weekly=weekly mon 06:00"})
    (intraday,) = Settings.from_env({"VOLSTREAM_JOBS": "daily-sabr=every 15m"}).jobs
    assert (intraday.cadence, intraday.period) == ("every", 900)
    with pytest.raises(ValueError, match="every 7m: give a period that divides a day"):
        Settings.from_env({"VOLSTREAM_JOBS": "daily-sabr=every 7m"})
    with pytest.raises(ValueError, match="with a unit s, m or h"):
        Settings.from_env({"VOLSTREAM_JOBS": "daily-sabr=every 15"})


def test_compile_returns_at_once_when_its_stamp_says_the_cache_is_filled(tmp_path):
    from streams.worker.run import compile_programs, compiled_stamp

    settings = Settings(jax_cache=tmp_path)
    stamp = compiled_stamp(settings)
    assert stamp.parent == tmp_path and not stamp.exists()
    other = compiled_stamp(Settings(jax_cache=tmp_path, warm_batches=(8, 16)))
    assert other != stamp  # other programs to warm: compiled again
    assert compiled_stamp(Settings(jax_cache=tmp_path, warm_runbook=False)) != stamp
    stamp.touch()
    said = []
    compile_programs(settings, say=said.append)
    assert said == [f"  already compiled for this engine and JAX in {tmp_path}"]
