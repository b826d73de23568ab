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
the SEG's own plane positions give the grid (highdicom's volume), converted to the :mod:`engine.data.image`
conventions (LPS -> RAS, slices ascending along the normal). Segments are decoded one at a time into one
label map (memory: the map plus one segment), later segment numbers winning where they overlap, with a
warning; a FRACTIONAL segment holds the voxels where it is >= 0.5.
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
from engine.io import decoder_process
from engine.io.dicom import _dcmread, _transfer_syntax, corrupt_is_input_error, modality_of, quiet, read_header
from engine.io.formats import SEG_SOP_CLASS, kind_of
from engine.io.gate import check_size



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


#: Patient and General Study attributes highdicom reads from the first source (``src.PatientID`` ...,
#: an AttributeError when absent). All are Type 2 in the SEG (present, may be empty), and
#: anonymisation often removes them from the source: absent ones go in empty.
_TYPE2_FROM_SOURCE = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber",
                      "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")


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
    """A copy of a source header that highdicom accepts.

    An empty SpecificCharacterSet means the default repertoire (dcmqi's test series has one), which
    highdicom refuses as a value; missing Type 2 patient/study attributes become empty ones; a
    PatientSex other than M/F/O (e.g. ``U`` after anonymisation) becomes empty, as DICOM allows.
    """
    ds = copy.deepcopy(ds)
    if "SpecificCharacterSet" in ds and not str(ds.SpecificCharacterSet or "").strip():
        del ds.SpecificCharacterSet
    for keyword in _TYPE2_FROM_SOURCE:
        if keyword not in ds:
            setattr(ds, keyword, None)
    if str(ds.PatientSex or "").strip().upper() not in ("M", "F", "O"):
        ds.PatientSex = None
    else:
        ds.PatientSex = str(ds.PatientSex).strip().upper()
    return ds


