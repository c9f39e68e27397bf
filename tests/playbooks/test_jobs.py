"""Playbook jobs from the command line: findings, exit status, and the HTML report."""

import asyncio
import json
import time
import uuid

import pytest

from streams.cli.main import main
from streams.feed.send import send_columns
from streams.feed.simulate import INDICES, TickSimulator
from streams.settings import Settings
from tests.pages import check_report, open_page

PNG = b"\x89PNG\r\n\x1a\n"


def test_term_structure_job_writes_plots_and_a_page(tmp_path, capsys):
    code = main(["playbook", "term-structure", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.startswith("Term structure: SPX on 2026-11-27")
    assert "theta by segment" in out and "calendar pass" in out
    # the sample's expiries end at 2 years: the seed's last two segments are not the market's
    assert "none reaches [3, 5) y, [5, 10) y (the last expiry is 2.00 y), so 3 segments" in out
    assert "out of sample on 1 prior date(s): " in out  # the seed's out-of-sample gate
    # the sample's SPX breaks Feller (as indices do): the job is flagged, and says so by exit 1
    assert code == 1 and "feller fail" in out
    for image in ("smiles.png", "term-structure.png"):
        assert (tmp_path / image).read_bytes().startswith(PNG)
    page = open_page(tmp_path)  # as a reader sees it, in headless Chromium
    check_report(page, tmp_path)
    assert page.title == out.splitlines()[0]
    assert "segments" in [t["heading"] for t in page.tables] and "FLAGGED" in page.text


def test_model_selection_job_compares_and_recommends_in_json(tmp_path, capsys):
    main(["playbook", "model-selection", "--json", "--out", str(tmp_path)])
    found = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in found["tables"]["comparison"]}
    assert set(rows) == {"SABR", "Heston", "Heston, theta on 3 segments", "SLV"}
    assert rows["SABR"]["n_free"] == 18 and rows["Heston"]["n_free"] == 5  # 3 x 6 expiries
    assert rows["SLV"]["n_free"] == 35  # Heston's 5 and an SVI smile (5) per expiry
    assert all(r["oos_rmse_bp"] > 0 and r["cv_error_bp"] > 0 for r in rows.values())
    (advice,) = [line for line in found["lines"] if line.startswith("recommended: ")]
    assert "not weighed" not in advice and "identifiability: " in advice  # all five criteria
    best = min(rows, key=lambda n: rows[n]["condition"])
    assert f"identifiability: {best} best ({rows[best]['condition']:.4g})" in advice
    slv = found["lines"][-1]
    assert slv.startswith("SLV: leverage reprices its SVI surface to ") and "bp RMS" in slv
    page = open_page(tmp_path)
    check_report(page, tmp_path)
    assert "comparison.png" in [i["src"] for i in page.images]
    (table,) = [t for t in page.tables if t["heading"] == "comparison"]
    assert table["rows"] == 1 + len(rows)  # a header and a row per model
    assert all(line in page.text for line in found["lines"])


def test_unknown_dates_and_misplaced_options_are_refused(capsys):
    assert main(["playbook", "weekly-heston", "--date", "2026-01-02"]) == 2
    assert "no index 'SPX' on 2026-01-02" in capsys.readouterr().err
    assert main(["playbook", "joint", "--prior", "2026-11-20"]) == 2
    assert "--prior is for model-selection" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["playbook", "monthly-magic"])


def test_daily_sabr_job_on_another_pair_and_date(tmp_path, capsys):
    assert main(["playbook", "daily-sabr", "--asset", "USDJPY", "--date", "2026-11-24",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("Daily SABR: USDJPY on 2026-11-24") and "; good" in out
    assert (tmp_path / "smiles.png").read_bytes().startswith(PNG)
    page = open_page(tmp_path)
    check_report(page, tmp_path)
    assert "gates" in [t["heading"] for t in page.tables] and "good" in page.text
    # figures in their units, and rows only for gates that apply to SABR
    assert "bp\tRMSE of vols below 50 bp" in page.text.replace("\n", "\t")
    assert "feller" not in page.text and "n/a" not in page.text and "nan" not in page.text


def test_a_figure_whose_text_runs_off_its_canvas_is_caught():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from playbooks.report import clipped_texts

    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")  # as the reports lay out
    ax.plot([0, 1], [0, 1])
    fig.suptitle("Daily SABR: USDJPY on 2026-11-27: fitted against market, far too long")
    assert clipped_texts(fig) == [fig._suptitle.get_text()]
    fig._suptitle.set_text("short")
    assert clipped_texts(fig) == []
    plt.close(fig)


def test_joint_job_reports_whether_the_indices_share_rho(tmp_path, capsys):
    code = main(["playbook", "joint", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.startswith("Joint calibration: SPX, SX5E, NKY on 2026-11-27")
    page = open_page(tmp_path)
    check_report(page, tmp_path)
    assert page.title == out.splitlines()[0] and ("good" if code == 0 else "FLAGGED") in page.text
    assert {"shifts", "sharing"} <= {t["heading"] for t in page.tables}
    assert [i["src"] for i in page.images] == ["smiles.png", "comparison.png"]


def test_jobs_run_on_the_streams_current_surfaces(kafka_bootstrap, monkeypatch, capsys, tmp_path):
    """``--stream``: the quotes topic read back into a book, and the job run on its smiles and
    surfaces (one simulated pair and index, every option quoted once)."""
    prefix = f"jobs-{uuid.uuid4().hex[:6]}"
    settings = Settings(bootstrap=kafka_bootstrap, topic_prefix=prefix, partitions=2)
    ticks = TickSimulator(pairs=1, indices=1, seed=3).columns(time.time() - 5, 1000.0, count=0)
    asyncio.run(send_columns(ticks, settings))
    monkeypatch.setenv("VOLSTREAM_TOPIC_PREFIX", prefix)
    args = ["playbook", "weekly-heston", "--stream", "--asset", "SPX", "--bootstrap"]
    assert main([*args, kafka_bootstrap, "--json", "--out", str(tmp_path)]) == 0
    found = json.loads(capsys.readouterr().out)
    page = open_page(tmp_path)  # the weekly Heston page: the stream's smiles, its tables
    check_report(page, tmp_path)
    assert page.title.startswith("Weekly Heston: SPX from the stream at ")
    assert found["good"] and "bp of vol" in found["lines"][0]  # the stream quotes vols
    params = found["tables"]["parameters"][0]
    assert params["rho"] == pytest.approx(INDICES["SPX"][-1], abs=0.05)  # the simulator's
    assert main(["playbook", "daily-sabr", "--stream", "--bootstrap", kafka_bootstrap]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Daily SABR: EURUSD from the stream at ")
    assert out.count("EURUSD T = ") == 4 and out.count("; good") == 4  # every expiry
    assert main(["playbook", "joint", "--stream", "--asset", "NKY", "--bootstrap",
                 kafka_bootstrap]) == 2  # fmt: skip
    assert "no index 'NKY' surface on the stream (it holds ['SPX'])" in capsys.readouterr().err


def test_the_jobs_names_have_one_table():
    from playbooks.jobs import JOBS
    from playbooks.names import JOB_NAMES
    from streams.cli.main import build_parser
    from streams.settings import Settings

    assert tuple(JOBS) == JOB_NAMES
    # the CLI offers them and the schedule accepts them from the same table
    play = build_parser().parse_args(["playbook", JOB_NAMES[-1]])
    assert play.name == JOB_NAMES[-1]
    with pytest.raises(ValueError, match="no playbook job 'nightly'"):
        Settings.from_env({"VOLSTREAM_JOBS": "nightly=daily 06:00"})
