"""The grading kernel: an IPython kernel started inside the sandbox, with the guard installed.

The worker's kernel manager launches ``python -m helpers.grading.kernel -f CONNECTION_FILE``
with ``COURSE_GRADER_PLAN`` naming a JSON plan (written by :mod:`helpers.grading.worker`):
what to hide, the kernel's home folder, the slot uid, the limits, the lesson's import
aliases and the guard's name and token. The plan file is deleted once read.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

PLAN_ENV = "COURSE_GRADER_PLAN"


def _connection_file(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "-f" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("-f="):
            return arg[3:]
    raise SystemExit("usage: python -m helpers.grading.kernel -f CONNECTION_FILE")


def _prepare(plan: dict, connection: str) -> str:
    """Isolate, drop privileges, apply limits; return the connection file the kernel reads."""
    from helpers.grading import sandbox

    with open(connection) as f:
        info = f.read()
    # The lesson's own files (nbgrader copied them next to the notebook) go to the home.
    shutil.copytree(os.getcwd(), plan["home"], ignore=shutil.ignore_patterns("*.ipynb"), dirs_exist_ok=True)
    if plan.get("isolate"):
        sandbox.isolate(plan)
    uid = plan.get("uid")
    copy = os.path.join(plan["home"], ".kernel.json")
    with open(copy, "w") as f:
        f.write(info)
    if uid is not None:
        os.chown(copy, uid, uid)
        sandbox.set_limits(plan["limits"], uid)
        sandbox.drop_privileges(uid)
    else:
        sandbox.set_limits(plan["limits"], None)
    if plan.get("isolate"):
        sandbox._drop_capabilities()
    sandbox.die_with_parent()
    os.chdir(plan["home"])
    for key in [k for k in os.environ if k.startswith("COURSE_GRADER") or k.startswith("JUPYTER_RUNTIME")]:
        del os.environ[key]
    # Processes the notebook starts (lesson 07's workers, torchrun) read the installed bytecode and write
    # none: a cache prefix in the fresh home would hide the installed one, so that every worker compiled
    # torch from source again (4 times slower grading of lesson 07).
    os.environ.pop("PYTHONPYCACHEPREFIX", None)
    os.environ.update({"HOME": plan["home"], "TMPDIR": plan["home"], "MPLCONFIGDIR": os.path.join(plan["home"], ".mpl"),
                       "PYTHONDONTWRITEBYTECODE": "1", "USER": "student",
                       "LOGNAME": "student", "TORCHINDUCTOR_CACHE_DIR": os.path.join(plan["home"], ".inductor")})
    # A kernel forked from the factory inherits its cached temporary folder (/tmp), which the
    # kernel may not write: torch's first optimizer then fails to set up its compile cache there,
    # and every later import of torch._dynamo fails with it.
    tempfile.tempdir = plan["home"]
    # Raw writes to the process's stdout/stderr (not the notebook's) go nowhere.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    return copy


def main() -> None:
    connection = _connection_file(sys.argv[1:])
    with open(os.environ[PLAN_ENV]) as f:
        plan = json.load(f)
    os.unlink(os.environ[PLAN_ENV])
    copy = _prepare(plan, connection)

    from ipykernel.kernelapp import IPKernelApp

    from helpers.grading import guard

    app = IPKernelApp.instance()
    app.initialize(["-f", copy, "--HistoryManager.hist_file=:memory:", "--IPKernelApp.quiet=True"])
    os.unlink(copy)
    guard.install(app.shell, plan["aliases"], plan["guard_name"], plan["guard_token"])
    app.start()


if __name__ == "__main__":
    main()
