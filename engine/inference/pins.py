"""The shipped models' identities, pinned in the code rather than in the manifest beside them.

A manifest lists its files' sha256, but whoever can change the files can change the manifest too: it
vouches only for itself. The models of the bundled folder (``assets/models``) are therefore also pinned
here, by :attr:`engine.inference.manifest.ModelEntry.model_id` (sha256 over the sha256 of every file of the
model, so over the bytes the engine compiles); :func:`engine.inference.manifest.scan_models` leaves out a
bundled model whose id differs, or whose name is not pinned, with a warning. In an installer this module
is compiled into the executable's archive, beside the code that checks it.

Written by ``python -m quantization build`` (:func:`quantization.manifest.write_pins`) when it rebuilds
``assets/models``; edit it by hand never.
"""

#: model name -> model id of each model shipped in assets/models
BUNDLED_MODEL_IDS = {
    "litemedsam-int8": "546916fcf9c80a42ed265cd65386c6d4654cf97e9832b0e7fbbea2ff8416002d",
    "litemedsam-fp32": "06be43d7ed976789cc0880bda35e074b15c004d3af2efbf60a921823282b2274",
}
