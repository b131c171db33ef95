"""The session: everything the viewer shows and every edit the user makes, without Qt.

It holds the open dataset and case, the one cursor, the view states, the overlay layers, the
window per series, the layout and the display convention, and one undo history: each user
edit (window/level, layer visibility and opacity, plane alignment, the display convention) is
a :class:`~lumbarview.model.commands.Command`. The Qt window builds widgets and binds them to a
session; it decides nothing the session can decide.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.events import Signal
from lumbarview.core.geometry import PlaneOrientation
from lumbarview.core.types import ImageStack, Series
from lumbarview.model.commands import Command, Group, SetValue, UndoStack
from lumbarview.model.cursor import CursorModel
from lumbarview.model.gradings import GradingDocument
from lumbarview.model.measurements import MeasurementDocument
from lumbarview.model.overlays import Layer, OverlayModel
from lumbarview.model.report_fields import ReportFields
from lumbarview.model.view_state import ViewState, WindowLevel
from lumbarview.slicing.planes import ViewPlane
from lumbarview.slicing.reference_lines import ReferenceLine, cut

VIEW_NAMES = ("sagittal", "axial", "coronal", "oblique")
LAYOUTS: dict[str, tuple[str, ...]] = {
    "1x2": ("sagittal", "axial"),
    "1x3": ("sagittal", "axial", "coronal"),
    "2x2": ("sagittal", "axial", "coronal", "oblique"),
}
#: A native axial series of at most this many slices (or of several blocks) has every slice
#: drawn faintly on the sagittal, as a reader checks the planning; a 3D volume's 200 slices would
#: only hide the image.
MAX_SLICE_LINES = 60
_ORIENTATION = {"sagittal": PlaneOrientation.SAGITTAL, "axial": PlaneOrientation.AXIAL,
                "coronal": PlaneOrientation.CORONAL, "oblique": PlaneOrientation.OBLIQUE}


class LayerEdit(Command):
    """A change of a layer's display state."""

    def __init__(self, model: OverlayModel, layer: Layer, old: dict[str, Any], new: dict[str, Any],
                 merge: bool) -> None:
        self.text = "layer " + ", ".join(new)
        self.model, self.layer, self.old, self.new, self.merge = model, layer, dict(old), dict(new), merge

    def do(self) -> None:
        self.model.update(self.layer, **self.new)

    def undo(self) -> None:
        self.model.update(self.layer, **self.old)

    def merge_key(self) -> Any:
        return ("layer", id(self.layer), tuple(sorted(self.new))) if self.merge else None

    def merge_with(self, newer: Command) -> bool:
        if isinstance(newer, LayerEdit) and newer.merge_key() == self.merge_key():
            self.new = newer.new
            return True
        return False


