"""The volstream CLI, invoked as users do: the installed console script."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.sabr import SABRCalibrator
from streams.cli.smile_file import load_smiles

ROOT = Path(__file__).resolve().parents[2]
VOLSTREAM = Path(sys.executable).with_name("volstream")
SAMPLE = ROOT / "data" / "fx_smiles.csv"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VOLSTREAM), *args], capture_output=True, text=True, timeout=300)


def test_help_teaches_the_verbs():
    out = run("--help")
    assert out.returncode == 0
    for word in (
        "calibrate",
        "demo",
        "worker",
        "replay",
        "simulate",
        "tail",
        "broker",
        "examples:",
    ):
        assert word in out.stdout
    sub = run("calibrate", "--help")
    assert "time_to_expiry" in sub.stdout and "--weights" in sub.stdout


def test_calibrate_json_equals_a_direct_engine_calibration():
    out = run("calibrate", "--json", str(SAMPLE))
    assert out.returncode == 0, out.stderr
    recs = json.loads(out.stdout)
    smiles = load_smiles(SAMPLE)
    assert len(recs) == len(smiles) == 18
    direct = SABRCalibrator(beta=0.5).calibrate_batch(
        [s.smile.forward for s in smiles],
        [s.smile.expiry for s in smiles],
        [np.array(s.smile.strikes) for s in smiles],
        [np.array(s.smile.vols) for s in smiles],
    )
    for i, rec in enumerate(recs):
        assert rec["converged"] and rec["status"] == "converged"
        for name in ("alpha", "rho", "nu"):
            assert rec["params"][name] == pytest.approx(float(direct.params[name][i]), rel=1e-10)
        assert rec["gates"]["feller"]["verdict"] == "n/a"
        assert rec["gates"]["rmse"]["verdict"] == "pass" and rec["rmse"] < 5e-4


@pytest.mark.kafka
def test_demo_streams_the_sample_through_a_worker(kafka_bootstrap, tmp_path):
    env = os.environ | {"VOLSTREAM_STATE_DIR": str(tmp_path)}
    out = subprocess.run(
        [str(VOLSTREAM), "demo", "--max", "--bootstrap", kafka_bootstrap],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "underlying" in out.stdout and "rmse bp" in out.stdout
    lines = out.stdout.strip().splitlines()
    at = next(i for i, line in enumerate(lines) if "calibrations of" in line)
    summary, fresh = lines[at : at + 2]
    assert "calibrations of 12 smiles and 1 surface in" in summary, summary
    assert "good" in summary and "p99" in summary
    assert fresh.startswith("watermark freshness") and "p99" in fresh, fresh
    covered = re.search(r"\(([\d,]+) of ([\d,]+) ticks covered\); ([\d,]+) ticks needed", fresh)
    assert covered and covered[1] == covered[2], fresh  # every replayed tick reflected
    # the broker was there before the demo: it stays, and the demo says how to look back
    assert "volstream report --out report/" in out.stdout and "audit verify" in out.stdout
    assert 12 <= int(covered[3].replace(",", "")) < int(covered[2].replace(",", ""))
    assert "\nSPX " in out.stdout and " heston " in out.stdout  # the index's row in the table


def test_market_data_json_and_fail_on_gates(tmp_path):
    noisy = {
        "name": "noisy",
        "forward": 1.0,
        "maturities": 1.0,
        "strikes": [0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2],
        "target_vols": [0.14, 0.09, 0.13, 0.08, 0.12, 0.07, 0.12],
    }
    path = tmp_path / "md.json"
    path.write_text(json.dumps(noisy))
    out = run("calibrate", str(path), "--fail-on-gates")
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "rmse" in out.stdout


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (
            "underlying,forward,strike,mid_vol,time_to_expiry\nX,1.0,abc,0.1,1\n",
            ".csv",
            "row 2: column 'strike' is not a number",
        ),
        (
            "underlying,forward,strike,mid_vol,expiry\nX,1.0,1.0,0.1,2027-01-01\n",
            ".csv",
            "without valuation_date",
        ),
        (
            "underlying,forward,strike,bid_vol,ask_vol,time_to_expiry\nX,1,1,0.2,0.1,1\n",
            ".csv",
            "crossed quote",
        ),
        (
            "forward,strike,mid_vol,time_to_expiry\n1,1,-0.1,1\n1,1.1,0.1,1\n1,0.9,0.1,1\n",
            ".csv",
            "vols must be positive",
        ),
        ("{not json", ".json", "invalid JSON"),
        ("a,b\n", ".txt", "unknown format"),
    ],
)
def test_bad_files_exit_2_with_a_precise_message(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    out = run("calibrate", str(path))
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_file_and_bad_beta():
    assert "no such file" in run("calibrate", "nope.csv").stderr
    bad = run("calibrate", "--beta", "2", str(SAMPLE))
    assert bad.returncode == 2 and "--beta" in bad.stderr


def test_calibrate_walks_the_runbook_on_smiles_that_fail(tmp_path, capsys):
    from streams.cli.main import main
    from tests.engine.test_runbook import NARROW  # rho and nu cannot be told apart

    pairs = zip(NARROW["strikes"], NARROW["target_vols"])
    rows = "".join(f"NARROW,1.0,{k},{v},1.0\n" for k, v in pairs)
    path = tmp_path / "narrow.csv"
    path.write_text("underlying,forward,strike,mid_vol,time_to_expiry\n" + rows)
    assert main(["calibrate", str(path), "--runbook", "--fail-on-gates"]) == 0
    out = capsys.readouterr().out
    assert "runbook: NARROW" in out and "fixed by simpler_model" in out
    main(["calibrate", str(path), "--runbook", "--json"])
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["runbook"]["step"] == "simpler_model"
    assert [a["step"] for a in rec["runbook"]["attempts"]][:2] == ["initial", "adjusted_starts"]
    assert all(g["verdict"] != "fail" for g in rec["gates"].values())


def test_replay_help_says_what_source_and_asset_class_default_to():
    out = run("replay", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "Without a source column, source is the file's name" in text
    assert "a row with a forward and a vol is fx" in text
    assert "fits both or neither is refused" in text


@pytest.mark.parametrize("argv", [
    ["worker"], ["replay", "ticks.csv"], ["simulate"], ["tail", "params"],
    ["playbook", "daily-sabr", "--stream"], ["report", "--out", "r"], ["audit", "verify"], ["audit", "show"],
    ["approve", "KEY@1", "--as", "bob"], ["reject", "KEY@1", "--as", "bob"],
])  # fmt: skip
def test_every_kafka_client_takes_its_credentials_from_flags_or_the_environment(argv, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    from streams.cli.connect import settings_of
    from streams.cli.main import build_parser

    secret, ca = tmp_path / "password", tmp_path / "ca.pem"
    secret.write_text("s3cret\n")
    ca.write_text("")
    for name in [n for n in os.environ if n.startswith("KAFKA_")]:
        monkeypatch.delenv(name)
    flags = ["--bootstrap", "127.0.0.1:1", "--security-protocol", "SASL_SSL", "--sasl-username",
             "desk", "--sasl-password-file", str(secret), "--ssl-cafile", str(ca)]  # fmt: skip
    security = settings_of(build_parser().parse_args([*argv, *flags])).security
    assert (security.protocol, security.username, security.password, security.cafile) == (
        "SASL_SSL", "desk", "s3cret", str(ca))  # fmt: skip
    assert "s3cret" not in repr(security)
    # the same from the environment; a flag wins over its variable
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "env-user")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    args = build_parser().parse_args([*argv, "--bootstrap", "127.0.0.1:1", "--sasl-username", "me"])
    security = settings_of(args).security
    assert (security.protocol, security.mechanism, security.username, security.password) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-256", "me", "s3cret")  # fmt: skip
    assert security.options()["sasl_plain_password"] == "s3cret"


def test_sasl_without_a_password_is_an_error_that_says_what_to_set():
    from streams.access import KafkaSecurity

    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE"):
        KafkaSecurity("SASL_SSL", username="desk")
    with pytest.raises(ValueError, match="security protocol 'TLS'"):
        KafkaSecurity("TLS")
