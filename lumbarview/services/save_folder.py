"""Where a save dialog starts (screenshots, the 3D pane's image, exports, session files): the
last folder the user saved to, else the user's documents folder; never the folder the program
was started from, and never inside the dataset on screen."""

from __future__ import annotations

from pathlib import Path


def documents_folder() -> Path:
    """The user's documents folder (its home when the platform names none that exists)."""
    import platformdirs

    documents = Path(platformdirs.user_documents_dir())
    return documents if documents.is_dir() else Path.home()


def start_folder(last_folder: str | Path | None, dataset_path: str | Path | None = None,
                 documents: Path | None = None) -> Path:
    """The folder a save dialog starts in.

    Parameters
    ----------
    last_folder : str or Path, optional
        The folder the user last saved to; used when it still exists and is not inside the
        dataset.
    dataset_path : str or Path, optional
        The dataset on screen: a save never starts inside it.
    documents : Path, optional
        The documents folder (default: :func:`documents_folder`).
    """
    fallback = documents if documents is not None else documents_folder()
    if not last_folder:
        return fallback
    last = Path(last_folder).expanduser()
    if not last.is_absolute() or not last.is_dir():
        return fallback
    if dataset_path:
        dataset = Path(dataset_path).expanduser().resolve()
        resolved = last.resolve()
        if resolved == dataset or resolved.is_relative_to(dataset):
            return fallback
    return last