class Session:
    """One viewer session (see the module docstring)."""

    dataset_changed = Signal(object)  # Dataset | None
    case_changed = Signal(object)  # Case | None
    layout_changed = Signal(str)
    windows_changed = Signal()  # the user's window/level of a series changed (``windows``)

    def __init__(self, default_window: Callable[[ImageStack], WindowLevel] | None = None) -> None:
        self.cursor = CursorModel()
        self.undo = UndoStack()
        self.measurements = MeasurementDocument(self.undo)  # the measurement tools' document
        self.gradings = GradingDocument(self.undo)  # the reader's (and the dataset's) grades per level
        self.report_fields = ReportFields(self.undo)  # the reader's words in the structured report
        self.overlays = OverlayModel()
        self.views: dict[str, ViewState] = {name: ViewState(name, _ORIENTATION[name], self.cursor)
                                             for name in VIEW_NAMES}
        self.windows: dict[str, WindowLevel] = {}  # by series uid: what the user chose
        self.dataset: Dataset | None = None
        self.case: Case | None = None
        self.layout = "1x3"
        self.native_orientation = False
        self.disc_planes: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
        self.chosen: dict[str, Series | None] = {}  # the case loader's series per view
        self.replaced_views: set[str] = set()  # views whose pane shows the 3D scene instead
        self._default_window = default_window
        for view in self.views.values():
            view.series_changed.connect(lambda _s, v=view: self._apply_window(v))

    # -- dataset and case ---------------------------------------------------------------------
    def set_dataset(self, dataset: Dataset | None) -> None:
        self.dataset = dataset
        self.case = None
        self.undo.clear()
        self.measurements.reset([])
        self.gradings.reset([])
        self.report_fields.reset([])
        self.dataset_changed.emit(dataset)

    def show_case(self, case: Case, series: dict[str, Series | None], cursor_lps: npt.ArrayLike,
                  disc_planes: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] | None = None,
                  shown_stacks: set[str] | None = None) -> None:
        """Show ``case``: the series each view samples (chosen by the case loader), the
        cursor's start, the disc planes the label maps give. The history starts anew."""
        self.case = case
        self.chosen = dict(series)
        self.disc_planes = dict(disc_planes or {})
        self.undo.clear()
        # Each view is told once, when all is in place (not once per change: that drew the
        # previous case's series again).
        with ExitStack() as held:
            for view in self.views.values():
                held.enter_context(view.held())
            self.cursor.set_crosshair(cursor_lps)
            for name, view in self.views.items():
                view.set_custom_plane(None)
                view.set_series(series.get(name))
        self.overlays.set_case(case, shown_stacks)
        self.case_changed.emit(case)

    def visible_views(self) -> list[ViewState]:
        return [self.views[name] for name in LAYOUTS[self.layout] if name not in self.replaced_views]

    # -- windows: the view state's policy ------------------------------------------------------
    def _apply_window(self, view: ViewState) -> None:
        series = view.series
        if series is None or not series.stacks:
            return
        window = self.windows.get(series.uid)
        if window is None and self._default_window is not None:
            stack = view.source or series.stacks[len(series.stacks) // 2]
            if stack.is_loaded:
                window = self._default_window(stack)
        if window is not None:
            view.set_window(window)

    def _set_window_now(self, view_name: str, window: WindowLevel) -> None:
        view = self.views[view_name]
        if view.series is not None:
            self.windows[view.series.uid] = window
            self.windows_changed.emit()
        for other in self.views.values():  # every view of that series follows
            if other.series is not None and view.series is not None and other.series.uid == view.series.uid:
                other.set_window(window)

    def set_window(self, view_name: str, window: WindowLevel, merge: bool = False) -> None:
        """Window/level of the series in ``view_name`` (a drag merges into one undo step)."""
        view = self.views[view_name]
        current = view.window
        if current is None or current == window:
            if current is None:
                self._set_window_now(view_name, window)
            return
        self.undo.push(SetValue("window/level", lambda: view.window or window,
                                lambda w: self._set_window_now(view_name, w), window,
                                key=("window", view_name, view.series.uid if view.series else ""), merge=merge))

    # -- layers -------------------------------------------------------------------------------
    def set_layer(self, layer: Layer, merge: bool = False, **changes: Any) -> None:
        """Change a layer's display state (visible, opacity, outline, hidden_labels...);
        ``merge`` makes a run of the same change (a slider) one undo step."""
        old = {key: getattr(layer, key) for key in changes}
        if all(old[k] == v for k, v in changes.items()):
            return
        self.undo.push(LayerEdit(self.overlays, layer, old, changes, merge))

    def set_layers(self, layers: list[Layer], text: str, **changes: Any) -> None:
        """The same change to several layers (show all, hide all) as one undo step."""
        edits: list[Command] = [LayerEdit(self.overlays, layer, {k: getattr(layer, k) for k in changes}, changes,
                                          False) for layer in layers
                                if any(getattr(layer, k) != v for k, v in changes.items())]
        if edits:
            self.undo.push(Group(text, edits))

    # -- planes -------------------------------------------------------------------------------
    def set_plane(self, view_name: str, plane: ViewPlane | None, source: Series | None = None,
                  text: str = "plane", cursor_lps: npt.ArrayLike | None = None) -> None:
        """Show a custom plane in a view (None: its standard plane), optionally sampling
        ``source`` (None: back to the series the case loader chose); undoable. The cursor
        moves to ``cursor_lps`` (default: where it is)."""
        view = self.views[view_name]
        before = (view.custom_plane, view.series, self.cursor.crosshair.copy())
        after_cursor = np.array(self.cursor.crosshair if cursor_lps is None else cursor_lps, dtype=np.float64)
        if plane is None and source is None:
            source = self.chosen.get(view_name, view.series)

        def apply(state: tuple[ViewPlane | None, Series | None, npt.NDArray[np.float64]]) -> None:
            custom, series, cursor = state
            if series is not view.series:
                view.set_series(series)
            view.set_custom_plane(custom)
            self.cursor.set_crosshair(cursor)

        after = (plane, source if source is not None else view.series, after_cursor)
        self.undo.push(SetValue(text, lambda: before, apply, after))

    def set_native_orientation(self, flag: bool) -> None:
        """Show acquired slices as stored (True) or in the radiological convention (False)."""
        if flag == self.native_orientation:
            return

        def apply(value: bool) -> None:
            self.native_orientation = value
            for view in self.views.values():
                view.set_native_orientation(value)

        self.undo.push(SetValue("display convention", lambda: self.native_orientation, apply, flag))

    # -- what each view draws about the others -------------------------------------------------
    def reference_lines(self, view_name: str, all_slices_of: tuple[str, ...] = ("axial", "oblique")
                        ) -> list[ReferenceLine]:
        """The lines to draw on ``view_name``: the current plane of every other visible view
        (bright) and, on a sagittal or coronal view, every stored slice of a native axial
        series of blocks or of at most :data:`MAX_SLICE_LINES` slices (faint), as a reader
        checks the planning of axial blocks."""
        view = self.views[view_name]
        plane = view.plane
        if plane is None:
            return []
        lines: list[ReferenceLine] = []
        for other in self.visible_views():
            if other is view or other.plane is None:
                continue
            if (view.orientation in (PlaneOrientation.SAGITTAL, PlaneOrientation.CORONAL)
                    and other.name in all_slices_of and other.mode == "native"
                    and ((other.series is not None and len(other.series.stacks) > 1)
                         or len(other.slices()) <= MAX_SLICE_LINES)):
                current = other.current
                for ref in other.slices():
                    is_current = current is not None and ref.stack is current.stack and ref.k == current.k
                    if is_current:
                        continue
                    line = cut(plane, ref.plane, other.name, False, (ref.stack.uid, ref.k))
                    if line is not None:
                        lines.append(line)
            line = cut(plane, other.plane, other.name, True)
            if line is not None:
                lines.append(line)
        return lines
