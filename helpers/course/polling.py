"""Kernel-client polling that cannot miss a reply that has already arrived.

Seen here, about once in 40 notebooks (always in a cell that opens widgets, whatever the
ipykernel version): the kernel had answered and gone idle, yet the client's asyncio poll on
its socket never woke, and nbclient waited for the cell's whole time limit before the
interrupt it sent on timeout let it read the reply that had been there all along. The
wrapper here asks the socket directly (a zero-timeout poll) at least once a second, so a
reply missed by the event loop is read within a second instead.
"""

from __future__ import annotations

import time
from queue import Empty

SLICE = 1.0  # seconds between direct looks at the socket


def _sliced(get_msg):
    async def get_msg_sliced(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return await get_msg(timeout=0)  # a synchronous look: sees what is queued
            except Empty:
                pass
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Empty
            try:
                return await get_msg(timeout=SLICE if left is None else min(SLICE, left))
            except Empty:
                pass

    return get_msg_sliced


def slice_polls(kc) -> None:
    """Make ``kc``'s shell, iopub and control channels poll in slices (an async kernel client)."""
    for name in ("shell_channel", "iopub_channel", "control_channel"):
        channel = getattr(kc, name, None)
        if channel is not None and not getattr(channel.get_msg, "_sliced", False):
            channel.get_msg = _sliced(channel.get_msg)
            channel.get_msg._sliced = True


def patch_nbclient() -> None:
    """Every nbclient ``NotebookClient`` (nbgrader's Execute and Validate included) polls in slices.

    Called from nbgrader_config.py and by :mod:`helpers.course.execute`; calling it twice is harmless.
    """
    from nbclient import NotebookClient

    original = NotebookClient.async_start_new_kernel_client
    if getattr(original, "_sliced", False):
        return

    async def start_new_kernel_client(self):
        kc = await original(self)
        slice_polls(kc)
        return kc

    start_new_kernel_client._sliced = True
    NotebookClient.async_start_new_kernel_client = start_new_kernel_client
