"""The Report and Tables docks, readable markers and DICOM overlay planes in the viewer,
checked as pixels and widgets (offscreen)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtGui

from lumbarview.phantom.layouts import Sizes, write_all
from lumbarview.ui.screenshot import sidecar
from tests.qt.conftest import open_and_wait
from tests.qt.test_overlays import _pos, _rgb

pytestmark = pytest.mark.qt


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("docks-demo"), sizes=Sizes.small(),
                     layouts=("unidata", "bids", "aisslab"))


def _image_rgb(image: QtGui.QImage) -> np.ndarray:
    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    arr = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h).reshape(h, -1)
    return arr[:, : w * 3].reshape(h, w, 3).astype(int)


def test_report_dock_shows_the_unidata_pdf(qtbot, window, demo) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo["unidata"])
    panel = window.report_panel
    assert [Path(p).name for p in panel.paths] == ["Lumbar_Spine_MRI.pdf"]
    qtbot.waitUntil(lambda: panel.shown_image() is not None, timeout=30_000)
    assert window.report_dock.isVisible()
    rgb = _image_rgb(panel.shown_image())
    assert (rgb.min(axis=2) > 235).mean() > 0.9  # white paper
    dark = rgb.max(axis=2) < 110
    assert 0.001 < dark.mean() < 0.05  # with text on it
    # "fit width" (the default): the page as wide as the dock's viewport, also after a resize.
    def fits() -> bool:
        image = panel.shown_image()
        viewport = panel.page_area.viewport().width()
        return image is not None and viewport - 14 <= image.width() <= viewport

    qtbot.waitUntil(fits, timeout=30_000)
    window.report_dock.setMinimumWidth(window.report_dock.width() + 120)
    qtbot.waitUntil(fits, timeout=30_000)
    # Zoom 200 %: twice the pixels of 100 %, rendered off the GUI thread.
    with qtbot.waitSignal(panel.page_shown, timeout=30_000):
        panel.zoom.setCurrentIndex(panel.zoom.findText("100 %"))
    height = _image_rgb(panel.shown_image()).shape[0]
    with qtbot.waitSignal(panel.page_shown, timeout=30_000):
        panel.zoom.setCurrentIndex(panel.zoom.findText("200 %"))
    assert _image_rgb(panel.shown_image()).shape[0] == pytest.approx(2 * height, abs=2)
    docks = {d["name"]: d["visible"] for d in sidecar(window)["docks"]}
    assert docks["Report"] is True and "Tables" in docks


def test_tables_dock_sorts_and_filters(qtbot, window, demo) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo["bids"])
    panel = window.tables_panel
    assert window.tables_dock.isVisible()
    names = [t.name for t in panel.tables]
    assert any(n.endswith(".json") for n in names)  # the sidecars
    assert panel.select("participants.tsv") or panel.select("participants")
    table = panel.table
    assert table is not None and table.rows
    # A sidecar: sort by field, descending, then filter one field.
    sidecar_name = next(n for n in names if n.endswith(".json"))
    assert panel.select(sidecar_name)
    panel.sort_by("field")
    fields = panel.column_values("field")
    assert fields == sorted(fields, key=str.lower) and len(fields) > 3
    panel.view.horizontalHeader().sectionClicked.emit(0)  # a click on the same header: descending
    assert panel.descending and panel.column_values("field") == sorted(fields, key=str.lower, reverse=True)
    panel.filter.setText("field: manufacturersmodel")  # one column, any case
    assert panel.column_values("field") == ["ManufacturersModelName"]
    assert panel.model.rowCount() == 1 and "1 of" in panel.status.text()
    panel.filter.setText("")
    assert panel.model.rowCount() == len(fields)


def test_bids_markers_are_named_and_shown(qtbot, window, demo) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo["bids"])
    case = window.session.case
    layers = window.session.overlays.marker_layers()
    assert len(layers) == len(case.point_sets) and all(layer.visible for layer in layers)
    tree = window.layer_panel
    texts = [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())]
    assert "nerve roots L4 left  [points]" in texts and "ganglia L5 right  [points]" in texts
    # A nerve-root marker on screen with its name beside it, in its kind's colour.
    roots = next(layer for layer in layers if layer.title == "nerve roots L4 left")
    window.session.cursor.set_crosshair(roots.source.points_lps[0])
    qtbot.wait(30)
    shown = {id(layer) for v in window.visible_views() for layer, _ in v.overlay.shown_points}
    assert id(roots) in shown
    labels = [item.toPlainText() for v in window.visible_views() for item in v.overlay._pool["text"]
              if item.isVisible()]
    # (a ganglion marked on its root shares the label: "ganglia L4 L / nerve roots L4 L")
    assert any("nerve roots L4 L" in text.split(" / ") for text in labels)
    # Hide all, show all.
    window.layer_panel.hide_all_button.click()
    assert not any(layer.visible for layer in layers)
    qtbot.wait(20)
    assert not any(v.overlay.shown_points for v in window.visible_views())
    window.session.undo.undo()
    assert all(layer.visible for layer in layers)


def test_aisslab_boxes_are_drawn_once(qtbot, window, demo) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo["aisslab"])
    case = window.session.case
    (box_set,) = case.box_sets  # the two copies of each VOC file are merged when the dataset opens
    assert all(b.copies for b in box_set.boxes)
    box = box_set.boxes[0]
    window.session.cursor.set_crosshair(box.corners_lps.mean(axis=0))
    qtbot.wait(30)
    view = window.views["sagittal"]
    on_slice = [b for b in case.box_sets[0].boxes if b.slice_index == box.slice_index]
    drawn = [b for b, _ in view.overlay.shown_boxes]
    assert len(drawn) == len(on_slice) > 0  # once each, not twice
    box_layers = [layer for layer in window.session.overlays.layers if layer.kind == "boxes"]
    assert len(box_layers) == 1 and box_layers[0].source is box_set


@pytest.mark.shared_data
def test_the_siemens_overlay_is_drawn_where_the_file_says(qtbot, window, shared_data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pydicom

    source = shared_data / "pydicom-testfiles/pydicom-3.0.2/examples_overlay.dcm"
    shutil.copy(source, tmp_path / "overlay.dcm")
    open_and_wait(qtbot, window, tmp_path)
    (layer,) = [lay for lay in window.session.overlays.layers if lay.name.startswith("DICOM overlay 6000")]
    assert layer.visible and layer.opacity == 1.0
    bits = pydicom.dcmread(source).overlay_array(0x6000).astype(bool)
    image = window.session.case.stacks()[0]
    view = next(v for v in window.visible_views() if v.view_state.mode == "native")
    on = np.argwhere(bits)
    # Overlay pixels with at least 3 set neighbours (a line, not a lone dot), and pixels 6 away
    # from any set pixel.
    from scipy import ndimage

    dense = np.argwhere(bits & (ndimage.convolve(bits.astype(int), np.ones((3, 3), int), mode="constant") >= 4))
    far = np.argwhere(~ndimage.binary_dilation(bits, iterations=6))
    # The marked lesion (the ring at the image's right side, columns < 120): zoomed so that an
    # overlay pixel covers more than one screen pixel.
    lesion = dense[dense[:, 1] < 120]
    centre_rc = lesion.mean(axis=0)
    view.zoom_to(image.geometry.index_to_lps((centre_rc[1], centre_rc[0], 0.0)), field_mm=50.0)
    near = far[np.abs(far - centre_rc).max(axis=1) < 25]
    rng = np.random.default_rng(0)
    sample_on = lesion[rng.choice(len(lesion), size=min(20, len(lesion)), replace=False)]
    sample_off = near[rng.choice(len(near), size=20, replace=False)]
    assert len(on) == 222 and len(sample_on) >= 10

    def yellow_fraction(points: np.ndarray) -> float:
        rgb = _rgb(view)
        hits = 0
        for r, c in points:
            p = _pos(view, image.geometry.index_to_lps((float(c), float(r), 0.0)))
            if not (0 <= p.y() < rgb.shape[0] and 0 <= p.x() < rgb.shape[1]):
                continue
            red, green, blue = rgb[p.y(), p.x()]
            hits += int(red > 180 and green > 150 and blue < 90)
        return hits / len(points)

    qtbot.wait(30)
    assert yellow_fraction(sample_on) > 0.7
    assert yellow_fraction(sample_off) == 0.0
    window.session.set_layer(layer, visible=False)
    qtbot.wait(30)
    assert yellow_fraction(sample_on) == 0.0
