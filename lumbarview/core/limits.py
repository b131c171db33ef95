"""Resource budgets checked *before* anything is allocated or parsed.

Every reader asks for its budget here, so that a file that claims a huge size (a 413-byte
MetaImage header claiming 1000 x 1000 x 1800 voxels, a PNG or zlib bomb, a 10,000-deep JSON)
fails at once with a message naming the limit and how to raise it, instead of eating memory.

The volume budget follows the memory the process may use (a quarter of it, at least 1 GiB: the
machine's, or an address-space cap or a container's limit when lower); every limit
can be raised or lowered through an environment variable, read each time a budget is asked for,
so a test or a user can change it without restarting anything:

=================================  ===========================================  ==============
variable                           what                                         default
=================================  ===========================================  ==============
``LUMBARVIEW_MAX_VOLUME_MB``       bytes of one decoded volume / series          1/4 of memory
``LUMBARVIEW_MAX_VOXELS``          voxels of one volume / series                 2,000,000,000
``LUMBARVIEW_MAX_IMAGE_PIXELS``    pixels of one 2D image (PNG mask, frame)      100,000,000
``LUMBARVIEW_MAX_STL_TRIANGLES``   triangles of one STL mesh                     20,000,000
``LUMBARVIEW_MAX_TEXT_MB``         size of one CSV / JSON / XML file             256
``LUMBARVIEW_MAX_CSV_FIELD``       characters in one CSV cell                    65,536
``LUMBARVIEW_MAX_TABLE_CELLS``     cells of one CSV / TSV table                  5,000,000
``LUMBARVIEW_MAX_JSON_DEPTH``      nesting depth of a JSON document              64
``LUMBARVIEW_MAX_INT_DIGITS``      digits of one integer in a text file          30
=================================  ===========================================  ==============
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lumbarview.core.errors import LoadError

_MIB = 1024 * 1024


class ResourceLimitError(LoadError):
    """A file asks for more than a budget allows. ``limit`` names the environment variable
    that raises the budget."""

    def __init__(self, path: str | Path | None, problem: str, variable: str, current: str) -> None:
        self.variable = variable
        super().__init__(path, problem,
                         f"If the file is genuine, raise the limit (now {current}) by setting "
                         f"{variable} and open it again")


def _machine_memory_bytes() -> int:
    """The memory this process may use: the machine's, or less when the process runs under an
    address-space cap (``ulimit -v``) or a cgroup memory limit (a container), so that a budget
    refuses first where the cap would have ended in "not enough memory"."""
    memory = 8 * 1024 * _MIB
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            memory = int(pages * size)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if 0 < soft != resource.RLIM_INFINITY:
            memory = min(memory, int(soft))
    except (ImportError, ValueError, OSError):
        pass
    for cgroup in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(cgroup, encoding="ascii") as fh:  # a kernel file, never a FIFO
                text = fh.read(64).strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < memory:
            memory = int(text)
    return memory


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip().replace("_", "")
    if not text:
        return default
    try:
        value = int(float(text)) if len(text) < 30 else default
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class Limits:
    """The budgets in force (see the module docstring for the variables)."""

    max_volume_bytes: int
    max_voxels: int
    max_image_pixels: int
    max_stl_triangles: int
    max_text_bytes: int
    max_csv_field_chars: int
    max_json_depth: int
    max_int_digits: int
    max_table_cells: int = 5_000_000

    # -- checks: each raises ResourceLimitError naming its variable ------------------------
    def check_volume(self, path: str | Path | None, voxels: int, bytes_per_voxel: int, what: str = "volume") -> None:
        """A volume (or DICOM series) of ``voxels`` voxels of ``bytes_per_voxel`` bytes."""
        if voxels > self.max_voxels:
            raise ResourceLimitError(path, f"the {what} claims {voxels:,} voxels, more than the "
                                     f"{self.max_voxels:,} allowed", "LUMBARVIEW_MAX_VOXELS", f"{self.max_voxels:,}")
        nbytes = voxels * max(1, bytes_per_voxel)
        if nbytes > self.max_volume_bytes:
            raise ResourceLimitError(
                path, f"the {what} would take {nbytes / _MIB:,.0f} MB of memory, more than the "
                f"{self.max_volume_bytes / _MIB:,.0f} MB budget for one volume",
                "LUMBARVIEW_MAX_VOLUME_MB (in MB)", f"{self.max_volume_bytes // _MIB} MB")

    def check_image(self, path: str | Path | None, pixels: int, what: str = "image") -> None:
        if pixels > self.max_image_pixels:
            raise ResourceLimitError(path, f"the {what} claims {pixels:,} pixels, more than the "
                                     f"{self.max_image_pixels:,} allowed", "LUMBARVIEW_MAX_IMAGE_PIXELS",
                                     f"{self.max_image_pixels:,}")

    def check_plane(self, path: str | Path | None, rows: int, cols: int, bytes_per_pixel: int,
                    what: str = "reformatted view") -> None:
        """A 2D plane of ``rows`` x ``cols`` pixels computed from a volume (a reformat, a view
        plane restored from a session) and the ``bytes_per_pixel`` its working memory takes:
        within the image budget in pixels and the volume budget in bytes."""
        self.check_image(path, rows * cols, what)
        self.check_volume(path, rows * cols, bytes_per_pixel, what)

    def check_triangles(self, path: str | Path | None, triangles: int) -> None:
        if triangles > self.max_stl_triangles:
            raise ResourceLimitError(path, f"the mesh claims {triangles:,} triangles, more than the "
                                     f"{self.max_stl_triangles:,} allowed", "LUMBARVIEW_MAX_STL_TRIANGLES",
                                     f"{self.max_stl_triangles:,}")

    def check_text_file(self, path: str | Path, size_bytes: int | None = None) -> None:
        """A text file (CSV, JSON, XML) no larger than the text budget."""
        if size_bytes is None:
            size_bytes = os.stat(path).st_size
        if size_bytes > self.max_text_bytes:
            raise ResourceLimitError(path, f"the file is {size_bytes / _MIB:,.0f} MB, more than the "
                                     f"{self.max_text_bytes / _MIB:,.0f} MB allowed for a text file",
                                     "LUMBARVIEW_MAX_TEXT_MB (in MB)", f"{self.max_text_bytes // _MIB} MB")

    def check_table_cells(self, path: str | Path, cells: int) -> None:
        """A CSV/TSV table of ``cells`` cells (checked while it is read)."""
        if cells > self.max_table_cells:
            raise ResourceLimitError(path, f"the table has more than {self.max_table_cells:,} cells",
                                     "LUMBARVIEW_MAX_TABLE_CELLS", f"{self.max_table_cells:,}")


_VARIABLES = ("LUMBARVIEW_MAX_VOLUME_MB", "LUMBARVIEW_MAX_VOXELS", "LUMBARVIEW_MAX_IMAGE_PIXELS",
              "LUMBARVIEW_MAX_STL_TRIANGLES", "LUMBARVIEW_MAX_TEXT_MB", "LUMBARVIEW_MAX_CSV_FIELD",
              "LUMBARVIEW_MAX_JSON_DEPTH", "LUMBARVIEW_MAX_INT_DIGITS", "LUMBARVIEW_MAX_TABLE_CELLS")
_last: tuple[tuple[str | None, ...], Limits] | None = None


def limits() -> Limits:
    """The budgets in force now: the environment is read at each call (testable, and a changed
    variable takes effect at once); the budgets are parsed again only when one of them changed
    (header checks call this thousands of times while a big dataset opens)."""
    global _last
    environ = os.environ
    key = tuple(environ.get(name) for name in _VARIABLES)
    last = _last
    if last is not None and last[0] == key:
        return last[1]
    memory = _machine_memory_bytes()
    default_volume = max(1024 * _MIB, memory // 4)
    value = Limits(
        max_volume_bytes=_env_int("LUMBARVIEW_MAX_VOLUME_MB", default_volume // _MIB) * _MIB,
        max_voxels=_env_int("LUMBARVIEW_MAX_VOXELS", 2_000_000_000),
        max_image_pixels=_env_int("LUMBARVIEW_MAX_IMAGE_PIXELS", 100_000_000),
        max_stl_triangles=_env_int("LUMBARVIEW_MAX_STL_TRIANGLES", 20_000_000),
        max_text_bytes=_env_int("LUMBARVIEW_MAX_TEXT_MB", 256) * _MIB,
        max_csv_field_chars=_env_int("LUMBARVIEW_MAX_CSV_FIELD", 65_536),
        max_json_depth=_env_int("LUMBARVIEW_MAX_JSON_DEPTH", 64),
        max_int_digits=_env_int("LUMBARVIEW_MAX_INT_DIGITS", 30),
        max_table_cells=_env_int("LUMBARVIEW_MAX_TABLE_CELLS", 5_000_000),
    )
    _last = (key, value)
    return value
