"""DICOM-SEG out and in, through highdicom.

Writing: a (Z,Y,X) label map drawn on an image read from DICOM becomes a BINARY Segmentation that
references the source series and its instances (frames in the source's order), one segment per
object with its name, colour (CIELab), what it is (SegmentedPropertyCategoryCodeSequence and
SegmentedPropertyTypeCodeSequence from the :class:`~engine.data.labelmap.Segment`'s codes, with a
SegmentedPropertyTypeModifierCodeSequence for laterality; SCT "Tissue" for free text) and algorithm
identification (BoxSeg + model name/version, type SEMIAUTOMATIC: a box drawn by a person, the mask by
the model).

Reading: segments (label, colour, category/type/modifier codes) are placed onto an open DICOM image
through the SOP instances they reference (robust to SEGs that omit empty frames); without such an image
the SEG's own plane positions give the grid (highdicom's volume), converted to the
:mod:`engine.data.image` conventions (LPS -> RAS, slices ascending along the normal). Overlapping
segments are flattened into one label map, later segment numbers winning, with a warning.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np

from engine import __version__
from engine.base.atomic import writing
from engine.base.errors import InputError
from engine.data.geometry import AFFINE_TOL_MM, LPS_TO_RAS
from engine.data.image import Image
from engine.data.labelmap import LabelMap, Segment, check_onto, with_defaults
from engine.data.palette import default_color
from engine.data.structures import GENERIC_CATEGORY, GENERIC_TYPE, Code
from engine.io.dicom import quiet, read_header
from engine.io.formats import SEG_SOP_CLASS, kind_of



def write_dicom_seg(path: Path, labels: np.ndarray, image: Image, segments: list[Segment], *,
                    model_name: str = "", model_version: str = "", series_description: str = "BoxSeg") -> Path:
    """Write a DICOM-SEG for ``labels`` (Z,Y,X) on ``image`` (which must have been read from DICOM).

    segments: the objects to store (values present in ``labels`` without a segment get a default
    one). Segment numbers are 1..S in value order (DICOM requires consecutive numbers); values are
    renumbered accordingly when they have gaps. Raises :class:`InputError` for a non-DICOM image.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    path = Path(path)
    if not image.dicom:
        raise InputError(f"{path.name}: DICOM-SEG needs an image read from DICOM (this one is "
                         f"{image.description.split(',')[0]}); write .nii.gz or .png instead")
    labels = np.asarray(labels)
    if labels.shape != image.shape:
        raise InputError(f"label map shape (Z,Y,X) {labels.shape} does not match the image {image.shape}")
    ordered = with_defaults(labels, segments)
    if not ordered:
        raise InputError(f"{path.name}: the label map is empty; nothing to write as DICOM-SEG")
    lut = np.zeros(max(max(s.value for s in ordered), int(labels.max()) if labels.size else 0) + 1, np.uint16)
    for number, s in enumerate(ordered, start=1):
        lut[s.value] = number
    seg_arr = lut[labels].astype(np.uint8 if len(ordered) < 256 else np.uint16)
    if image.dicom_frames is not None:  # multi-frame source: frames back in the file's order
        src = np.empty_like(seg_arr)
        src[image.dicom_frames] = seg_arr
        seg_arr = src
    algo = hd.AlgorithmIdentificationSequence(
        name=f"BoxSeg {model_name}".strip()[:64], family=codes.cid7162.ArtificialIntelligence,
        version=(f"{model_version}" or __version__)[:64], source="BoxSeg",
        parameters={"boxseg": __version__, "model": model_name or "unknown"})
    descriptions = [_description(hd, number, s, algo) for number, s in enumerate(ordered, start=1)]
    sources = [_clean_source(ds) for ds in image.dicom]
    try:
        # highdicom warns with attribute values (e.g. the patient's name): never let those reach logs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation(
                source_images=sources, pixel_array=seg_arr,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
                series_instance_uid=hd.UID(), series_number=int(9000 + len(ordered) % 1000),
                sop_instance_uid=hd.UID(), instance_number=1, manufacturer="BoxSeg",
                manufacturer_model_name=(model_name or "BoxSeg")[:64], software_versions=f"boxseg {__version__}",
                device_serial_number="none", series_description=series_description[:64],
                content_label="BOXSEG", content_description="Box-prompted segmentation (BoxSeg)"[:64],
                omit_empty_frames=True)
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise InputError(f"{path.name}: cannot build a DICOM-SEG for this image ({str(e).splitlines()[0][:160]})") from e
    with writing(path) as tmp:
        seg.save_as(str(tmp))
    return path


def _concept(hd, code: Code):
    return hd.sr.CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning[:64])


