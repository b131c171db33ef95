"""The start screen: open a folder, the Studies window (the study database and PACS), one of the
demo's six layouts (each with a line on what it shows), or a recent dataset."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6 import QtCore, QtWidgets


class StartPage(QtWidgets.QWidget):
    def __init__(self, choose_folder: Callable[[], None], open_demo: Callable[[str], None],
                 open_path: Callable[[str], None], demos: Mapping[str, str],
                 show_studies: Callable[[], object] | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addStretch(1)
        title = QtWidgets.QLabel("<h2>lumbarview</h2><p>Open a lumbar MRI dataset folder, a DICOMDIR or an "
                                 "image file, or drop one on this window.</p>")
        title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        choices: list[tuple[str, Callable[[], object]]] = [("Open folder…", choose_folder)]
        if show_studies is not None:
            choices.append(("Studies (database, PACS)…", show_studies))
        for text, slot in choices:
            button = QtWidgets.QPushButton(text)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addWidget(QtWidgets.QLabel("The demo: one phantom spine in six dataset layouts",
                                          alignment=QtCore.Qt.AlignmentFlag.AlignCenter))
        demo_box = QtWidgets.QGridLayout()
        self.demo_buttons: dict[str, QtWidgets.QPushButton] = {}
        for row, (name, text) in enumerate(demos.items()):
            demo = QtWidgets.QPushButton(name)
            demo.setToolTip(text)
            demo.clicked.connect(lambda _=False, n=name: open_demo(n))
            self.demo_buttons[name] = demo
            demo_box.addWidget(demo, row, 0)
            label = QtWidgets.QLabel(text)
            label.setWordWrap(True)
            demo_box.addWidget(label, row, 1)
        demo_box.setColumnStretch(1, 1)
        centred = QtWidgets.QHBoxLayout()
        centred.addStretch(1)
        demo_widget = QtWidgets.QWidget()
        demo_widget.setLayout(demo_box)
        demo_widget.setMaximumWidth(760)
        centred.addWidget(demo_widget, 4)
        centred.addStretch(1)
        layout.addLayout(centred)
        self.recent_list = QtWidgets.QListWidget()
        self.recent_list.setMaximumWidth(700)
        self.recent_list.itemActivated.connect(lambda item: open_path(item.text()))
        recent_box = QtWidgets.QHBoxLayout()
        recent_box.addStretch(1)
        recent_box.addWidget(self.recent_list)
        recent_box.addStretch(1)
        layout.addWidget(QtWidgets.QLabel("Recent", alignment=QtCore.Qt.AlignmentFlag.AlignCenter))
        layout.addLayout(recent_box)
        layout.addStretch(2)

    def set_recent(self, paths: list[str]) -> None:
        self.recent_list.clear()
        self.recent_list.addItems(paths)
