"""Execute instructor notebooks in place, so their stored outputs are the ones the tests compare.

Runs in full mode and offline by default, records no timestamps (so re-running an
unchanged notebook changes nothing but what really changed), and stops at the
first error with the cell that raised it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from helpers.course.lessons import ReleaseError, read_source
from helpers.course.polling import patch_nbclient
from helpers.course.release import strip_run_metadata


def execute(path: Path, *, fast: bool = False, timeout: int = 600) -> float:
    """Run ``path`` top to bottom in its own folder and save it with outputs; returns seconds taken."""
    patch_nbclient()
    nb = read_source(path)
    saved = {k: os.environ.get(k) for k in ("COURSE_FAST", "COURSE_OFFLINE", "MPLBACKEND")}
    os.environ.update({"COURSE_FAST": "1" if fast else "0", "COURSE_OFFLINE": "1"})
    os.environ.pop("MPLBACKEND", None)  # the inline backend, so figures are stored
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as err:
        raise ReleaseError(f"{path} failed while executing:\n{str(err)[-2000:]}") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    nbformat.write(strip_run_metadata(nb), path)
    return time.perf_counter() - start
