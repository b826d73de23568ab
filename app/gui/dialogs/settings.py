"""Edit ▸ Settings: model, precision, inference threads, embedding cache size."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QSpinBox

from app.gui.settings import Settings
from engine.inference.manifest import list_models


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
        self.precision.addItems(["f32", "bf16"])
        self.precision.setCurrentText(settings.precision)
        self.threads = QSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic")
        self.threads.setValue(settings.threads)
        self.cache = QSpinBox()
        self.cache.setRange(64, 65536)
        self.cache.setSingleStep(256)
        self.cache.setSuffix(" MiB")
        self.cache.setValue(settings.cache_mb)
        form.addRow("Model", self.model)
        form.addRow("Precision", self.precision)
        form.addRow("Inference threads", self.threads)
        form.addRow("Embedding cache", self.cache)
        bb = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    def result_settings(self) -> Settings:
        return Settings(self.model.currentData(), self.precision.currentText(), self.threads.value(),
                        self.cache.value())


__all__ = ["SettingsDialog"]
