"""Use case: browse the cases of a dataset in a viewer, one at a time.

A case is loaded for viewing off the GUI thread (:func:`~lumbarview.services.case_loader.load_case`),
the next one is decoded ahead while the reader looks at this one, and the decoded cases stay in
memory within a byte budget (:class:`~lumbarview.services.case_loader.CaseMemory`): the case on
screen and the one decoded ahead always stay. The work runs through a ``submit(job, done,
failed)`` function the caller provides (the viewer's delivers the results on its GUI thread);
nothing here needs Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.types import Series
from lumbarview.model.session import LAYOUTS, Session
from lumbarview.services.case_loader import CaseMemory, CaseView, load_case

#: ``submit(job, done, failed)``: run ``job()`` in the background, then ``done(result)`` or
#: ``failed(error)`` where the caller wants its results.
Submit = Callable[[Callable[[], Any], Callable[[Any], None], Callable[[BaseException], None]], Any]


def neighbour_case(dataset: Dataset | None, case: Case | None, delta: int) -> Case | None:
    """The case ``delta`` steps from ``case`` in the dataset's order, wrapping around (counted
    from the first case when ``case`` is not in the dataset); None when there are no cases."""
    cases = dataset.cases if dataset is not None else []
    if not cases:
        return None
    i = cases.index(case) if case in cases else 0
    return cases[(i + delta) % len(cases)]


def find_series(case: Case | None, uid: str | None) -> Series | None:
    """The series of ``case`` with the uid ``uid``, or None."""
    if case is None or not uid:
        return None
    return next((s for s in case.series if s.uid == uid), None)


class CaseBrowser:
    """Loads the cases of ``session``'s dataset for viewing (see the module).

    Parameters
    ----------
    session : Session
        The viewer's session: its dataset and the case on screen.
    submit : Submit
        Runs the loading in the background.
    max_bytes : int
        The budget for decoded cases kept in memory.
    """

    def __init__(self, session: Session, submit: Submit, max_bytes: int) -> None:
        self.session = session
        self.memory = CaseMemory(max_bytes)
        self._submit = submit

    def load(self, case: Case, done: Callable[[CaseView], None], failed: Callable[[BaseException], None]) -> None:
        """Load ``case`` for viewing in the background; ``done(case_view)`` or ``failed(error)``."""
        self._submit(lambda: load_case(case, visible=LAYOUTS.get(self.session.layout)), done, failed)

    def shown(self, case: Case) -> None:
        """``case`` is on screen: keep it, release the least recently shown beyond the budget,
        and decode the next case ahead."""
        self.memory.touch(case)
        self.memory.trim(keep=(case,))
        self.prefetch(1)

    def prefetch(self, delta: int) -> None:
        """Decode the case ``delta`` steps from the one on screen in the background."""
        dataset, current = self.session.dataset, self.session.case
        if dataset is None or len(dataset.cases) < 2 or current not in dataset.cases:
            return
        ahead = neighbour_case(dataset, current, delta)
        if ahead is None:
            return

        def kept(_view: CaseView) -> None:
            self.memory.touch(ahead)
            self.memory.trim(keep=(self.session.case, ahead))

        self._submit(lambda: load_case(ahead, visible=LAYOUTS.get(self.session.layout)), kept, lambda _error: None)

    def show_series(self, view_name: str, uid: str, failed: Callable[[Series, BaseException], None]) -> None:
        """Show the series ``uid`` of the case on screen in the view ``view_name``, once it is
        decoded in the background; ``failed(series, error)`` when it cannot be decoded."""
        series = find_series(self.session.case, uid)
        if series is None:
            return

        def decode() -> None:
            for stack in series.stacks:
                stack.pixels()

        self._submit(decode, lambda _none: self.session.views[view_name].set_series(series),
                     lambda error: failed(series, error))
