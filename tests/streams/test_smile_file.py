"""Reading smiles: grouping, ACT/365F expiries, bid/ask mids, market_data JSON."""

import datetime as dt
import json

import pytest

from schemas.daycount import act365f
from streams.cli.smile_file import SmileFileError, load_smiles


def test_groups_by_underlying_and_expiry_with_act365f(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(
        "underlying,valuation_date,expiry,forward,strike,bid_vol,ask_vol\n"
        "EURUSD,2026-11-25,2027-11-25,1.1,1.0,0.09,0.11\n"
        "EURUSD,2026-11-25,2027-11-25,1.1,1.1,0.08,0.10\n"
        "USDJPY,2026-11-25,2027-05-25,150,150,0.10,0.12\n"
    )
    smiles = load_smiles(path)
    assert [(s.name, s.expiry_label) for s in smiles] == [
        ("EURUSD", "2027-11-25"),
        ("USDJPY", "2027-05-25"),
    ]
    assert smiles[0].smile.expiry == pytest.approx(365 / 365)
    assert smiles[1].smile.expiry == pytest.approx(181 / 365)
    assert smiles[0].smile.vols == pytest.approx([0.10, 0.09])


def test_valuation_date_option_and_several_forwards_rejected(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("forward,strike,vol,expiry\n1.0,1.0,0.1,2027-11-25\n1.1,1.1,0.1,2027-11-25\n")
    with pytest.raises(SmileFileError, match="several forwards"):
        load_smiles(path, dt.date(2026, 11, 25))


def test_market_data_json_splits_maturities(tmp_path):
    path = tmp_path / "md.json"
    path.write_text(
        json.dumps(
            {
                "forward": 1.0,
                "strikes": [0.9, 1.0, 1.1, 0.9, 1.0, 1.1],
                "maturities": [0.5, 0.5, 0.5, 1.0, 1.0, 1.0],
                "target_vols": [0.1] * 6,
            }
        )
    )
    smiles = load_smiles(path)
    assert [s.smile.expiry for s in smiles] == [0.5, 1.0]


def test_act365f_with_times():
    start = dt.datetime(2026, 1, 1, 12, 0)
    assert act365f(start, dt.datetime(2027, 1, 1, 12, 0)) == pytest.approx(1.0)
    assert act365f(dt.date(2026, 1, 1), dt.datetime(2026, 1, 1, 12)) == pytest.approx(0.5 / 365)


def test_a_smile_the_engine_refuses_is_named_with_its_file(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("underlying,forward,strike,vol,time_to_expiry\nEURUSD,1.1,1.0,0.1,0\n")
    with pytest.raises(SmileFileError, match=r"q.csv: EURUSD 0y: a smile needs a positive"):
        load_smiles(path)
    path = tmp_path / "md.json"
    path.write_text(json.dumps({"forward": 1.0, "strikes": [1.0, 1.1], "maturities": 0.5,
                                "target_vols": [0.1]}))  # fmt: skip
    with pytest.raises(SmileFileError, match=r"md.json: object 0: strikes and target_vols"):
        load_smiles(path)
