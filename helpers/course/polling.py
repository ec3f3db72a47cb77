"""Kernel-client polling that cannot miss a reply that has already arrived.

Seen here in cells that display an Output widget, whatever the ipykernel version: the kernel
had answered and gone idle, yet the client's asyncio poll on the shell socket never woke, and
nbclient waited for the cell's whole time limit before its poll's final look read the reply
that had been there all along. In those cells nbclient itself sends on the shell socket (it
syncs the Output widget's state back to the kernel) while it is polling that socket for the
execute reply; a reply that arrives then can go unannounced. Traced in lesson 02: 120 s lost
after the cell that builds DropoutExplorer whenever nbgrader autograded three notebooks.
The wrapper here asks the socket directly (a zero-timeout poll) at least once a second, so a
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

    Both entry points are patched: the coroutine, and the synchronous ``start_new_kernel_client``
    that nbconvert's ExecutePreprocessor (so nbgrader) calls. nbclient builds the latter once, at
    class creation, from the original coroutine, so patching the coroutine alone never reached
    nbgrader: there the missed reply cost a whole cell limit (lesson 02's autograde of three
    notebooks waited 120 s after the cell that builds DropoutExplorer, whose Output widget makes
    nbclient send on the shell socket while it polls it).

    Called from nbgrader_config.py and by :mod:`helpers.course.execute`; calling it twice is harmless.
    """
    from nbclient import NotebookClient
    from nbclient.util import run_sync

    original = NotebookClient.async_start_new_kernel_client
    if getattr(original, "_sliced", False):
        return

    async def start_new_kernel_client(self):
        kc = await original(self)
        slice_polls(kc)
        return kc

    start_new_kernel_client._sliced = True
    NotebookClient.async_start_new_kernel_client = start_new_kernel_client
    NotebookClient.start_new_kernel_client = run_sync(start_new_kernel_client)
