"""A small patient CD written by the tests: a DICOMDIR built with pydicom's FileSet over 3 series of 2 patients.

| patient | study (date, description)     | series (number, description) | modality | slices |
|---------|-------------------------------|------------------------------|----------|--------|
| A       | 2024-01-15 "CT abdomen"       | #2 "venous"                  | CT       | 5      |
| A       | 2024-01-15 "CT abdomen"       | #1 "scout"                   | CT       | 2      |
| B       | 2023-06-30 "MR head"          | #1 "T1"                      | MR       | 3      |

Slices are 8x8 (CT) / 6x6 (MR) int16, 1 mm apart; slice k of each series holds ``base + k`` everywhere (CT:
base 100 HU after the rescale of -1024, MR: base 10), so a test can tell which series and slice opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.engine.io.crafted import _ct_dataset

PATIENT_A = ("Cdtest^Alice", "CD-A-1001")
PATIENT_B = ("Cdtest^Bob", "CD-B-2002")


@dataclass(frozen=True)
class SeriesSpec:
    patient: tuple[str, str]
    study: str          # StudyInstanceUID suffix
    study_date: str
    study_description: str
    number: int
    description: str
    modality: str
    slices: int
    size: int
    base: int           # slice k's value (after rescale) is base + k

    @property
    def uid(self) -> str:
        return f"1.2.826.0.1.3680043.8.498.7719.{self.study}.{self.number}"


SPECS = (
    SeriesSpec(PATIENT_A, "1", "20240115", "CT abdomen", 2, "venous", "CT", 5, 8, 100),
    SeriesSpec(PATIENT_A, "1", "20240115", "CT abdomen", 1, "scout", "CT", 2, 8, 300),
    SeriesSpec(PATIENT_B, "2", "20230630", "MR head", 1, "T1", "MR", 3, 6, 10),
)


def slice_dataset(spec: SeriesSpec, k: int):
    from pydicom.uid import MRImageStorage

    stored = spec.base + k + (1024 if spec.modality == "CT" else 0)
    ds = _ct_dataset(rows=spec.size, cols=spec.size, z=float(k), inst=k + 1,
                     pixels=np.full((spec.size, spec.size), stored, np.int16))
    ds.PatientName, ds.PatientID = spec.patient
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.7719.{spec.study}"
    ds.SeriesInstanceUID = spec.uid
    ds.FrameOfReferenceUID = spec.uid + ".9"
    ds.StudyDate, ds.StudyTime, ds.StudyID = spec.study_date, "101500", spec.study
    ds.StudyDescription = spec.study_description
    ds.SeriesNumber, ds.SeriesDescription = spec.number, spec.description
    ds.Modality = spec.modality
    if spec.modality == "MR":
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    return ds


def write_patient_cd(root: Path) -> Path:
    """The CD of :data:`SPECS` under ``root`` (FileSet's PTxxxxxx/STxxxxxx/SExxxxxx/IMxxxxxx tree); returns
    the DICOMDIR's path."""
    from pydicom.fileset import FileSet

    fs = FileSet()
    for spec in SPECS:
        for k in range(spec.slices):
            fs.add(slice_dataset(spec, k))
    root.mkdir(parents=True, exist_ok=True)
    fs.write(root)
    return root / "DICOMDIR"


def files_of(dicomdir: Path, uid: str) -> list[Path]:
    """The files of series ``uid`` as the DICOMDIR lists them (through pydicom, independently of BoxSeg)."""
    import pydicom
    from pydicom.fileset import FileSet

    fs = FileSet(pydicom.dcmread(dicomdir))
    return sorted(Path(i.path) for i in fs.find(SeriesInstanceUID=uid))
