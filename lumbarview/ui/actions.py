"""Menus, tool bars and shortcuts from one table, which also feeds Help > Keyboard and mouse.

The window writes its table as a list of :class:`Entry` (``MainWindow.menu_table``); an entry
with a menu becomes an action there (with its shortcut, and on a tool bar when it names one);
an entry without a menu is an input the views handle themselves (a mouse gesture, a key in a
view), listed in the shortcuts dialog only. :data:`VIEW_INPUTS` are the views' own inputs.
Nothing here knows the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6 import QtGui, QtWidgets


@dataclass(frozen=True)
class Entry:
    """One line of the menu table.

    Attributes
    ----------
    menu : str
        The menu path, parts separated by ``|`` (``"&View|&Layout"``); empty for an input the
        views handle themselves (listed in the shortcuts dialog only).
    text : str
        The action's text (``&`` marks its mnemonic); ``"-"`` is a separator; empty only makes
        the menu exist (a submenu filled later).
    slot : callable, optional
        What the action does; None for a disabled line that only informs.
    shortcut : str
        The key sequence (``"Ctrl+O"``); for an input the views handle, how it is given
        (``"Middle drag"``).
    checkable, checked : bool
        A check box (and its first state).
    group : str
        Checkable entries with the same group are exclusive.
    name : str
        The key of the action in :func:`build_menus`' answer (for the window to reach it).
    toolbar : str
        Also on the tool bar of this title.
    """

    menu: str
    text: str
    slot: Callable[..., Any] | None = None
    shortcut: str = ""
    checkable: bool = False
    checked: bool = False
    group: str = ""
    name: str = ""
    toolbar: str = ""


#: The inputs the views and the 3D pane handle themselves (no menu holds them).
VIEW_INPUTS: tuple[Entry, ...] = (
    Entry("", "set the crosshair (every view follows); on a reference line: go to that slice", shortcut="Left click"),
    Entry("", "move the crosshair", shortcut="Left drag"),
    Entry("", "plan an oblique axial along the line (on the sagittal)", shortcut="Shift + left drag"),
    Entry("", "previous / next slice", shortcut="Mouse wheel, Up/Down, Left/Right"),
    Entry("", "10 % of the slices back / forward", shortcut="Page Up / Page Down"),
    Entry("", "first / last slice", shortcut="Home / End"),
    Entry("", "zoom around the mouse", shortcut="Ctrl + wheel"),
    Entry("", "pan", shortcut="Middle drag"),
    Entry("", "window (horizontal) and level (vertical)", shortcut="Right drag"),
    Entry("", "show a series in a view", shortcut="Drag a series from the browser onto a view"),
    Entry("", "open a dataset", shortcut="Drop a folder or file on the window"),
    Entry("", "measurement tools: place points; drag a handle to move one", shortcut="Left click / drag (a tool)"),
    Entry("", "close a polygon", shortcut="Double click (polygon tool)"),
    Entry("", "3D pane: rotate (a click without a drag moves the crosshair)", shortcut="Left drag (3D)"),
    Entry("", "3D pane: zoom", shortcut="Wheel (3D)"),
)


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


def build_menus(window: QtWidgets.QMainWindow, entries: Iterable[Entry]) -> tuple[
        dict[str, QtWidgets.QMenu], dict[str, QtGui.QAction]]:
    """The menus and tool bars of ``entries`` in ``window``.

    Returns
    -------
    (menus, actions)
        The menus by path and the actions by :attr:`Entry.name` (those that have one).
    """
    bar = window.menuBar()
    menus: dict[str, QtWidgets.QMenu] = {}
    toolbars: dict[str, QtWidgets.QToolBar] = {}
    groups: dict[str, QtGui.QActionGroup] = {}
    actions: dict[str, QtGui.QAction] = {}

    def menu_of(path: str) -> QtWidgets.QMenu:
        found = menus.get(path)
        if found is None:
            parent, _, title = path.rpartition("|")
            found = bar.addMenu(title) if not parent else menu_of(parent).addMenu(title)
            menus[path] = found
        return found

    for entry in entries:
        if not entry.menu:
            continue
        menu = menu_of(entry.menu)
        if entry.text == "-":
            menu.addSeparator()
            continue
        if not entry.text:
            continue
        action = menu.addAction(entry.text)
        if entry.slot is None:
            action.setEnabled(False)
        else:
            action.triggered.connect(entry.slot)
        action.setCheckable(entry.checkable)
        if entry.checkable:
            action.setChecked(entry.checked)
        if entry.shortcut:
            action.setShortcut(QtGui.QKeySequence(entry.shortcut))
        if entry.group:
            group = groups.get(entry.group)
            if group is None:
                group = groups[entry.group] = QtGui.QActionGroup(window)
            group.addAction(action)
        if entry.toolbar:
            toolbar = toolbars.get(entry.toolbar)
            if toolbar is None:
                toolbar = toolbars[entry.toolbar] = window.addToolBar(entry.toolbar)
                toolbar.setObjectName(entry.toolbar.lower().replace(" ", "_"))
            toolbar.addAction(action)
        if entry.name:
            actions[entry.name] = action
    return menus, actions


def shortcut_rows(entries: Sequence[Entry]) -> list[tuple[str, str]]:
    """(input, what it does) for every entry with a shortcut, the menu's first and then the
    views' own inputs: the table of Help > Keyboard and mouse."""
    rows: list[tuple[str, str]] = []
    for entry in entries:
        if not entry.shortcut or entry.text in ("", "-"):
            continue
        if entry.menu:
            where = " > ".join(_plain(part) for part in entry.menu.split("|"))
            keys = QtGui.QKeySequence(entry.shortcut).toString(QtGui.QKeySequence.SequenceFormat.NativeText)
            rows.append((keys, f"{_plain(entry.text)} ({where})"))
    rows.extend((entry.shortcut, entry.text) for entry in entries if not entry.menu)
    return rows
