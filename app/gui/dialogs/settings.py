"""Edit ▸ Settings: model, precision, inference threads, embedding cache size, overlap policy of new masks."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QSpinBox

from app.gui.settings import Settings
from engine.data.labeledit import NEVER_OVERWRITE, OVERWRITE_UNLOCKED
from engine.inference.cache import default_max_bytes
from engine.inference.manifest import list_models
from engine.inference.precision import REQUESTS

#: the overlap policies offered: (label, engine.data.labeledit policy)
OVERLAP_CHOICES = [("New masks take unlocked objects' voxels", OVERWRITE_UNLOCKED),
                   ("New masks never take another object's voxels", NEVER_OVERWRITE)]


class SettingsDialog(QDialog):
    def __init__(self, parent, settings: Settings):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        form = QFormLayout(self)
        self.model = QComboBox()
        self.model.addItem("default", "")
        for m in list_models():
            self.model.addItem(f"{m.name} ({m.family}, {m.precision})", m.name)
        i = self.model.findData(settings.model)
        self.model.setCurrentIndex(max(i, 0))
        self.precision = QComboBox()
        self.precision.addItems(list(REQUESTS))
        self.precision.setToolTip("auto: the rule for this CPU (Help ▸ About shows what it chose and why); "
                                  "f32: the same results on every CPU")
        self.precision.setCurrentText(settings.precision)
        self.threads = QSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic")
        self.threads.setValue(settings.threads)
        self.cache = QSpinBox()
        self.cache.setRange(0, 65536)
        self.cache.setSingleStep(256)
        self.cache.setSuffix(" MiB")
        self.cache.setSpecialValueText(f"automatic ({default_max_bytes(disk_tier=settings.disk_cache) >> 20} MiB)")
        self.cache.setValue(settings.cache_mb)
        self.disk_cache = QCheckBox("Also keep embeddings on disk (user cache folder)")
        self.disk_cache.setChecked(settings.disk_cache)
        self.overlap = QComboBox()
        self.overlap.setObjectName("overlapPolicy")
        for label, policy in OVERLAP_CHOICES:
            self.overlap.addItem(label, policy)
        self.overlap.setCurrentIndex(max(self.overlap.findData(settings.overlap), 0))
        self.overlap.setToolTip("Locked objects are never changed, whichever is chosen")
        self._brush_mm = settings.brush_mm
        form.addRow("Model", self.model)
        form.addRow("Precision", self.precision)
        form.addRow("Inference threads", self.threads)
        form.addRow("Embedding cache", self.cache)
        form.addRow("", self.disk_cache)
        form.addRow("Overlapping objects", self.overlap)
        bb = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    def result_settings(self) -> Settings:
        return Settings(self.model.currentData(), self.precision.currentText(), self.threads.value(),
                        self.cache.value(), self.overlap.currentData(), self._brush_mm, self.disk_cache.isChecked())


__all__ = ["SettingsDialog"]
