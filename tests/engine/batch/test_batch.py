"""``boxseg batch``: manifests, fingerprints, and real runs on a Dask LocalCluster (2 workers x 1 thread).

The cluster tests use two small 3D cases of shared/data/eval (dcmqi ct-3slice: 3 objects on 3
slices; MSD spleen2: 20 slices) and the original files of two of them in shared/data/raw (the spleen NIfTI, the
dcmqi DICOM series): the raw files window to exactly the cases' ``imgs``, so their label maps must
equal the cases' ``segs`` from :func:`engine.pipeline.segment_case`.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.batch.manifest import Study, read_manifest
from engine.batch.records import fingerprint, output_name, up_to_date
from engine.batch.run import BatchOptions, local_sizing, run_batch
from engine.inference.session import SessionConfig
from tests.conftest import DATA, EVAL, needs_shared

CT3 = "3DBox_CT_dcmqi_ct-3slice"
SPLEEN = "3DBox_CT_MSD-Spleen_spleen2"
SPLEEN_NII = DATA / "raw" / "ivadomed-spleen" / "sub-spleen2_ct.nii.gz"
CT3_DICOM = DATA / "raw" / "dcmqi" / "ct-3slice"


def _options(threads=None, **kw) -> BatchOptions:
    return BatchOptions(config=SessionConfig(threads=threads, cache_bytes=512 << 20), **kw)


def _report(outdir: Path) -> dict[str, dict]:
    with open(outdir / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == ["study", "objects", "status", "seconds", "error"]
    return {r["study"]: r for r in rows}


def _no_temp_files(outdir: Path) -> None:
    assert not [p.name for p in outdir.rglob("*.part*")], "temporary files left behind"


# --- manifests and fingerprints (no model) ------------------------------------------------------


def test_manifest_csv_groups_rows_into_studies(tmp_path):
    img = tmp_path / "scans" / "a.nii.gz"
    img.parent.mkdir()
    img.write_bytes(b"x")
    (tmp_path / "m.csv").write_text(
        "image,series,object,box,slice,window\n"
        "scans/a.nii.gz,,liver,\"1,2,30,40\",3,\n"
        "scans/a.nii.gz,,spleen,\"1 2 0 30 40 5\",,lung\n"
        "scans/b.nii.gz,,x,\"1,2,3\",,\n"
        ",,x,\"1,2,3,4\",,\n"
        "scans/a.nii.gz,,bad,\"1,2,0,30,40,5\",2,\n")
    studies = read_manifest(tmp_path / "m.csv")
    assert [s.study for s in studies] == ["scans_a", "scans_b", "row-5"]
    a, b, nothing = studies
    assert a.image == str(img.resolve()) and a.kind == "image"
    assert [(o.name, o.box, o.slice, o.window) for o in a.objects] == [
        ("liver", (1, 2, 30, 40), 3, None), ("spleen", (1, 2, 0, 30, 40, 5), None, "lung")]
    assert a.error is not None and "row 6" in a.error and "3D box" in a.error  # its bad object fails the study
    assert "box must be" in b.error and "no image" in nothing.error
    assert output_name(a) == "scans_a.nii.gz" and output_name(a, "dicom-seg") == "scans_a.dcm"
    assert output_name(a, "seg-nrrd") == "scans_a.seg.nrrd"


def test_manifest_jsonl_study_ids_and_conflicts(tmp_path):
    rows = [{"image": str(CT3_DICOM), "study": "p1/ct", "box": [1, 2, 30, 40], "slice": 0},
            {"image": str(CT3_DICOM), "study": "p1/ct", "box": "5,6,0,30,40,2", "object": "heart"},
            {"image": str(SPLEEN_NII), "study": "p1/ct", "box": [1, 2, 3, 4], "slice": 0}]
    (tmp_path / "m.jsonl").write_text("# comment\n" + "\n".join(json.dumps(r) for r in rows) + "\n")
    first, conflict = read_manifest(tmp_path / "m.jsonl")
    assert first.study == "p1_ct" and len(first.objects) == 2 and first.error is None
    assert first.objects[1].name == "heart" and output_name(first) == "p1_ct.dcm"
    assert "already used by row 2" in conflict.error


def test_manifest_errors_are_one_line(tmp_path):
    from engine.base.errors import InputError

    (tmp_path / "m.csv").write_text("path,boxes\nx,1\n")
    with pytest.raises(InputError, match="needs columns 'image' and 'box'"):
        read_manifest(tmp_path / "m.csv")
    with pytest.raises(InputError, match="no such manifest"):
        read_manifest(tmp_path / "nope.csv")
    (tmp_path / "m.txt").write_text("")
    with pytest.raises(InputError, match=r"\.csv or \.jsonl"):
        read_manifest(tmp_path / "m.txt")


def test_npz_folder_skips_the_output_folder(tmp_path):
    (tmp_path / "3DBox_CT_x_1.npz").write_bytes(b"")
    (tmp_path / "notacase.npz").write_bytes(b"")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "3DBox_CT_x_2.npz").write_bytes(b"")
    studies = read_manifest(tmp_path, exclude=tmp_path / "out")
    assert [(s.study, s.kind) for s in studies] == [("3DBox_CT_x_1", "npz")]
    assert output_name(studies[0], "nifti") == "3DBox_CT_x_1.npz"


def test_fingerprint_follows_input_files_and_parameters(tmp_path):
    f = tmp_path / "a.nii.gz"
    f.write_bytes(b"abc")
    st = Study("a", "image", str(f))
    fp0, nbytes = fingerprint(st, "a.nii.gz")
    assert nbytes == 3 and fingerprint(st, "a.nii.gz")[0] == fp0
    assert fingerprint(st, "a.dcm")[0] != fp0
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    fp1 = fingerprint(st, "a.nii.gz")[0]
    assert fp1 != fp0
    from engine.pipeline import StudyObject

    st.objects.append(StudyObject("o", (1, 2, 3, 4), 0))
    assert fingerprint(st, "a.nii.gz")[0] != fp1


def test_local_sizing_never_exceeds_the_cores():
    assert local_sizing(None, None, cores=2, ram_gib=64) == (2, 1)
    assert local_sizing(None, None, cores=16, ram_gib=64) == (8, 2)
    assert local_sizing(None, None, cores=16, ram_gib=6) == (4, 2)  # memory caps the workers
    assert local_sizing(3, None, cores=16) == (3, 5)
    assert local_sizing(None, 4, cores=16, ram_gib=64) == (4, 4)


# --- real runs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(session):
    """segment_case of the three small 3D cases on the default model (what `boxseg eval` segments)."""
    from engine.io.challenge_npz import load_case
    from engine.pipeline import segment_case

    return {n: segment_case(session, load_case(EVAL / f"{n}.npz", with_gt=False)) for n in (CT3, SPLEEN)}


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=logging.ERROR) as c, \
            distributed.Client(c) as client:
        yield c, client


def _executing(dask_worker):
    return os.getpid(), [str(ts.key) for ts in dask_worker.state.executing]


def _loads():
    from engine.inference.registry import session_loads

    return session_loads()


@needs_shared
def test_npz_batch_survives_a_killed_worker_and_reruns_as_a_no_op(tmp_path, cluster, reference, session):
    c, client = cluster
    cases = tmp_path / "cases"
    cases.mkdir()
    for n in (CT3, SPLEEN):
        (cases / f"{n}.npz").symlink_to(EVAL / f"{n}.npz")
    out = tmp_path / "out"
    result, killed = {}, {}

    def run():
        result["r"] = run_batch(cases, out, _options(scheduler=c.scheduler_address, threads=1))

    th = threading.Thread(target=run)
    th.start()
    seen = {}
    deadline = time.monotonic() + 300
    while th.is_alive() and not killed and time.monotonic() < deadline:
        try:
            state = client.run(_executing)
        except Exception:  # noqa: BLE001 - a worker starting up
            state = {}
        for addr, (pid, keys) in state.items():
            for k in keys:
                if SPLEEN in k:  # the longest study (20 slices): kill its worker 2 s into it
                    seen.setdefault(k, time.monotonic())
                    if time.monotonic() - seen[k] > 2:
                        os.kill(pid, signal.SIGKILL)
                        killed.update(pid=pid, key=k)
        time.sleep(0.2)
    th.join(timeout=600)
    assert killed, "the spleen study was never seen running"
    res = result["r"]
    assert res.failed == 0 and res.count("ok") == 2, res.rows
    rep = _report(out)
    assert {k: (r["status"], r["objects"]) for k, r in rep.items()} == {CT3: ("ok", "3"), SPLEEN: ("ok", "1")}
    for n in (CT3, SPLEEN):
        with np.load(out / f"{n}.npz") as z:
            assert z.files == ["segs"]
            assert z["segs"].dtype == reference[n].dtype and np.array_equal(z["segs"], reference[n]), n
    rec = json.loads((out / ".boxseg" / f"{SPLEEN}.npz.json").read_text())
    assert rec["model_sha256"] == session.model_id and not rec["worker"].endswith(f":{killed['pid']}")
    _no_temp_files(out)
    # every worker (the restarted one too) loaded the model once, not once per study
    assert set(client.run(_loads).values()) == {1}

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    again = run_batch(cases, out, _options(scheduler=c.scheduler_address, threads=1))
    assert again.mode == "nothing to do" and again.count("skipped") == 2
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")} == mtimes
    assert {r["status"] for r in _report(out).values()} == {"skipped"}


@needs_shared
def test_manifest_of_raw_files_with_bad_rows(tmp_path, cluster, reference, capsys):
    from app.cli.main import main
    from engine.io.dispatch import read_labelmap
    from engine.io.dispatch import open_image

    c, _ = cluster
    with np.load(EVAL / f"{CT3}.npz") as z:
        ct3_boxes = z["boxes"]
    manifest = tmp_path / "studies.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "study", "object", "box"])
        w.writerow([SPLEEN_NII, "", "spleen", "22,27,3,134,150,22"])
        for name, b in zip(("liver", "spine", "heart"), ct3_boxes):
            w.writerow([CT3_DICOM, "", name, ",".join(str(int(v)) for v in b)])
        w.writerow([tmp_path / "missing.nii.gz", "", "x", "1,2,0,30,40,2"])
        w.writerow([CT3_DICOM, "outside", "x", "600,600,0,700,700,2"])
    out = tmp_path / "out"
    rc = main(["batch", str(manifest), "-o", str(out), "--scheduler", c.scheduler_address,
               "--threads-per-worker", "1"])
    cap = capsys.readouterr()
    assert rc == 1
    assert "2 segmented, 0 up to date, 2 failed" in cap.out and "studies/min" in cap.out
    rep = _report(out)
    assert rep["sub-spleen2_ct"]["status"] == "ok" and rep["ct-3slice"]["status"] == "ok"
    assert rep["ct-3slice"]["objects"] == "3"
    assert rep["missing"]["status"] == "failed" and "no such file" in rep["missing"]["error"]
    assert rep["outside"]["status"] == "failed" and "outside the image" in rep["outside"]["error"]
    assert "outside the image" in cap.err

    img = open_image(SPLEEN_NII)
    lm = read_labelmap(out / "sub-spleen2_ct.nii.gz", img)  # refuses a label map of another geometry
    assert np.array_equal(lm.labels, reference[SPLEEN])
    ct = open_image(CT3_DICOM)
    seg = read_labelmap(out / "ct-3slice.dcm", ct)
    assert np.array_equal(seg.labels, reference[CT3])
    assert [s.name for s in seg.segments] == ["liver", "spine", "heart"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "ct-3slice.dcm", "report.csv", "sub-spleen2_ct.label.txt", "sub-spleen2_ct.meta.json",
        "sub-spleen2_ct.nii.gz"]  # + ITK-SNAP names, dcmqi metadata (codes)
    _no_temp_files(out)
    rec = json.loads((out / ".boxseg" / "ct-3slice.dcm.json").read_text())
    assert rec["objects"] == 3 and up_to_date(out, "ct-3slice.dcm", rec["fingerprint"], rec["model_sha256"])


@needs_shared
def test_without_the_cluster_extra_runs_sequentially(tmp_path, monkeypatch, capsys):
    import engine.batch.run
    from app.cli.main import main

    monkeypatch.setattr(engine.batch.run, "have_distributed", lambda: False)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image": str(CT3_DICOM), "study": "ct", "box": "218,337,295,431",
                                    "slice": 1, "object": "spine"}) + "\n")
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "-o", str(out), "--threads-per-worker", "1", "--format", "nifti"]) == 0
    cap = capsys.readouterr()
    assert "pip install 'boxseg[cluster]'" in cap.err and "sequential" in cap.out
    assert _report(out)["ct"]["status"] == "ok"
    from engine.io.dispatch import read_labelmap
    from engine.io.dispatch import open_image

    labels = read_labelmap(out / "ct.nii.gz", open_image(CT3_DICOM)).labels
    assert labels[1].any() and not labels[0].any() and not labels[2].any()
    # a scheduler address without the extra is a one-line error
    assert main(["batch", str(manifest), "-o", str(out), "--no-resume", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "boxseg[cluster]" in capsys.readouterr().err