def _read(path: Path):
    import highdicom as hd
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        ds = _dcmread(path)  # bounded like every DICOM read (clamped lengths, deflate limit)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as e:
        raise InputError(f"{path.name}: cannot read as DICOM (not a DICOM file, or truncated/corrupt)") from e
    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        # modality_of: a corrupt length can make Modality swallow the patient's elements
        raise InputError(f"{path.name}: not a DICOM-SEG (it is a DICOM {modality_of(ds)} file)")
    if not len(ds.get("SegmentSequence", None) or []):
        raise InputError(f"{path.name}: malformed DICOM-SEG (no SegmentSequence: it describes no segment)")
    if decoder_process.isolated(_transfer_syntax(ds)):
        # highdicom decodes in this process (one segment at a time): a JPEG-LS / JPEG 2000 stream that would keep
        # the decoder busy for seconds is refused first by decoding every frame once in the child, keeping none
        decoder_process.probe(ds, path.name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return hd.seg.Segmentation.from_dataset(ds, copy=False)  # ds is ours: no second copy of its frames
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as e:
        raise InputError(f"{path.name}: malformed DICOM-SEG ({str(e).splitlines()[0][:160]})") from e


def _segments(seg, name: str) -> list[Segment]:
    import highdicom as hd

    out = []
    try:
        for n in seg.get_segment_numbers():
            d = seg.get_segment_description(n)
            color = default_color(n)
            if "RecommendedDisplayCIELabValue" in d:
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
            out.append(Segment(int(n), str(d.get("SegmentLabel", "") or f"segment {n}"), color, category, kind,
                               modifier))
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as e:
        raise InputError(f"{name}: malformed DICOM-SEG segment description ({str(e).splitlines()[0][:160]})") from e
    return out


def _cut(seg) -> int:
    """The smallest stored value that counts as inside a segment: 1 for BINARY; for FRACTIONAL, half of
    MaximumFractionalValue rounded up (a probability or occupancy >= 0.5, as dcmqi and Slicer threshold)."""
    if str(seg.get("SegmentationType", "BINARY")).upper() != "FRACTIONAL":
        return 1
    return max(1, -(-int(seg.get("MaximumFractionalValue", 255) or 255) // 2))


class _Painter:
    """Flattens segments into one label map, one segment at a time (overlaps: the later segment wins).

    Memory: the label map, the segment being painted (the caller's), and a bool map of the overlapped
    voxels made only when two segments do overlap.
    """

    def __init__(self, labels: np.ndarray):
        self.labels = labels
        self.overlapped: np.ndarray | None = None

    def add(self, slices, stored: np.ndarray, number: int, cut: int) -> None:
        """stored: (len(slices), Y, X) stored values of segment ``number``; slice k goes to labels[slices[k]]."""
        for k, z in enumerate(slices):
            inside = stored[k] >= cut
            if not inside.any():
                continue
            dst = self.labels[z]
            hit = inside & (dst != 0)
            if hit.any():
                if self.overlapped is None:
                    self.overlapped = np.zeros(self.labels.shape, bool)
                self.overlapped[z] |= hit
            dst[inside] = number

    def warnings(self) -> list[str]:
        overlap = 0 if self.overlapped is None else int(np.count_nonzero(self.overlapped))
        if not overlap:
            return []
        return [f"segments overlap in {overlap} voxel(s); a label map holds one value per voxel, so the "
                "higher segment number is kept there"]


def _label_dtype(numbers: list[int]):
    return np.uint8 if max(numbers, default=0) < 256 else np.uint16


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


def _sources_by_segment(seg) -> dict[int, set[str]] | None:
    """Segment number -> the SOP instances its frames were derived from; None when a frame does not say."""
    out: dict[int, set[str]] = {}
    try:
        for fg in seg.PerFrameFunctionalGroupsSequence:
            n = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
            for derivation in fg.DerivationImageSequence:
                for src in derivation.SourceImageSequence:
                    out.setdefault(n, set()).add(str(src.ReferencedSOPInstanceUID))
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    return out


_HD_ERRORS = (ValueError, KeyError, RuntimeError, AttributeError, IndexError, TypeError)


def read_dicom_seg(path: Path, image: Image | None = None, *, atol: float = AFFINE_TOL_MM) -> LabelMap:
    """A DICOM-SEG -> :class:`LabelMap` (values = segment numbers), on ``image``'s grid when given.

    Segments are decoded one at a time into the label map (peak memory: the label map plus one
    segment, not segments x voxels); the label map's declared size passes
    :func:`engine.io.gate.check_size` first. FRACTIONAL segments count where they are >= 0.5. Anything a
    corrupt file makes pydicom, highdicom or a decoder raise is a one-line InputError naming the file
    (:func:`engine.io.dicom.corrupt_is_input_error`; found by the fuzzing campaign, docs/fuzzing.md).
    """
    path = Path(path)
    with corrupt_is_input_error(path.name):
        return _read_dicom_seg(path, image, atol)


def _read_dicom_seg(path: Path, image: Image | None, atol: float) -> LabelMap:
    seg = _read(path)
    segments = _segments(seg, path.name)
    numbers = [s.value for s in segments]
    dtype = _label_dtype(numbers)
    cut = _cut(seg)
    per_voxel = np.dtype(dtype).itemsize + 1  # the label map + one uint8 segment
    ref_series = None
    if "ReferencedSeriesSequence" in seg and len(seg.ReferencedSeriesSequence):
        ref_series = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
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
        check_size(path.name, (len(hits), *image.shape[1:]), per_voxel, what="DICOM-SEG label map")
        painter = _Painter(np.zeros(image.shape, dtype))
        sources = _sources_by_segment(seg)
        for n in numbers:
            # only the slices this segment has frames on (all referenced ones when frames do not say)
            seg_hits = hits if sources is None else [i for i in hits if uids[i] in sources.get(n, ())]
            if not seg_hits:
                continue
            hit_uids = [uids[i] for i in seg_hits]
            try:
                # many SEGs (dcmqi's among them) do not state SpatialLocationsPreserved; the frame positions
                # were checked against the instances above instead
                stored = seg.get_pixels_by_source_instance(
                    source_sop_instance_uids=hit_uids, segment_numbers=[n], combine_segments=False,
                    skip_overlap_checks=True, ignore_spatial_locations=True, rescale_fractional=False,
                    dtype=np.uint8)
            except _HD_ERRORS as e:
                raise InputError(f"{path.name}: cannot place the DICOM-SEG on this image "
                                 f"({str(e).splitlines()[0][:160]})") from e
            painter.add(seg_hits, stored.reshape(len(seg_hits), *image.shape[1:]), n, cut)
            del stored
        return LabelMap(painter.labels, image.affine.copy(), segments, source=path, referenced_series_uid=ref_series,
                        warnings=painter.warnings())
    try:
        geometry = seg.get_volume_geometry()
        if geometry is None:
            raise ValueError("the frames' positions are not regularly spaced along one normal")
        shape = tuple(int(v) for v in geometry.spatial_shape)
    except _HD_ERRORS as e:
        raise InputError(f"{path.name}: the DICOM-SEG has no regular 3D grid of its own "
                         f"({str(e).splitlines()[0][:160]}); give the image it was drawn on (--reference)") from e
    check_size(path.name, shape, per_voxel, what="DICOM-SEG label map")
    painter = _Painter(np.zeros(shape, dtype))
    hd_aff = np.asarray(geometry.affine, np.float64)  # (slice, row, column) index -> LPS
    for n in numbers:
        try:
            vol = seg.get_volume(segment_numbers=[n], combine_segments=False, skip_overlap_checks=True,
                                 rescale_fractional=False, dtype=np.uint8)
        except _HD_ERRORS as e:
            raise InputError(f"{path.name}: the DICOM-SEG has no regular 3D grid of its own "
                             f"({str(e).splitlines()[0][:160]}); give the image it was drawn on (--reference)") from e
        if not np.allclose(np.asarray(vol.affine, np.float64), hd_aff, atol=1e-4):
            raise InputError(f"{path.name}: malformed DICOM-SEG: segment {n} lies on another grid than the others")
        painter.add(range(shape[0]), np.asarray(vol.array).reshape(shape), n, cut)
        del vol
    labels = painter.labels
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
    return LabelMap(labels, affine, segments, source=path, referenced_series_uid=ref_series,
                    warnings=painter.warnings())


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
