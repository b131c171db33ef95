"""The Help menu's dialogs: Keyboard and mouse (every input, from the menu table of
:mod:`lumbarview.ui.actions`), the manual, and About (version, libraries and their licences,
where the program keeps its files)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from PySide6 import QtCore, QtWidgets

from lumbarview.services.about import About, about


class ShortcutsDialog(QtWidgets.QDialog):
    """The table of inputs: (input, what it does) rows."""

    def __init__(self, rows: Sequence[tuple[str, str]], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse")
        self.table = QtWidgets.QTableWidget(len(rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Input", "Action"])
        for row, (key, action) in enumerate(rows):
            self.table.setItem(row, 0, QtWidgets.QTableWidgetItem(key))
            self.table.setItem(row, 1, QtWidgets.QTableWidgetItem(action))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.table)
        self.resize(720, 560)
        self.setWindowFlag(QtCore.Qt.WindowType.WindowContextHelpButtonHint, False)


class HelpDialog(QtWidgets.QDialog):
    """A page of rich text (the manual, About) with a Close button."""

    def __init__(self, title: str, html: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.browser = QtWidgets.QTextBrowser(self)
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(html)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(760, 620)


def about_html(info: About | None = None) -> str:
    info = info or about()
    rows = "".join(f"<tr><td>{escape(lib.name)}</td><td>{escape(lib.version)}</td><td>{escape(lib.licence)}</td></tr>"
                   for lib in info.libraries)
    return (
        f"<h2>lumbarview {escape(info.version)}</h2>"
        "<p>A viewer for lumbar spine MRI with measurement tools. It reads datasets and never writes "
        "into them. It is not a medical device: every value needs a reader's check.</p>"
        "<h3>Where it keeps its files</h3><ul>"
        f"<li>Workspace (autosaved sessions, flags, reports): <code>{escape(str(info.workspace))}</code> "
        "(<code>LUMBARVIEW_WORKSPACE</code> moves it)</li>"
        f"<li>Cache (header index, demo dataset): <code>{escape(str(info.cache))}</code> "
        "(<code>LUMBARVIEW_CACHE_DIR</code> moves it)</li>"
        f"<li>Log of unexpected errors: <code>{escape(str(info.crash_log))}</code></li>"
        "<li>Settings (recent datasets, layout, windows, docks): the platform's settings store "
        "(QSettings, organisation and application <code>lumbarview</code>)</li></ul>"
        "<h3>Libraries and their licences</h3>"
        f"<table cellpadding='3'><tr><th align='left'>Library</th><th align='left'>Version</th>"
        f"<th align='left'>Licence</th></tr>{rows}</table>"
        "<p>Qt (through PySide6) is used under the LGPL 3.0; its libraries are loaded dynamically and "
        "may be replaced.</p>")


def manual_html() -> str:
    return """
<h2>lumbarview manual</h2>
<h3>Opening</h3>
<p><b>File &gt; Open folder</b> (Ctrl+O) opens a dataset folder, a DICOMDIR or an image file; dropping one
on the window does the same. <b>File &gt; Open demo</b> writes the built-in phantom (an analytic L1-S1
spine whose measurements are known) into the cache folder in six dataset layouts and opens the one you
pick. The browser on the left lists the cases and series; drag a series onto a view to show it there.</p>
<h3>Views</h3>
<p>The sagittal, axial and coronal views (View &gt; Layout: 1x2, 1x3, 2x2 with an oblique view) share one
crosshair in patient coordinates (LPS, millimetres): a click in one view moves it in all. Every view is a
plane: where a series was acquired in the view's orientation it shows the stored pixels; elsewhere it
reformats the best volume and says so on the image. The status bar gives the position under the mouse in
LPS millimetres (L, P and S positive) and the pixel value. The corner of each view gives the position of
the shown slice along the axis it names, in the same convention.</p>
<h3>Planes</h3>
<p><b>Planes &gt; Align axial to a disc</b> tilts the axial view onto a disc's plane (from the label map);
Shift+drag on the sagittal plans an oblique axial along the line; Ctrl+R gives the standard planes back.</p>
<h3>Measuring</h3>
<p>Pick a tool in the Tools menu or tool bar (distance, angle, Cobb angle, ellipse, polygon and freehand
areas, point, perpendicular disc height), then click on a view. Nothing moves while a tool is in use: the
Measurements table (View &gt; Measurements) opens by itself only for a restored session. Drag a handle to move a point;
Delete removes the selected measurement; Ctrl+Z undoes. The session is saved in your workspace as you
work (never into the dataset) and offered again when the dataset is reopened.</p>
<p><b>Measure &gt; Measure this case</b> (Ctrl+M) runs the engine on a case with label maps; the Levels
panel lists its values per level and side, and a click shows where each was measured. <b>Measure &gt;
Export</b> writes CSV, JSON, a DICOM Structured Report or an HTML report.</p>
<h3>Saving pictures</h3>
<p>File &gt; Save screenshot saves the views; the 3D pane has its own button. Saves start in your
documents folder, then in the last folder you used; never inside a dataset.</p>
<h3>More</h3>
<p>Help &gt; Keyboard and mouse (F1) lists every input. The README that comes with the program
describes the command line (<code>lumbarview view</code>, <code>measure</code>, <code>info</code>,
<code>demo</code>).</p>
"""