def _description(hd, number: int, s: Segment, algo):
    """The SegmentDescription of segment ``number``: label, colour (CIELab), the segment's category and type
    codes, and its type modifier (laterality) inside the type's code item, where DICOM puts it
    (SegmentedPropertyTypeModifierCodeSequence, PS3.3 C.8.20.2; highdicom has no argument for it)."""
    d = hd.seg.SegmentDescription(
        segment_number=number, segment_label=(s.name or f"label {s.value}")[:64],
        segmented_property_category=_concept(hd, s.category_code), segmented_property_type=_concept(hd, s.type_code),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC, algorithm_identification=algo,
        display_color=hd.color.CIELabColor.from_rgb(*[int(c) for c in s.color]))
    if s.type_modifier_code is not None:
        d.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            _concept(hd, s.type_modifier_code)]
    return d


def _code_of(seq) -> Code | None:
    """The first item of a DICOM code sequence as a :class:`Code` (None when absent or incomplete)."""
    try:
        item = seq[0]
        return Code(str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.get("CodeMeaning", "")))
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def _clean_source(ds):
    """A copy of a source header that highdicom accepts: an empty SpecificCharacterSet means the
    default repertoire (dcmqi's test series has one), which highdicom refuses as a value."""
    ds = copy.deepcopy(ds)
    if "SpecificCharacterSet" in ds and not str(ds.SpecificCharacterSet or "").strip():
        del ds.SpecificCharacterSet
    return ds


