"""helpers.course.polling: a reply the event loop failed to announce is still read within a second."""

import asyncio
import time
from queue import Empty

import pytest

from helpers.course import polling


class LostWakeup:
    """A channel whose waiting poll never wakes for the message already queued (the bug seen
    with nbclient), while a zero-timeout look finds it."""

    def __init__(self, queued):
        self.queued = list(queued)

    async def get_msg(self, timeout=None):
        if timeout == 0 and self.queued:
            return self.queued.pop(0)
        await asyncio.sleep(timeout if timeout is not None else 3600)
        raise Empty


class Client:
    def __init__(self, queued):
        self.shell_channel, self.iopub_channel, self.control_channel = LostWakeup(queued), LostWakeup([]), None


def test_a_queued_reply_is_read_although_the_poll_never_woke():
    kc = Client([{"msg": "execute_reply"}])
    polling.slice_polls(kc)
    polling.slice_polls(kc)  # twice: still one wrapper
    started = time.monotonic()
    assert asyncio.run(kc.shell_channel.get_msg(timeout=60)) == {"msg": "execute_reply"}
    assert time.monotonic() - started < 1


def test_no_message_still_times_out_on_time():
    kc = Client([])
    polling.slice_polls(kc)
    started = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(kc.iopub_channel.get_msg(timeout=1.5))
    assert 1.4 < time.monotonic() - started < 3


def test_patch_nbclient_is_idempotent():
    from nbclient import NotebookClient

    polling.patch_nbclient()
    first = NotebookClient.async_start_new_kernel_client
    polling.patch_nbclient()
    assert NotebookClient.async_start_new_kernel_client is first


def test_a_reply_arriving_during_the_wait_is_read_at_the_next_look():
    kc = Client([])
    polling.slice_polls(kc)

    async def scenario():
        asyncio.get_running_loop().call_later(0.3, kc.shell_channel.queued.append, {"msg": "late"})
        return await kc.shell_channel.get_msg(timeout=60)

    started = time.monotonic()
    assert asyncio.run(scenario()) == {"msg": "late"}
    assert 0.3 <= time.monotonic() - started < polling.SLICE + 1


def test_nbgraders_executor_gets_the_sliced_channels():
    """nbconvert's ExecutePreprocessor (what nbgrader's Execute runs) starts its kernel client through
    nbclient's synchronous ``start_new_kernel_client``: the patch must reach that path too."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    polling.patch_nbclient()
    seen = []

    class Recording(ExecutePreprocessor):
        def preprocess_cell(self, cell, resources, index):
            seen.extend(getattr(getattr(self.kc, name).get_msg, "_sliced", False)
                        for name in ("shell_channel", "iopub_channel", "control_channel"))
            return super().preprocess_cell(cell, resources, index)

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    Recording(timeout=60, kernel_name="python3").preprocess(nb, {})
    assert seen == [True, True, True]
    assert nb.cells[0].outputs[0]["data"]["text/plain"] == "2"
