"""What is written over an image (orientation letters, corner text, a message, the scale bar),
painted by the graphics view as its foreground, in the image's own paint pass: overlay widgets
each cost a repaint of their own on every slice step. Every text has a dark shadow so that it
reads over bright anatomy and is never struck through by the crosshair.

Each text is drawn (four passes: three shadows and the text) into an image of its own once per
change of its words, font or place, and a frame only copies those images: a slice step repaints
the view many times more often than its corner text changes."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.ui import theme

_SHADOW = QtGui.QColor(0, 0, 0, 220)


class Hud:
    """The texts of one view, keyed ``top``, ``bottom``, ``left``, ``right`` (letters), ``tl``,
    ``tr``, ``bl`` (corner text) and ``center`` (a message)."""

    KEYS = ("top", "bottom", "left", "right", "tl", "tr", "bl", "center")

    def __init__(self, view: QtWidgets.QGraphicsView) -> None:
        self._view = view
        self._texts = dict.fromkeys(self.KEYS, "")
        self._mm_per_px = 0.0
        self._font = QtGui.QFont("monospace")
        self._font.setStyleHint(QtGui.QFont.StyleHint.Monospace)
        self._font.setPixelSize(11)
        self._bold = QtGui.QFont(self._font)
        self._bold.setPixelSize(13)
        self._bold.setBold(True)
        #: The texts drawn with their shadows, by (key, text, box, flags, font size): each an
        #: image and where it goes. Only the latest of each key is kept.
        self._drawn: dict[str, tuple[tuple[object, ...], QtGui.QImage, QtCore.QPoint]] = {}
        self.renders = 0  # texts drawn into their images (not frames): for tests and benchmarks

    def text(self, key: str) -> str:
        return self._texts[key]

    def set_text(self, key: str, text: str) -> None:
        if self._texts[key] != text:
            self._texts[key] = text
            self.update()

    def set_scale(self, mm_per_px: float) -> None:
        if abs(mm_per_px - self._mm_per_px) > 1e-9:
            self._mm_per_px = mm_per_px
            self.update()

    def bar(self) -> tuple[float, int]:
        """(length in mm, length in screen pixels) of the scale bar at the current zoom."""
        if self._mm_per_px <= 0:
            return 0.0, 0
        target = 100 * self._mm_per_px
        nice = [1, 2, 5, 10, 20, 25, 50, 100, 200, 500]
        mm = max([n for n in nice if n <= target] or [nice[0]])
        return float(mm), round(mm / self._mm_per_px)

    def update(self) -> None:
        self._view.viewport().update()

    def _shadowed(self, painter: QtGui.QPainter, key: str, rect: QtCore.QRect, flags: int, text: str) -> None:
        """``text`` in ``rect`` with its shadow, from its image (drawn when anything changed)."""
        font = painter.font()
        ident = (text, rect.getRect(), flags, font.pixelSize(), font.bold())
        found = self._drawn.get(key)
        if found is None or found[0] != ident:
            found = (ident, *self._render(font, rect, flags, text))
            self._drawn[key] = found
        painter.drawImage(found[2], found[1])

    def _render(self, font: QtGui.QFont, rect: QtCore.QRect, flags: int,
                text: str) -> tuple[QtGui.QImage, QtCore.QPoint]:
        self.renders += 1
        bounds = QtGui.QFontMetrics(font).boundingRect(rect, flags, text).adjusted(-2, -2, 2, 2)
        ratio = self._view.devicePixelRatioF()
        image = QtGui.QImage(max(1, round(bounds.width() * ratio)), max(1, round(bounds.height() * ratio)),
                             QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        image.setDevicePixelRatio(ratio)
        image.fill(QtCore.Qt.GlobalColor.transparent)
        p = QtGui.QPainter(image)
        p.setFont(font)
        p.translate(-bounds.topLeft())
        p.setPen(_SHADOW)
        for dx, dy in ((1, 1), (-1, -1), (1, -1)):
            p.drawText(rect.translated(dx, dy), flags, text)
        p.setPen(QtGui.QColor(theme.TEXT))
        p.drawText(rect, flags, text)
        p.end()
        return image, bounds.topLeft()

    def paint(self, painter: QtGui.QPainter, area: QtCore.QRect) -> None:
        rect = area.adjusted(6, 6, -6, -6)
        a = QtCore.Qt.AlignmentFlag
        painter.setFont(self._bold)
        for key, flags in (("top", a.AlignHCenter | a.AlignTop), ("bottom", a.AlignHCenter | a.AlignBottom),
                           ("left", a.AlignLeft | a.AlignVCenter), ("right", a.AlignRight | a.AlignVCenter)):
            if self._texts[key]:
                self._shadowed(painter, key, rect, int(flags), self._texts[key])
        painter.setFont(self._font)
        mm, px = self.bar()
        # The bottom-left text stops short of the scale bar and wraps, never running under it.
        bottom_left = rect.adjusted(0, 0, -(px + 16), 0) if px > 0 else rect
        for key, box, flags in (("tl", rect, a.AlignLeft | a.AlignTop), ("tr", rect, a.AlignRight | a.AlignTop),
                                ("bl", bottom_left, a.AlignLeft | a.AlignBottom)):
            if self._texts[key]:
                flags |= QtCore.Qt.TextFlag.TextWordWrap if key == "bl" else 0
                self._shadowed(painter, key, box, int(flags), self._texts[key])
        if self._texts["center"]:
            box = painter.boundingRect(rect, int(a.AlignCenter), self._texts["center"]).adjusted(-8, -6, 8, 6)
            painter.fillRect(box, QtGui.QColor(0, 0, 0, 160))
            self._shadowed(painter, "center", rect, int(a.AlignCenter), self._texts["center"])
        if px > 0:
            x1 = rect.right()
            x0 = x1 - px
            y = rect.bottom() - 18
            for colour, width in ((_SHADOW, 4), (QtGui.QColor(theme.TEXT), 2)):
                painter.setPen(QtGui.QPen(colour, width))
                painter.drawLine(x0, y, x1, y)
                painter.drawLine(x0, y - 4, x0, y + 1)
                painter.drawLine(x1, y - 4, x1, y + 1)
            self._shadowed(painter, "bar", QtCore.QRect(x0 - 40, y - 20, px + 40, 16),
                           int(a.AlignRight | a.AlignBottom), f"{mm:g} mm")


class Graphics(pg.GraphicsLayoutWidget):
    """The graphics view, with the HUD drawn as its foreground in viewport pixels."""

    hud: Hud | None = None

    def drawForeground(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        super().drawForeground(painter, rect)
        if self.hud is not None:
            painter.save()
            painter.resetTransform()
            self.hud.paint(painter, self.viewport().rect())
            painter.restore()

