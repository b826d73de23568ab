"""Resuming a batch (issue 18): an interrupted batch runs only the studies it did not finish; a changed
box, input file or model redoes that study; a missing, truncated or edited output is redone (records
hold the output's sha256); --no-resume redoes all; a failed rerun keeps the previous output and record;
two batches on one folder never remove each other's temporary files. Sequential runs (workers=0) on
copies of the bundled CT slice: each study is one encoder run."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time

import pytest

import engine.batch.run as batch_run
from engine.base.atomic import temp_name
from engine.batch.run import BatchOptions, run_batch
from engine.inference.session import SessionConfig
from tests.conftest import REPO

CT = REPO / "assets" / "sample" / "CT_small.dcm"
STUDIES = ("a", "b", "c")


def options(**kw) -> BatchOptions:
    return BatchOptions(config=SessionConfig(threads=1, cache_bytes=64 << 20), workers=0, **kw)


def write_manifest(tmp_path, boxes=None):
    boxes = boxes or {}
    m = tmp_path / "studies.csv"
    with open(m, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "study", "object", "box", "slice"])
        for s in STUDIES:
            img = tmp_path / f"{s}.dcm"
            if not img.exists():
                shutil.copy(CT, img)
            w.writerow([img, s, "thing", boxes.get(s, "72,0,110,28"), 0])
    return m


def statuses(res) -> dict:
    return {r["study"]: r["status"] for r in res.rows}


@pytest.fixture
def done(tmp_path):
    """A finished batch of three studies: (manifest, outdir)."""
    m, out = write_manifest(tmp_path), tmp_path / "out"
    assert statuses(run_batch(m, out, options())) == dict.fromkeys(STUDIES, "ok")
    return m, out


class Interrupted(BaseException):
    """Stands for Ctrl+C (pytest handles a real KeyboardInterrupt itself)."""


def test_an_interrupted_batch_resumes_only_the_missing_studies(tmp_path, monkeypatch):
    m, out = write_manifest(tmp_path), tmp_path / "out"
    real, calls = batch_run.process_study, []

    def interrupted(study, *a, **k):
        calls.append(study.study)
        if calls == ["a", "b"]:
            raise Interrupted  # Ctrl+C during the second study
        return real(study, *a, **k)

    monkeypatch.setattr(batch_run, "process_study", interrupted)
    with pytest.raises(Interrupted):
        run_batch(m, out, options())
    with open(out / "report.csv", newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["ok", "failed", "failed"]
    calls.clear()
    assert statuses(run_batch(m, out, options())) == {"a": "skipped", "b": "ok", "c": "ok"}
    assert calls == ["b", "c"]


def test_a_changed_box_file_or_model_redoes_that_study(tmp_path, done):
    m, out = done
    write_manifest(tmp_path, boxes={"a": "70,0,108,30"})
    time.sleep(0.01)
    (tmp_path / "b.dcm").write_bytes((tmp_path / "b.dcm").read_bytes())  # same bytes, new mtime
    os.utime(tmp_path / "b.dcm", ns=(time.time_ns(), time.time_ns() + 10**9))
    rec = out / ".boxseg" / "c.dcm.json"
    data = json.loads(rec.read_text())
    data["model_sha256"] = "0" * 64  # made with another model
    rec.write_text(json.dumps(data))
    assert statuses(run_batch(m, out, options())) == dict.fromkeys(STUDIES, "ok")
    assert statuses(run_batch(m, out, options())) == dict.fromkeys(STUDIES, "skipped")


def test_a_missing_truncated_or_edited_output_is_redone(done):
    m, out = done
    good = (out / "c.dcm").read_bytes()
    (out / "a.dcm").unlink()
    (out / "b.dcm").write_bytes((out / "b.dcm").read_bytes()[:-100])
    edited = bytearray(good)
    edited[-1] ^= 0xFF  # same size, other content: a size check alone would call it done
    (out / "c.dcm").write_bytes(bytes(edited))
    assert statuses(run_batch(m, out, options())) == dict.fromkeys(STUDIES, "ok")
    redone = (out / "c.dcm").read_bytes()
    assert redone != bytes(edited)
    assert same_segmentation(redone, good)  # new UIDs (their length varies), same segmentation
    for s in ("a", "b"):
        assert same_segmentation((out / f"{s}.dcm").read_bytes(), good)
    assert statuses(run_batch(m, out, options(resume=False))) == dict.fromkeys(STUDIES, "ok")  # --no-resume


def same_segmentation(a: bytes, b: bytes) -> bool:
    """Two DICOM-SEG files hold the same segmentation: equal pixel data, frame geometry, segment descriptions
    and source references. Instance UIDs and creation times are left out: a rewrite makes new ones."""
    import io

    import pydicom

    da, db = (pydicom.dcmread(io.BytesIO(x)) for x in (a, b))
    keys = ("SOPClassUID", "Modality", "SegmentationType", "Rows", "Columns", "NumberOfFrames",
            "FrameOfReferenceUID", "SeriesDescription", "ContentLabel")
    seq_keys = ("SegmentSequence", "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
                "ReferencedSeriesSequence")
    return (da.PixelData == db.PixelData and all(da.get(k) == db.get(k) for k in keys)
            and all(str(da.get(k)) == str(db.get(k)) for k in seq_keys))


def test_a_failed_rerun_keeps_the_previous_output_and_record(tmp_path, done):
    m, out = done
    before = (out / "a.dcm").read_bytes(), (out / ".boxseg" / "a.dcm.json").read_text()
    write_manifest(tmp_path, boxes={"a": "600,600,700,700"})  # outside the image: this rerun fails
    res = statuses(run_batch(m, out, options()))
    assert res == {"a": "failed", "b": "skipped", "c": "skipped"}
    assert ((out / "a.dcm").read_bytes(), (out / ".boxseg" / "a.dcm.json").read_text()) == before


def test_another_batchs_temporary_files_are_left_alone(done):
    m, out = done
    young = temp_name(out / "a.dcm")            # another batch writing right now
    old = temp_name(out / ".boxseg" / "b.dcm.json")  # a worker killed two days ago
    young.write_bytes(b"x")
    old.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    run_batch(m, out, options(resume=False))
    assert young.exists() and not old.exists()


def test_a_tls_scheduler_is_used_with_its_certificates_and_only_with_them(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("cryptography", reason="TLS test certificates need the 'test' extra (cryptography)")
    import logging

    from app.cli.main import main
    from distributed.security import Security

    sec = Security.temporary()  # PEM text; the batch takes files, as a user's would be
    files = {}
    for name, pem in (("ca.pem", sec.tls_ca_file), ("cert.pem", sec.tls_client_cert), ("key.pem", sec.tls_client_key)):
        (tmp_path / name).write_text(pem)
        files[name] = str(tmp_path / name)
    tls = ["--tls-ca-file", files["ca.pem"], "--tls-cert", files["cert.pem"], "--tls-key", files["key.pem"]]
    m, out = write_manifest(tmp_path), tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, protocol="tls://",
                                  host="127.0.0.1", security=sec, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        assert main(["batch", str(m), "-o", str(out), "--scheduler", address]) == 2
        assert "needs --tls-ca-file" in capsys.readouterr().err
        assert main(["batch", str(m), "-o", str(out), "--scheduler", address.replace("tls://", "tcp://"), *tls]) == 2
        assert "must start with tls://" in capsys.readouterr().err
        assert main(["batch", str(m), "-o", str(out), "--scheduler", address, *tls[:2]]) == 2
        assert "all three" in capsys.readouterr().err
        assert main(["batch", str(m), "-o", str(out), "--scheduler", address, "--threads-per-worker", "1", *tls]) == 0
        cap = capsys.readouterr()
    assert "3 segmented" in cap.out, cap.out + cap.err
    assert all((out / f"{s}.dcm").exists() for s in STUDIES)
