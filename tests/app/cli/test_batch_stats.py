"""`boxseg batch --stats`: OUTDIR/stats.csv holds, per object, exactly the row `boxseg stats` gives on the
written label map; a rerun that skips up-to-date studies still reports them (from the record, or by
measuring an output written without --stats). Sequential runs on copies of the bundled CT slice."""

from __future__ import annotations

import csv
import json
import shutil

from app.cli.main import main
from engine.batch.run import STATS_COLUMNS
from engine.data.measure import COLUMNS
from tests.conftest import REPO

CT = REPO / "assets" / "sample" / "CT_small.dcm"


def manifest(tmp_path):
    m = tmp_path / "studies.csv"
    rows = [["image", "study", "object", "box", "slice"]]
    for s, box in (("a", "72,0,110,28"), ("b", "20,60,60,100")):
        img = tmp_path / f"{s}.dcm"
        shutil.copy(CT, img)
        rows.append([str(img), s, "bone", box, 0])
    rows.append([str(tmp_path / "a.dcm"), "a", "second", "20,60,60,100", 0])  # a second object of study a
    with open(m, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return m


def read_csv(path):
    with open(path, newline="") as f:
        r = list(csv.reader(f))
    return r[0], r[1:]


def stats_rows(tmp_path, study):
    out = tmp_path / f"{study}-stats.csv"
    assert main(["stats", str(tmp_path / f"{study}.dcm"), str(tmp_path / "out" / f"{study}.dcm"),
                 "--csv", str(out)]) == 0
    header, rows = read_csv(out)
    assert tuple(header) == COLUMNS
    return rows


def test_batch_stats_rows_are_the_stats_of_each_written_label_map(tmp_path, capsys):
    m, out = manifest(tmp_path), tmp_path / "out"
    args = ["batch", str(m), "-o", str(out), "--workers", "0", "--threads-per-worker", "1"]
    assert main(args + ["--stats"]) == 0
    header, rows = read_csv(out / "stats.csv")
    assert tuple(header) == STATS_COLUMNS
    expected = [["a"] + r for r in stats_rows(tmp_path, "a")] + [["b"] + r for r in stats_rows(tmp_path, "b")]
    assert len(expected) == 3 and rows == expected
    assert float(rows[0][header.index("voxels")]) > 0
    rec = json.loads((out / ".boxseg" / "a.dcm.json").read_text())
    assert [r["name"] for r in rec["stats"]] == ["bone", "second"]

    # a rerun skips both studies and still writes their rows (from the records)
    (out / "stats.csv").unlink()
    assert main(args + ["--stats"]) == 0
    assert "2 up to date" in capsys.readouterr().out
    assert read_csv(out / "stats.csv")[1] == expected


def test_outputs_made_without_stats_are_measured_when_skipped(tmp_path):
    m, out = manifest(tmp_path), tmp_path / "out"
    args = ["batch", str(m), "-o", str(out), "--workers", "0", "--threads-per-worker", "1"]
    assert main(args) == 0
    assert not (out / "stats.csv").exists()
    assert "stats" not in json.loads((out / ".boxseg" / "b.dcm.json").read_text())
    assert main(args + ["--stats"]) == 0
    _, rows = read_csv(out / "stats.csv")
    assert [r for r in rows if r[0] == "b"] == [["b"] + r for r in stats_rows(tmp_path, "b")]
    assert "stats" in json.loads((out / ".boxseg" / "b.dcm.json").read_text()), "kept for the next run"
