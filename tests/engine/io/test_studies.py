"""Studies and series of a DICOMDIR and of a folder (engine.io.studies), on a patient CD built with pydicom's
FileSet (tests/engine/io/patient_cd.py: 2 patients, 2 studies, 3 series)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import Cancelled, InputError
from engine.io.dispatch import open_image
from engine.io.formats import is_dicomdir
from engine.io.studies import dicomdir_files, list_studies
from tests.engine.io.patient_cd import PATIENT_A, PATIENT_B, SPECS, files_of, write_patient_cd

IDENTIFIERS = [*PATIENT_A, *PATIENT_B, "Cdtest", "Alice", "Bob"]


@pytest.fixture
def cd(tmp_path):
    return write_patient_cd(tmp_path / "cd")


def _no_identifiers(*texts):
    for t in texts:
        for ident in IDENTIFIERS:
            assert ident not in str(t), (ident, t)


def test_dicomdir_lists_patients_studies_series(cd):
    listing = list_studies(cd)
    assert listing.source == cd and listing.warnings == []
    got = {e.uid: e for e in listing.series}
    assert set(got) == {s.uid for s in SPECS}
    for spec in SPECS:
        e = got[spec.uid]
        assert (e.modality, e.slices, e.info.number, e.info.description) == (spec.modality, spec.slices, spec.number,
                                                                             spec.description)
        assert (e.info.rows, e.info.columns) == (spec.size, spec.size)
        assert e.study_date == f"{spec.study_date[:4]}-{spec.study_date[4:6]}-{spec.study_date[6:]}"
        assert e.series_date == e.study_date and e.study_description == spec.study_description
        assert e.patient_id == spec.patient[1]
        assert sorted(e.files) == files_of(cd, spec.uid)
    # most slices first, like scan_folder
    assert [e.slices for e in listing.series] == [5, 3, 2]
    assert got[SPECS[0].uid].patient_label() == "Cdtest, Alice (CD-A-1001)"
    # patient > study > series: Alice's one study holds #1 scout then #2 venous; Bob has the MR
    tree = listing.tree()
    assert [p.patient_id for p, _ in tree] == ["CD-A-1001", "CD-B-2002"]
    (study_a, series_a), = tree[0][1]
    assert study_a.study_description == "CT abdomen"
    assert [e.series_label() for e in series_a] == ["#1 scout", "#2 venous"]
    assert [e.modality for e in tree[1][1][0][1]] == ["MR"]
    _no_identifiers(repr(listing), *(e.series_label() for e in listing.series))


def test_folder_and_dicomdir_list_the_same_series(cd):
    by_dir = {e.uid: (e.slices, e.study_date, e.modality) for e in list_studies(cd).series}
    folder = list_studies(cd.parent)
    by_folder = {e.uid: (e.slices, e.study_date, e.modality) for e in folder.series}
    assert by_dir == by_folder and len(by_dir) == 3
    # a series is opened again from its own folder (PT../ST../SE..), or from the DICOMDIR
    for spec in SPECS:
        own = files_of(cd, spec.uid)[0].parent
        assert own.name.startswith("SE") and folder.open_path(folder.find(spec.uid)) == own
        dd = list_studies(cd)
        assert dd.open_path(dd.find(spec.uid)) == cd
        img = open_image(own, series=spec.uid)
        assert img.series_uid == spec.uid and img.depth == spec.slices


def test_open_one_series_of_a_dicomdir_reads_only_its_files(cd):
    spec = SPECS[2]  # the MR, not the largest series
    headers = []
    img = open_image(cd, series=spec.uid, progress=lambda d, t: headers.append(t))
    assert img.series_uid == spec.uid and img.modality == "MR"
    assert img.voxels.shape == (spec.slices, spec.size, spec.size)
    # slice k holds base + k everywhere: the right series, sorted by position
    np.testing.assert_array_equal(img.voxels[:, 0, 0], spec.base + np.arange(spec.slices))
    assert headers[0] == spec.slices  # only its SERIES record's files were read, not the CD's 10
    # no series named: the largest (the 5-slice CT), with a note that there were 3
    big = open_image(cd)
    assert big.series_uid == SPECS[0].uid and big.voxels.shape == (5, 8, 8)
    np.testing.assert_array_equal(big.voxels[:, 4, 4], 100 + np.arange(5))
    assert big.warnings[0].startswith("3 series in DICOMDIR")
    _no_identifiers(*big.warnings, *img.warnings)


def test_missing_and_bad_files_are_left_out_with_a_warning(cd):
    venous = files_of(cd, SPECS[0].uid)
    venous[0].unlink()
    venous[1].write_bytes(b"not a dicom file at all" * 10)
    listing = list_studies(cd)
    e = listing.find(SPECS[0].uid)
    assert e.slices == 3 and len(e.files) == 3
    assert len(listing.warnings) == 2
    assert listing.warnings[0].startswith("1 file(s) listed in DICOMDIR not found: PT")
    assert listing.warnings[1] == "1 file(s) listed in DICOMDIR are not DICOM images or cannot be read"
    _no_identifiers(*listing.warnings)


def test_nothing_usable_is_one_line(cd):
    listed = [f for spec in SPECS for f in files_of(cd, spec.uid)]
    for f in listed:
        f.unlink()
    with pytest.raises(InputError) as e:
        list_studies(cd)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(cd)) and "10 file(s) listed, 0 found" in msg
    _no_identifiers(msg)


def test_not_a_dicomdir_and_cancel(cd, tmp_path):
    fake = tmp_path / "DICOMDIR"
    fake.write_bytes(b"\0" * 300)
    with pytest.raises(InputError, match="cannot read as a DICOMDIR"):
        list_studies(fake)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(InputError, match="not a folder or a DICOMDIR"):
        list_studies(other)
    with pytest.raises(Cancelled):
        list_studies(cd, should_stop=lambda: True)
    assert is_dicomdir(cd) and is_dicomdir(cd.with_name("dicomdir")) and not is_dicomdir(other)


def test_references_outside_the_cd_or_in_other_case_resolve_safely(cd, tmp_path):
    outside = tmp_path / "secret.dcm"
    outside.write_bytes(b"x")
    first = files_of(cd, SPECS[1].uid)[0]
    rel = first.relative_to(cd.parent).parts
    lower = tuple(p.lower() for p in rel)  # a CD mounted in lower case, DICOMDIR in upper
    files, warnings = dicomdir_files(cd, parts=[("..", "secret.dcm"), ("/etc", "passwd"), rel])
    assert files == [first] and warnings[0].startswith("2 file(s) listed in DICOMDIR not found")
    low_root = tmp_path / "low"
    (low_root / "/".join(lower)).parent.mkdir(parents=True)
    (low_root / "/".join(lower)).write_bytes(first.read_bytes())
    files, warnings = dicomdir_files(low_root / "DICOMDIR", parts=[rel])
    assert files == [low_root.joinpath(*lower)] and warnings == []
