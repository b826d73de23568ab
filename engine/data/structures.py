"""Named structures: coded concepts (SNOMED CT) of what an object is, and a catalogue of common ones.

A segment says what it is with two codes, as DICOM-SEG does (Segmented Property Category and Type, PS3.3
C.8.20.2; the same pair 3D Slicer's terminologies and dcmqi's metadata JSON use) plus an optional type
modifier for laterality (SNOMED CT 7771000 Left / 24028007 Right, as Slicer's General Anatomy list codes
"Kidney, left": type Kidney, modifier Left). A :class:`Code` is one (value, scheme, meaning) triple.

:data:`CATALOGUE` holds ~90 common anatomical structures, tissues and findings. Every code in it is a
concept of pydicom's code dictionary (``pydicom.sr.codedict.codes.SCT.<keyword>``, the DICOM PS3.16
tables); each entry names its pydicom keyword and ``tests/engine/data/test_structures.py`` checks value
and meaning against pydicom, so none is typed from memory. The table is literal data here, not built by
importing pydicom at run time, because :mod:`engine.data` imports no file/DICOM libraries
(docs/ARCHITECTURE.md). Concepts pydicom does not have (pons, medulla oblongata, ...) are not in the
catalogue; such names stay free text.

Colours: 3D Slicer's recommended display colour (RGB 0..255) of the same structure in its "General
Anatomy" terminology (``SegmentationCategoryTypeModifier-SlicerGeneralAnatomy.json``, whose colours are
the GenericAnatomyColors table), where Slicer has one; ``None`` otherwise (the object keeps its colour).

Free text (a name not in the catalogue) is always allowed and gets the generic codes BoxSeg has always
written: category and type SCT 85756007 "Tissue" (:data:`GENERIC_CATEGORY`, :data:`GENERIC_TYPE`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Code:
    """A coded concept: ``value`` (e.g. '10200004'), coding ``scheme`` designator ('SCT'), ``meaning`` ('Liver')."""

    value: str
    scheme: str
    meaning: str

    def to_json(self) -> list[str]:
        return [self.value, self.scheme, self.meaning]

    @classmethod
    def from_json(cls, d) -> "Code | None":
        """[value, scheme, meaning] (or a dict with those keys, or DICOM's CodeValue/... keys) -> Code; None
        for None or anything malformed."""
        if isinstance(d, dict):
            d = [d.get("value", d.get("CodeValue")), d.get("scheme", d.get("CodingSchemeDesignator")),
                 d.get("meaning", d.get("CodeMeaning"))]
        if not isinstance(d, (list, tuple)) or len(d) != 3 or not all(isinstance(v, str) and v for v in d[:2]):
            return None
        return cls(str(d[0]), str(d[1]), str(d[2] or ""))

    def same(self, other: "Code | None") -> bool:
        """The same concept (scheme and value; meanings may be worded differently)."""
        return other is not None and (self.scheme, self.value) == (other.scheme, other.value)


def sct(value: str, meaning: str) -> Code:
    return Code(value, "SCT", meaning)


#: DICOM CID 7150 "Segmentation Property Categories" (pydicom AnatomicalStructure,
#: MorphologicallyAbnormalStructure, Tissue). 3D Slicer's General Anatomy list writes 123037004 for
#: "Anatomical Structure"; DICOM (and pydicom) use 91723000.
ANATOMY = sct("91723000", "Anatomical Structure")
ABNORMAL = sct("49755003", "Morphologically Abnormal Structure")
TISSUE = sct("85756007", "Tissue")
LEFT = sct("7771000", "Left")
RIGHT = sct("24028007", "Right")

#: the codes of a free-text object (what every BoxSeg segment carried before named structures)
GENERIC_CATEGORY = TISSUE
GENERIC_TYPE = TISSUE


@dataclass(frozen=True)
class Structure:
    """A catalogue entry: display ``name``, its codes, Slicer colour (or None), search ``synonyms`` and the
    pydicom keyword of its type (``codes.SCT.<keyword>``)."""

    name: str
    category: Code
    type: Code
    keyword: str
    modifier: Code | None = None
    color: tuple[int, int, int] | None = None
    synonyms: tuple[str, ...] = field(default=())


_CATEGORIES = {"A": ANATOMY, "M": ABNORMAL, "T": TISSUE}

# Synonyms are nouns a user would type as the object's name (they name the structure in :func:`lookup`
# too), not adjectives ("renal", "cardiac"): those are found through the names that contain them.
_SIDES = {"": None, "L": LEFT, "R": RIGHT}

# (name, category A/M/T, pydicom keyword, SCT value, pydicom meaning, side ''/L/R, Slicer RGB or None, synonyms)
_ROWS: list[tuple] = [
    # abdomen and pelvis
    ("Liver", "A", "Liver", "10200004", "Liver", "", (221, 130, 101), ("hepar",)),
    ("Spleen", "A", "Spleen", "78961009", "Spleen", "", (157, 108, 162), ()),
    ("Kidney", "A", "Kidney", "64033007", "Kidney", "", (185, 102, 83), ()),
    ("Kidney, left", "A", "Kidney", "64033007", "Kidney", "L", (185, 102, 83), ("left kidney",)),
    ("Kidney, right", "A", "Kidney", "64033007", "Kidney", "R", (185, 102, 83), ("right kidney",)),
    ("Pancreas", "A", "Pancreas", "15776009", "Pancreas", "", (249, 180, 111), ()),
    ("Gallbladder", "A", "Gallbladder", "28231008", "Gallbladder", "", (139, 150, 98), ("gall bladder",)),
    ("Stomach", "A", "Stomach", "69695003", "Stomach", "", (216, 132, 105), ()),
    ("Duodenum", "A", "Duodenum", "38848004", "Duodenum", "", (255, 253, 229), ()),
    ("Small intestine", "A", "SmallIntestine", "30315005", "Small intestine", "", (205, 167, 142),
     ("small bowel",)),
    ("Colon", "A", "Colon", "71854001", "Colon", "", (204, 168, 143), ("large bowel", "large intestine")),
    ("Rectum", "A", "Rectum", "34402009", "Rectum", "", None, ()),
    ("Appendix", "A", "Appendix", "66754008", "Appendix", "", None, ()),
    ("Adrenal gland, left", "A", "AdrenalGland", "23451007", "Adrenal gland", "L", (249, 186, 150),
     ("left adrenal gland", "suprarenal")),
    ("Adrenal gland, right", "A", "AdrenalGland", "23451007", "Adrenal gland", "R", (249, 186, 150),
     ("right adrenal gland", "suprarenal")),
    ("Bile duct", "A", "BileDuct", "28273000", "Bile duct", "", (0, 145, 30), ("biliary tree",)),
    ("Urinary bladder", "A", "Bladder", "89837001", "Bladder", "", (222, 154, 132), ("bladder",)),
    ("Ureter", "A", "Ureter", "87953007", "Ureter", "", None, ()),
    ("Urethra", "A", "Urethra", "13648007", "Urethra", "", (124, 186, 223), ()),
    ("Prostate", "A", "Prostate", "41216001", "Prostate", "", (230, 158, 140), ()),
    ("Uterus", "A", "Uterus", "35039007", "Uterus", "", (255, 181, 158), ()),
    ("Ovary, left", "A", "Ovary", "15497006", "Ovary", "L", (213, 141, 113), ("left ovary",)),
    ("Ovary, right", "A", "Ovary", "15497006", "Ovary", "R", (213, 141, 113), ("right ovary",)),
    ("Vagina", "A", "Vagina", "76784001", "Vagina", "", (193, 123, 103), ()),
    ("Testis", "A", "Testis", "40689003", "Testis", "", None, ("testicle",)),
    # vessels
    ("Aorta", "A", "Aorta", "15825003", "Aorta", "", (224, 97, 76), ()),
    ("Inferior vena cava", "A", "InferiorVenaCava", "64131007", "Inferior vena cava", "", None, ("IVC",)),
    ("Superior vena cava", "A", "SuperiorVenaCava", "48345005", "Superior vena cava", "", None, ("SVC",)),
    ("Portal vein", "A", "PortalVein", "32764006", "Portal vein", "", None, ()),
    ("Hepatic vein", "A", "HepaticVein", "8993003", "Hepatic vein", "", None, ()),
    ("Renal artery", "A", "RenalArtery", "2841007", "Renal artery", "", None, ()),
    ("Renal vein", "A", "RenalVein", "56400007", "Renal vein", "", None, ()),
    ("Pulmonary artery", "A", "PulmonaryArtery", "81040000", "Pulmonary artery", "", None, ()),
    ("Coronary artery", "A", "CoronaryArtery", "41801008", "Coronary artery", "", None, ()),
    ("Carotid artery, left", "A", "CarotidArtery", "69105007", "Carotid Artery", "L", None,
     ("left carotid artery",)),
    ("Carotid artery, right", "A", "CarotidArtery", "69105007", "Carotid Artery", "R", None,
     ("right carotid artery",)),
    ("Iliac artery", "A", "IliacArtery", "10293006", "Iliac artery", "", None, ()),
    ("Blood vessel", "T", "BloodVessel", "59820001", "Blood Vessel", "", None, ("vessel", "vasculature")),
    ("Artery", "T", "Artery", "51114001", "Artery", "", (216, 101, 79), ()),
    ("Vein", "T", "Vein", "29092000", "Vein", "", (0, 151, 206), ()),
    # thorax and neck
    ("Lung", "A", "Lung", "39607008", "Lung", "", (197, 165, 145), ()),
    ("Lung, left", "A", "Lung", "39607008", "Lung", "L", (197, 165, 145), ("left lung",)),
    ("Lung, right", "A", "Lung", "39607008", "Lung", "R", (197, 165, 145), ("right lung",)),
    ("Heart", "A", "Heart", "80891009", "Heart", "", (206, 110, 84), ()),
    ("Left ventricle", "A", "LeftVentricle", "87878005", "Left ventricle", "", (152, 55, 13), ("LV",)),
    ("Right ventricle", "A", "RightVentricle", "53085002", "Right ventricle", "", (181, 85, 57), ("RV",)),
    ("Left atrium", "A", "LeftAtrium", "82471001", "Left atrium", "", None, ("LA",)),
    ("Right atrium", "A", "RightAtrium", "73829009", "Right atrium", "", None, ("RA",)),
    ("Pericardium", "A", "Pericardium", "76848001", "Pericardium", "", (255, 244, 209), ()),
    ("Trachea", "A", "Trachea", "44567001", "Trachea", "", (182, 228, 255), ("windpipe",)),
    ("Bronchus", "A", "Bronchus", "955009", "Bronchus", "", None, ("airway",)),
    ("Esophagus", "A", "Esophagus", "32849002", "Esophagus", "", (211, 171, 143), ("oesophagus",)),
    ("Thymus", "A", "Thymus", "9875009", "Thymus", "", (47, 150, 103), ()),
    ("Thyroid", "A", "Thyroid", "69748006", "Thyroid", "", (62, 162, 114), ("thyroid gland",)),
    ("Larynx", "A", "Larynx", "4596009", "Larynx", "", (150, 208, 243), ()),
    ("Pharynx", "A", "Pharynx", "54066008", "Pharynx", "", (184, 105, 108), ()),
    ("Parotid gland", "A", "ParotidGland", "45289007", "Parotid gland", "", None, ()),
    ("Diaphragm", "A", "Diaphragm", "5798000", "Diaphragm", "", None, ()),
    ("Breast", "A", "Breast", "76752008", "Breast", "", None, ()),
    # brain and spine
    ("Brain", "A", "Brain", "12738006", "Brain", "", (250, 250, 225), ()),
    ("Brain stem", "A", "BrainStem", "119238007", "Brain Stem", "", None, ("brainstem",)),
    ("Midbrain", "A", "Midbrain", "61962009", "Midbrain", "", (145, 92, 109), ("mesencephalon",)),
    ("Cerebellum", "A", "Cerebellum", "113305005", "Cerebellum", "", None, ()),
    ("Thalamus, left", "A", "Thalamus", "42695009", "Thalamus", "L", (122, 101, 38), ("left thalamus",)),
    ("Thalamus, right", "A", "Thalamus", "42695009", "Thalamus", "R", (122, 101, 38), ("right thalamus",)),
    ("Hippocampus, left", "A", "Hippocampus", "5366008", "Hippocampus", "L", None, ("left hippocampus",)),
    ("Hippocampus, right", "A", "Hippocampus", "5366008", "Hippocampus", "R", None, ("right hippocampus",)),
    ("Amygdala", "A", "Amygdala", "4958002", "Amygdala", "", (98, 153, 112), ()),
    ("Caudate nucleus", "A", "CaudateNucleus", "11000004", "Caudate Nucleus", "", (30, 111, 85), ("caudate",)),
    ("Putamen", "A", "Putamen", "89278009", "Putamen", "", (210, 157, 166), ()),
    ("Globus pallidus", "A", "GlobusPallidus", "14738005", "Globus Pallidus", "", (48, 129, 126), ("pallidum",)),
    ("Lateral ventricle, left", "A", "LateralVentricle", "66720007", "Lateral Ventricle", "L", (88, 106, 215),
     ("left lateral ventricle",)),
    ("Lateral ventricle, right", "A", "LateralVentricle", "66720007", "Lateral Ventricle", "R", (88, 106, 215),
     ("right lateral ventricle",)),
    ("Third ventricle", "A", "ThirdVentricle", "49841001", "Third ventricle", "", None, ()),
    ("Fourth ventricle", "A", "FourthVentricle", "35918002", "Fourth Ventricle", "", (88, 106, 215), ()),
    ("Brain ventricle", "A", "BrainVentricle", "35764002", "Brain ventricle", "", (88, 106, 215),
     ("ventricles", "ventricular system")),
    ("Corpus callosum", "A", "CorpusCallosum", "88442005", "Corpus callosum", "", (97, 113, 158), ()),
    ("White matter", "T", "WhiteMatter", "389080008", "White Matter", "", (250, 250, 210), ("WM",)),
    ("Gray matter", "T", "GrayMatter", "389081007", "Gray Matter", "", (200, 200, 235), ("grey matter", "GM")),
    ("Pituitary", "A", "Pituitary", "56329008", "Pituitary", "", (57, 157, 110), ("pituitary gland", "hypophysis")),
    ("Optic chiasm", "A", "OpticChiasm", "244453006", "Optic chiasm", "", (99, 106, 24), ()),
    ("Eyeball, left", "A", "Eyeball", "79652003", "Eyeball", "L", (194, 142, 0), ("left eye", "globe")),
    ("Eyeball, right", "A", "Eyeball", "79652003", "Eyeball", "R", (194, 142, 0), ("right eye", "globe")),
    ("Spinal cord", "A", "SpinalCord", "2748008", "Spinal cord", "", (244, 214, 49), ("myelon",)),
    ("Cerebrospinal fluid", "A", "CerebrospinalFluid", "65216001", "Cerebrospinal Fluid", "", None, ("CSF",)),
    # bones, muscle and other tissues
    ("Spine", "A", "Spine", "421060004", "Spine", "", None, ("vertebral column", "backbone")),
    ("Vertebra", "A", "Vertebra", "51282000", "Vertebra", "", None, ("vertebrae",)),
    ("Cervical spine", "A", "CervicalSpine", "122494005", "Cervical spine", "", (255, 255, 207), ("c-spine",)),
    ("Thoracic spine", "A", "ThoracicSpine", "122495006", "Thoracic spine", "", (226, 202, 134), ("t-spine",)),
    ("Lumbar spine", "A", "LumbarSpine", "122496007", "Lumbar spine", "", (212, 188, 102), ("l-spine",)),
    ("Sacrum", "A", "Sacrum", "54735007", "Sacrum", "", None, ()),
    ("Pelvis", "A", "Pelvis", "816092008", "Pelvis", "", None, ()),
    ("Femur, left", "A", "Femur", "71341001", "Femur", "L", None, ("left femur",)),
    ("Femur, right", "A", "Femur", "71341001", "Femur", "R", None, ("right femur",)),
    ("Rib", "A", "Rib", "113197003", "Rib", "", (253, 232, 158), ("ribs",)),
    ("Sternum", "A", "Sternum", "56873002", "Sternum", "", (244, 217, 154), ()),
    ("Skull", "A", "Skull", "89546000", "Skull", "", (241, 213, 144), ("cranium",)),
    ("Mandible", "A", "Mandible", "91609006", "Mandible", "", (222, 198, 101), ("jaw",)),
    ("Bone", "T", "Bone", "272673000", "Bone", "", (241, 214, 145), ()),
    ("Muscle", "T", "Muscle", "71616004", "Muscle", "", (192, 104, 88), ()),
    ("Fat", "T", "AdiposeTissue", "55603005", "Fat", "", (230, 220, 70), ("adipose tissue",)),
    ("Skin", "T", "Skin", "39937001", "Skin", "", (177, 122, 101), ()),
    ("Cartilage", "T", "Cartilage", "309312004", "Cartilage", "", (111, 184, 210), ()),
    ("Lymph node", "T", "LymphNode", "59441001", "Lymph Node", "", (68, 172, 100), ("node", "LN")),
    # findings
    ("Tumour", "M", "Neoplasm", "108369006", "Neoplasm", "", (144, 238, 144), ("tumor", "neoplasm", "cancer")),
    ("Lesion", "M", "Lesion", "52988006", "Lesion", "", None, ()),
    ("Mass", "M", "Mass", "4147007", "Mass", "", (144, 238, 144), ()),
    ("Nodule", "M", "Nodule", "27925004", "Nodule", "", None, ()),
    ("Cyst", "M", "Cyst", "367643001", "Cyst", "", (205, 205, 100), ()),
    ("Metastasis", "M", "Metastasis", "128462008", "Metastasis", "", None, ("metastases",)),
    ("Edema", "M", "Edema", "79654002", "Edema", "", (140, 224, 228), ("oedema",)),
    ("Necrosis", "M", "Necrosis", "6574001", "Necrosis", "", (216, 191, 216), ()),
    ("Hemorrhage", "M", "Hemorrhage", "50960005", "Hemorrhage", "", (188, 65, 28),
     ("haemorrhage", "bleeding", "hematoma")),
    ("Blood clot", "M", "BloodClot", "75753009", "Blood clot", "", (145, 60, 66), ("clot",)),
    ("Thrombus", "M", "Thrombus", "396339007", "Thrombus", "", None, ("thrombosis",)),
    ("Embolus", "M", "Embolus", "55584005", "Embolus", "", (150, 98, 83), ("embolism",)),
    ("Abscess", "M", "Abscess", "44132006", "Abscess", "", None, ()),
    ("Aneurysm", "M", "Aneurysm", "85659009", "aneurysm", "", None, ()),
    ("Pleural effusion", "M", "PleuralEffusion", "60046008", "Pleural effusion", "", None, ("effusion",)),
    ("Renal stone", "M", "RenalStone", "386103008", "Renal stone", "", None, ("kidney stone", "calculus")),
]

#: the catalogue, in the order above (grouped by region; search results are ranked, not in this order)
CATALOGUE: tuple[Structure, ...] = tuple(
    Structure(name, _CATEGORIES[cat], sct(value, meaning), keyword, _SIDES[side], color, tuple(syn))
    for name, cat, keyword, value, meaning, side, color, syn in _ROWS)

_BY_NAME = {s.name.lower(): s for s in CATALOGUE}
_BY_SYNONYM = {syn.lower(): s for s in CATALOGUE for syn in s.synonyms if syn.lower() not in _BY_NAME}
_NUMBERED = re.compile(r"^(.*?)[\s_#-]*\d+$")


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def search(text: str, limit: int | None = None) -> list[Structure]:
    """Catalogue entries whose name or a synonym contains ``text`` (case-insensitive), best first: a name
    starting with it, then a word of the name, then a synonym starting with it, then anywhere. '' -> all."""
    q = _norm(text)
    ranked = []
    for i, s in enumerate(CATALOGUE):
        name = s.name.lower()
        words = re.split(r"[\s,]+", name)
        syns = [x.lower() for x in s.synonyms]
        if name.startswith(q):
            rank = 0
        elif any(w.startswith(q) for w in words):
            rank = 1
        elif any(x.startswith(q) for x in syns):
            rank = 2
        elif q in name or any(q in x for x in syns):
            rank = 3
        else:
            continue
        ranked.append((rank, i, s))
    out = [s for _, _, s in sorted(ranked, key=lambda t: t[:2])]
    return out if limit is None else out[:limit]


def lookup(name: str) -> Structure | None:
    """The entry a typed object name means: its name or a synonym (case-insensitive, spaces normalised),
    also with a trailing number ('Lesion 2', 'nodule_3' -> Lesion, Nodule); None for free text."""
    q = _norm(name)
    for key in (q, (_NUMBERED.match(q) or [None, None])[1]):
        if key:
            hit = _BY_NAME.get(key) or _BY_SYNONYM.get(key)
            if hit is not None:
                return hit
    return None


def find_code(category: Code | None, type_: Code | None, modifier: Code | None = None) -> Structure | None:
    """The entry with these codes (scheme and value compared), or None."""
    for s in CATALOGUE:
        if s.type.same(type_) and (category is None or s.category.same(category)) and (
                (s.modifier is None and modifier is None) or (s.modifier is not None and s.modifier.same(modifier))):
            return s
    return None


__all__ = ["ABNORMAL", "ANATOMY", "CATALOGUE", "Code", "GENERIC_CATEGORY", "GENERIC_TYPE", "LEFT", "RIGHT",
           "Structure", "TISSUE", "find_code", "lookup", "search", "sct"]
