"""One worker of a :class:`helpers.distributed.Pool`: reads jobs on stdin, answers on stdout.

Each line is a job (JSON): import the job's file of functions, join a fresh ``gloo`` process
group on the job's store (with a timeout, so a hung collective ends), call the entry point,
save what it returns, leave the group, and answer ``{"status": "ok"}`` or the error.
The checks judge on the CPU with ``gloo`` on every machine, so that their numbers do not
depend on the hardware. Ends when stdin closes (the notebook went away).

Introduced in lesson 07.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import sys
import traceback
import warnings
from pathlib import Path


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so that pickling what it defines works within the job
    spec.loader.exec_module(module)
    return module


def run_job(request: dict) -> dict:
    import torch
    import torch.distributed as dist

    job, rank = Path(request["job"]), request["rank"]
    timeout = datetime.timedelta(seconds=request["timeout"])
    store = dist.TCPStore("127.0.0.1", request["port"], is_master=False, timeout=timeout)
    answer = _load(job / "answer.py", f"answer_{job.name}")
    module_name, _, func = request["entry"].partition(":")
    entry = getattr(importlib.import_module(module_name), func)
    args = torch.load(job / "args.pt", weights_only=False)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=request["world_size"], timeout=timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = entry(answer, rank, request["world_size"], *args, **request.get("kwargs", {}))
        torch.save(value, job / f"result{rank}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return {"status": "ok"}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    for line in sys.stdin:
        try:
            reply = run_job(json.loads(line))
        except BaseException as err:  # noqa: B036  (the job failed: say why, stay alive for the next)
            if isinstance(err, SystemExit) and err.code not in (None, 0):
                raise
            text = str(err).strip().splitlines()[0] if str(err).strip() else ""
            reply = {"status": "error", "error": f"{type(err).__name__}: {text}"[:500],
                     "trace": traceback.format_exc()[-2000:]}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
