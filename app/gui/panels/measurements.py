"""The measurements dock (objectName ``measurementsDock``): every object's ``boxseg stats`` row.

The table (objectName ``measurementsTable``) has one row per object and the columns of
``engine.data.measure.COLUMNS``; it shows the controller's measurements (computed on the measure
worker after every change). Copy (``copyMeasurementsButton``) puts the table on the clipboard as
tab-separated text with its header; Export CSV (``exportMeasurementsButton``) writes the same columns
as ``boxseg stats --csv``, computed afresh and written atomically on the I/O worker.
"""

from __future__ import annotations

from PySide6.QtWidgets import (QApplication, QFileDialog, QHBoxLayout, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from engine.data.measure import COLUMNS, format_value, to_csv


class MeasurementsPanel(QWidget):
    def __init__(self, win):
        super().__init__()
        self.win, self.c = win, win.c
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("measurementsTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.verticalHeader().hide()
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.copy = QPushButton("Copy")
        self.copy.setObjectName("copyMeasurementsButton")
        self.copy.setToolTip("Copy the table (tab-separated, with its header) to the clipboard")
        self.export = QPushButton("Export CSV…")
        self.export.setObjectName("exportMeasurementsButton")
        self.export.setToolTip("Write every object's measurements as `boxseg stats --csv` does")
        row.addWidget(self.copy)
        row.addWidget(self.export)
        row.addStretch(1)
        lay.addLayout(row)
        self.copy.clicked.connect(self.copy_to_clipboard)
        self.export.clicked.connect(self.export_dialog)
        self.c.measurementsChanged.connect(self.refresh)

    def rows(self) -> list[dict]:
        """The objects' rows in the document's order (those measured so far)."""
        ms = self.c.measurements
        return [ms[o.value].row() for o in self.c.doc.objects if o.value in ms]

    def refresh(self) -> None:
        rows = self.rows()
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, col in enumerate(COLUMNS):
                self.table.setItem(i, j, QTableWidgetItem(format_value(r[col])))
        self.table.resizeColumnsToContents()

    def copy_to_clipboard(self) -> str:
        text = to_csv(self.rows(), sep="\t")
        QApplication.clipboard().setText(text)
        return text

    def export_dialog(self):
        if self.c.image is None:
            return None
        path, _ = QFileDialog.getSaveFileName(self, "Export measurements", "measurements.csv", "CSV (*.csv)")
        if path:
            return self.c.export_measurements(path)
        return None


__all__ = ["MeasurementsPanel"]
