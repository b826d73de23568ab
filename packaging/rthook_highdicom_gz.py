"""PyInstaller runtime hook: highdicom's DICOM-standard tables ship gzip-compressed in the bundle.

highdicom reads ``highdicom/_standard/*.json`` with ``pkgutil.get_data`` (module_attribute_map.json
alone is 22 MB of indented JSON, 0.6 MB compressed; it is loaded when a DICOM-SEG copies the patient
and study modules). ``boxseg.spec`` stores them as ``*.json.gz``; this hook serves the decompressed
bytes to ``pkgutil.get_data`` for exactly those resources and leaves every other call alone.
"""

import gzip
import os
import pkgutil
import sys

_get_data = pkgutil.get_data


def _get_data_gz(package, resource):
    if package == "highdicom" and resource.startswith("_standard/") and resource.endswith(".json"):
        path = os.path.join(sys._MEIPASS, "highdicom", *resource.split("/")) + ".gz"
        if os.path.isfile(path):
            with gzip.open(path, "rb") as f:
                return f.read()
    return _get_data(package, resource)


pkgutil.get_data = _get_data_gz
