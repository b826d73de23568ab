"""The study/series browser (objectName ``seriesBrowser``): Patient ▸ Study ▸ Series of a DICOM folder or a
DICOMDIR, as listed by :func:`engine.io.studies.list_studies` (on a worker, before this dialog opens).

The tree (``seriesTree``) has the columns Patient, Study, Series, Modality, Slices, Date; a series row keeps
its SeriesInstanceUID in ``Qt.UserRole`` of column 0. Open (the OK button) or a double-click on a series
accepts; :meth:`SeriesBrowser.chosen_uid` is then the series to open. Patient names and IDs are shown here
and nowhere else (never logged).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout

from engine.io.studies import Listing

#: the tree's columns, in order
COLUMNS = ("Patient", "Study", "Series", "Modality", "Slices", "Date")


class SeriesBrowser(QDialog):
    def __init__(self, parent, listing: Listing):
        super().__init__(parent)
        self.setObjectName("seriesBrowser")
        self.listing = listing
        n = len(listing.series)
        self.setWindowTitle(f"Open series — {listing.source.name}")
        self.resize(760, 420)
        lay = QVBoxLayout(self)
        head = QLabel(f"{n} image series in {listing.source}. Choose one to open:")
        head.setWordWrap(True)
        lay.addWidget(head)
        self.tree = QTreeWidget()
        self.tree.setObjectName("seriesTree")
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.series_items: dict[str, QTreeWidgetItem] = {}
        self._fill()
        lay.addWidget(self.tree, 1)
        if listing.warnings:
            warn = QLabel("⚠ " + "\n⚠ ".join(listing.warnings))
            warn.setObjectName("seriesWarnings")
            warn.setWordWrap(True)
            lay.addWidget(warn)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.tree.currentItemChanged.connect(lambda *_: self._update_ok())
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        first = self.series_items.get(listing.series[0].uid) if listing.series else None
        if first is not None:  # the largest series, as `boxseg` would take
            self.tree.setCurrentItem(first)
        self._update_ok()

    def _fill(self) -> None:
        for patient, studies in self.listing.tree():
            p = QTreeWidgetItem([patient.patient_label(), "", "", "", "", ""])
            self.tree.addTopLevelItem(p)
            for study, entries in studies:
                s = QTreeWidgetItem(["", study.study_label(), "", "", str(sum(e.slices for e in entries)),
                                     study.study_date])
                p.addChild(s)
                for e in entries:
                    item = QTreeWidgetItem(["", "", e.series_label(), e.modality, str(e.slices), e.series_date])
                    item.setData(0, Qt.UserRole, e.uid)
                    item.setToolTip(2, f"{e.info.columns}x{e.info.rows}, {len(e.files)} file(s)\n{e.uid}")
                    item.setTextAlignment(4, Qt.AlignRight | Qt.AlignVCenter)
                    s.addChild(item)
                    self.series_items[e.uid] = item
        self.tree.expandAll()
        for col in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(col)

    def chosen_uid(self) -> str | None:
        """The SeriesInstanceUID of the selected series row, or None (a patient or study row)."""
        item = self.tree.currentItem()
        uid = item.data(0, Qt.UserRole) if item is not None else None
        return str(uid) if uid else None

    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.Open).setEnabled(self.chosen_uid() is not None)

    def _double_clicked(self, item, _col) -> None:
        if item.data(0, Qt.UserRole):
            self.tree.setCurrentItem(item)
            self.accept()


__all__ = ["COLUMNS", "SeriesBrowser"]
