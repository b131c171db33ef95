"""A calm dark theme for reading rooms: dim greys, no pure white, one accent colour."""

from __future__ import annotations

from PySide6 import QtGui, QtWidgets

ACCENT = "#e0a040"          # current reference line, crosshair
CROSSHAIR = "#f0c060"
REFERENCE_FAINT = "#5a8fb8"
TEXT = "#c8c8c8"
#: The colour of each view, used for its plane drawn on the other views (as in most MPR viewers).
VIEW_COLOURS = {"sagittal": "#e0a040", "axial": "#e0a040", "coronal": "#7cc47c", "oblique": "#d070d0"}


def apply_dark_theme(app: QtWidgets.QApplication) -> None:
    app.setStyle("Fusion")
    p = QtGui.QPalette()
    colours = {
        QtGui.QPalette.ColorRole.Window: "#202225",
        QtGui.QPalette.ColorRole.WindowText: TEXT,
        QtGui.QPalette.ColorRole.Base: "#17181a",
        QtGui.QPalette.ColorRole.AlternateBase: "#222428",
        QtGui.QPalette.ColorRole.ToolTipBase: "#2b2d31",
        QtGui.QPalette.ColorRole.ToolTipText: TEXT,
        QtGui.QPalette.ColorRole.Text: TEXT,
        QtGui.QPalette.ColorRole.Button: "#2b2d31",
        QtGui.QPalette.ColorRole.ButtonText: TEXT,
        QtGui.QPalette.ColorRole.BrightText: "#ff6b6b",
        QtGui.QPalette.ColorRole.Highlight: "#3d6e99",
        QtGui.QPalette.ColorRole.HighlightedText: "#f0f0f0",
        QtGui.QPalette.ColorRole.Link: ACCENT,
    }
    for role, colour in colours.items():
        p.setColor(role, QtGui.QColor(colour))
    p.setColor(QtGui.QPalette.ColorGroup.Disabled, QtGui.QPalette.ColorRole.Text, QtGui.QColor("#6a6a6a"))
    p.setColor(QtGui.QPalette.ColorGroup.Disabled, QtGui.QPalette.ColorRole.ButtonText, QtGui.QColor("#6a6a6a"))
    app.setPalette(p)
    app.setStyleSheet("QToolTip { border: 1px solid #3a3d42; }"
                      "QDockWidget::title { padding: 4px; background: #26282c; }")