def _read(path: Path):
    import highdicom as hd
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with quiet():
            ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as e:
        raise InputError(f"{path.name}: cannot read as DICOM (not a DICOM file, or truncated/corrupt)") from e
    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        raise InputError(f"{path.name}: not a DICOM-SEG (it is a DICOM {ds.get('Modality', 'object')} file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return hd.seg.Segmentation.from_dataset(ds)
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise InputError(f"{path.name}: malformed DICOM-SEG ({str(e).splitlines()[0][:160]})") from e


def _segments(seg) -> list[Segment]:
    out = []
    for n in seg.get_segment_numbers():
        d = seg.get_segment_description(n)
        color = default_color(n)
        if "RecommendedDisplayCIELabValue" in d:
            import highdicom as hd

            try:
                color = tuple(int(c) for c in hd.color.CIELabColor.from_dicom_value(
                    list(d.RecommendedDisplayCIELabValue)).to_rgb(clip=True))
            except (ValueError, TypeError):
                pass
        category = _code_of(d.get("SegmentedPropertyCategoryCodeSequence")) or GENERIC_CATEGORY
        type_seq = d.get("SegmentedPropertyTypeCodeSequence")
        kind = _code_of(type_seq) or GENERIC_TYPE
        modifier = None
        if type_seq:
            modifier = _code_of(type_seq[0].get("SegmentedPropertyTypeModifierCodeSequence"))
        out.append(Segment(int(n), str(d.SegmentLabel), color, category, kind, modifier))
    return out


def _flatten(stack: np.ndarray, numbers: list[int], warnings: list[str]) -> np.ndarray:
    """(..., S) per-segment masks -> label map; overlaps go to the later segment (warned)."""
    m = stack > 0
    labels = np.zeros(stack.shape[:-1], np.uint8 if max(numbers, default=0) < 256 else np.uint16)
    for i, n in enumerate(numbers):
        labels[m[..., i]] = n
    overlap = int(np.count_nonzero(m.sum(axis=-1) > 1))
    if overlap:
        warnings.append(f"segments overlap in {overlap} voxel(s); a label map holds one value per voxel, so the "
                        "higher segment number is kept there")
    return labels


def _check_frame_positions(seg, image: Image, name: str, atol: float) -> None:
    """Each SEG frame's ImagePositionPatient must equal that of the instance it was derived from."""
    pos = {}
    for ds in image.dicom:
        if "ImagePositionPatient" in ds:
            pos[str(ds.SOPInstanceUID)] = np.asarray([float(v) for v in ds.ImagePositionPatient])
    for i, fg in enumerate(seg.get("PerFrameFunctionalGroupsSequence", [])):
        try:
            p = np.asarray([float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient])
            uid = str(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            continue  # a frame without position or derivation: nothing to compare
        if uid in pos and np.abs(pos[uid] - p).max() > max(atol, 1e-2):
            raise InputError(f"{name}: label map geometry does not match the image: frame {i + 1} lies "
                             f"{np.abs(pos[uid] - p).max():.3g} mm from the slice it references")


def read_dicom_seg(path: Path, image: Image | None = None, *, atol: float = AFFINE_TOL_MM) -> LabelMap:
    """A DICOM-SEG -> :class:`LabelMap` (values = segment numbers), on ``image``'s grid when given."""
    path = Path(path)
    seg = _read(path)
    segments = _segments(seg)
    numbers = [s.value for s in segments]
    ref_series = None
    if "ReferencedSeriesSequence" in seg and len(seg.ReferencedSeriesSequence):
        ref_series = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    warnings: list[str] = []
    single_frame_series = (image is not None and image.dicom and image.dicom_frames is None
                           and len(image.dicom) == image.depth)
    if single_frame_series:
        uids = [str(ds.SOPInstanceUID) for ds in image.dicom]
        referenced = {str(t[2]) for t in seg.get_source_image_uids()}
        hits = [i for i, u in enumerate(uids) if u in referenced]
        if not hits:
            raise InputError(f"{path.name}: label map geometry does not match the image: the DICOM-SEG references "
                             f"series {ref_series or 'unknown'}, not the instances of this image")
        if (int(seg.Rows), int(seg.Columns)) != image.shape[1:]:
            raise InputError(f"{path.name}: label map geometry does not match the image: {seg.Columns}x{seg.Rows} "
                             f"frames on a {image.shape[2]}x{image.shape[1]} image")
        _check_frame_positions(seg, image, path.name, atol)
        try:
            # many SEGs (dcmqi's among them) do not state SpatialLocationsPreserved; the frame positions
            # were checked against the instances above instead
            stack = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[uids[i] for i in hits], segment_numbers=numbers, combine_segments=False,
                skip_overlap_checks=True, ignore_spatial_locations=True)
        except (ValueError, KeyError, RuntimeError) as e:
            raise InputError(f"{path.name}: cannot place the DICOM-SEG on this image "
                             f"({str(e).splitlines()[0][:160]})") from e
        labels = np.zeros(image.shape, np.uint8 if max(numbers, default=0) < 256 else np.uint16)
        labels[hits] = _flatten(stack, numbers, warnings)
        return LabelMap(labels, image.affine.copy(), segments, source=path, referenced_series_uid=ref_series,
                        warnings=warnings)
    try:
        vol = seg.get_volume(combine_segments=False, skip_overlap_checks=True)
    except (ValueError, KeyError, RuntimeError, AttributeError) as e:
        raise InputError(f"{path.name}: the DICOM-SEG has no regular 3D grid of its own "
                         f"({str(e).splitlines()[0][:160]}); give the image it was drawn on (--reference)") from e
    arr = np.asarray(vol.array)
    if arr.ndim == 3:
        arr = arr[..., None]
    labels = _flatten(arr, numbers, warnings)
    hd_aff = np.asarray(vol.affine, np.float64)  # (slice, row, column) index -> LPS
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = hd_aff[:3, 2], hd_aff[:3, 1], hd_aff[:3, 0], hd_aff[:3, 3]
    normal = np.cross(lps[:3, 0], lps[:3, 1])
    if labels.shape[0] > 1 and float(lps[:3, 2] @ normal) < 0:  # our convention: slices ascend along the normal
        labels = np.ascontiguousarray(labels[::-1])
        lps[:3, 3] = lps[:3, 3] + (labels.shape[0] - 1) * lps[:3, 2]
        lps[:3, 2] = -lps[:3, 2]
    affine = LPS_TO_RAS @ lps
    if image is not None:
        labels, affine = _onto_grid(labels, affine, image, path.name, atol)
    return LabelMap(labels, affine, segments, source=path, referenced_series_uid=ref_series, warnings=warnings)


def _onto_grid(labels: np.ndarray, affine: np.ndarray, image: Image, name: str, atol: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Place a SEG's own (Z',Y,X) grid onto the image's slices.

    A SEG stores only non-empty frames, so its grid may cover a subset of the image's slices: each
    of its slices must coincide with one image slice (same in-plane axes, spacing and origin within
    ``atol`` mm); anything else is a geometry mismatch.
    """
    if labels.shape == image.shape:
        check_onto(image, labels.shape, affine, name, atol)
        return labels, affine
    if labels.shape[1:] != image.shape[1:] or not np.allclose(affine[:3, :2], image.affine[:3, :2], atol=atol):
        check_onto(image, labels.shape, affine, name, atol)  # raises with the reason
    out = np.zeros(image.shape, labels.dtype)
    for s in range(labels.shape[0]):
        origin = affine[:3, 3] + s * affine[:3, 2]
        x, y, z = image.ras_to_index(origin)[0]
        zi = int(round(z))
        back = image.index_to_ras([[0, 0, zi]])[0]
        if not (0 <= zi < image.depth) or np.abs(back - origin).max() > max(atol, 1e-2):
            raise InputError(f"{name}: label map geometry does not match the image: its slice {s} lies "
                             f"{np.abs(back - origin).max():.3g} mm from the nearest image slice")
        out[zi] = labels[s]
    return out, image.affine.copy()


def is_dicom_seg(path: Path) -> bool:
    """Whether ``path`` is a DICOM file holding a Segmentation (read from its header only)."""
    path = Path(path)
    if not path.is_file() or kind_of(path) not in (None, "dicom"):  # a DICOM file may have any other name
        return False
    ds = read_header(path)
    return ds is not None and str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS


__all__ = ["is_dicom_seg", "read_dicom_seg", "write_dicom_seg"]
