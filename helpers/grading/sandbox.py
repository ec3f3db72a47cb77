"""Fence in a grading kernel: hide the course's secrets, drop privileges, cap resources.

Runs inside the kernel process before IPython starts (see :mod:`helpers.grading.kernel`).
On Linux, as root, the kernel gets a private mount namespace in which the solutions,
the gradebooks, the other submissions and the grading work folders are covered by empty
tmpfs mounts, and then runs as an unprivileged uid of its own (one per worker slot),
so it can neither undo those mounts nor write the course's files, and its process cap
(RLIMIT_NPROC) really applies. As an ordinary user, a user namespace does the same
where the system allows one. Where neither works, :func:`probe` says so and grading
goes on with the resource limits only.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 1, 38, 24
UID_BASE, UID_RANGE = 61000, 1000  # as root, each worker slot's kernels run as a uid of this range
_claimed: dict[int, int] = {}  # uid -> the descriptor holding its lock (released when the process ends)

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(OSError):
    """The kernel could not be isolated; the message says which step failed."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SandboxError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _enter_namespace() -> None:
    """A private mount namespace (inside a user namespace when not root)."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    else:
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def _cover(path: str) -> None:
    """Hide a folder under an empty tmpfs, or a file under /dev/null."""
    if os.path.isdir(path):
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    elif os.path.exists(path):
        _mount("/dev/null", path, None, MS_BIND)


def _rebind(fd: int, target: str) -> None:
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        os.makedirs(target, exist_ok=True)
    else:  # a file is bound onto an empty file
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)


def _closed_ancestors(needed: list[str]) -> set[str]:
    """Folders on the way to ``needed`` that other users may not enter (such as /root, mode 700)."""
    closed = set()
    for path in needed:
        parts = Path(path).resolve().parts
        for depth in range(1, len(parts) - 1):
            ancestor = str(Path(*parts[:depth + 1]))
            if os.stat(ancestor).st_mode & stat.S_IXOTH == 0:
                closed.add(ancestor)
                break
    return closed


def _mask(folders: set[str], needed: list[str]) -> None:
    """Cover each folder with an empty tmpfs (mode 755) that holds only the needed paths inside it,
    bound back in: the kernel reaches its interpreter and the course, and nothing else there
    (the grader's home, with its Jupyter connection files, say)."""
    for folder in sorted(folders):
        if not os.path.isdir(folder):
            continue
        inside = [p for p in needed if os.path.realpath(p).startswith(folder.rstrip("/") + "/")]
        if any(os.path.realpath(p) == os.path.realpath(folder) for p in needed):
            # the folder is needed itself (a course in a folder others may not enter, made by
            # mktemp -d, say): everything in it is bound back into the open cover
            inside += [os.path.join(folder, e) for e in os.listdir(folder)]
        keep = [p for p in dict.fromkeys(inside) if not os.path.islink(p)
                and (os.path.isdir(p) or os.path.isfile(p))]
        fds = {p: os.open(os.path.realpath(p), os.O_RDONLY) for p in keep}
        _cover(folder)
        for path, fd in fds.items():
            _rebind(fd, os.path.realpath(path))
            os.close(fd)


def _holds(folder: str, paths: list[str]) -> bool:
    """Whether one of ``paths`` is ``folder`` or lies inside it."""
    top = os.path.realpath(folder).rstrip("/") + "/"
    return any((os.path.realpath(p).rstrip("/") + "/").startswith(top) for p in paths)


def _drop_capabilities() -> None:
    """No capability survives, and none can be regained through exec."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def isolate(plan: dict) -> None:
    """Hide ``plan['hide']``, make ``plan['readonly']`` read-only, keep ``plan['home']`` usable.

    Raises:
        SandboxError: when the system refuses a step (no namespaces for this user).
    """
    _enter_namespace()
    home_fd = os.open(plan["home"], os.O_RDONLY)  # opened in the new namespace, before it is covered
    needed = plan.get("needed", [])
    hide = plan.get("hide", [])
    # A folder to hide that holds something the kernel needs (the course checked out under /tmp,
    # say) is masked: covered, with the needed paths bound back in. Masks go first, so that what
    # is hidden inside a needed path (the course's solutions) is covered after it is bound back.
    masks = set(plan.get("mask", [])) | {h for h in hide if os.path.isdir(h) and _holds(h, needed)}
    if plan.get("uid") is not None:
        masks |= _closed_ancestors(needed)
    _mask(masks, needed)
    for path in hide:
        if path not in masks and os.path.exists(path):  # not already hidden under another one
            _cover(path)
    _rebind(home_fd, plan["home_mount"])
    os.close(home_fd)
    for path in plan.get("readonly", []):
        if os.path.isdir(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def set_limits(limits: dict, uid: int | None) -> None:
    """Memory (data segment), processes, file size, open files; no core files."""
    def cap(which, value):
        if value:
            resource.setrlimit(which, (int(value), int(value)))
    cap(resource.RLIMIT_DATA, limits.get("memory"))
    cap(resource.RLIMIT_FSIZE, limits.get("fsize"))
    cap(resource.RLIMIT_NOFILE, limits.get("nofile"))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.get("nproc"):
        # RLIMIT_NPROC counts every task of the real uid: ours alone when running as a
        # slot uid, the instructor's whole session otherwise, so allow for what is there.
        running = 0 if uid is not None else count_tasks(os.getuid())
        cap(resource.RLIMIT_NPROC, running + int(limits["nproc"]))


def claim_uids(count: int) -> list[int]:
    """Reserve ``count`` slot uids for this process, so that two grading runs at once never share
    one (each run kills whatever its uids leave behind)."""
    import fcntl

    folder = Path(tempfile.gettempdir(), "course-grader-uids")
    folder.mkdir(mode=0o700, exist_ok=True)
    uids = []
    for uid in range(UID_BASE, UID_BASE + UID_RANGE):
        if len(uids) == count:
            break
        if uid in _claimed:
            continue
        fd = os.open(folder / f"{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _claimed[uid] = fd
        uids.append(uid)
    if len(uids) < count:
        raise SandboxError(errno.EBUSY, f"no free grading uid in {UID_BASE}..{UID_BASE + UID_RANGE - 1}")
    return uids


def release_uids(uids: list[int]) -> None:
    for uid in uids:
        fd = _claimed.pop(uid, None)
        if fd is not None:
            os.close(fd)


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def die_with_parent() -> None:
    """Linux: this process is killed when its parent dies (no orphaned kernels after a crash)."""
    if sys.platform.startswith("linux"):
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def count_tasks(uid: int) -> int:
    """How many threads and processes ``uid`` runs now (what RLIMIT_NPROC counts)."""
    total = 0
    for pid in _pids_of(uid):
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return total


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def kill_uid(uid: int, rounds: int = 20) -> int:
    """SIGKILL every process of ``uid`` (a slot uid: a fork bomb's leftovers); returns how many."""
    if uid in (0, os.getuid()):
        raise ValueError("refusing to kill the processes of the grader's own user")
    killed = 0
    for _ in range(rounds):
        pids = _pids_of(uid)
        if not pids:
            break
        killed += _signal(pids, signal.SIGKILL)
        time.sleep(0.05)
    return killed


def _session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _running(pid: int) -> bool:
    """Not a zombie (a killed process its parent has not reaped: nothing left to kill)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def strays(kernel: int, uid: int | None) -> list[int]:
    """The live processes the kernel left or started besides itself (a fork bomb's copies of it):
    the other processes of the slot ``uid`` when there is one, else the other members of the
    kernel's session (it is a session leader)."""
    if uid in (0, os.getuid()):
        uid = None  # never the grader's own processes: the session alone says what is the kernel's
    if uid is not None:
        found = [p for p in _pids_of(uid) if p != kernel]
    else:
        found = [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != kernel
                 and _session_of(int(e)) == kernel]
    return [p for p in found if _running(p)]


def freeze(pids: list[int]) -> None:
    """SIGSTOP each process: a stopped fork bomb holds its share of the process cap, so the kernel's
    own next fork fails and its cell ends, but it no longer takes the CPU from the kernel."""
    _signal(pids, signal.SIGSTOP)


def _signal(pids: list[int], sig: int) -> int:
    """Send ``sig`` to each process that is still there; returns to how many it went."""
    sent = 0
    for pid in pids:
        try:
            os.kill(pid, sig)
            sent += 1
        except OSError:
            pass
    return sent


def kill_strays(kernel: int, uid: int | None, wait_s: float = 10.0) -> int:
    """SIGKILL every process the kernel left behind (see :func:`strays`), keeping the kernel.

    They are stopped first, so that a fork bomb cannot outrun the killing. It returns once none is
    left running (killed ones are zombies or gone), or after ``wait_s``: on a loaded machine a
    process with a large memory (torch) takes a while to end, and the next cell must not find it
    half dead (a worker pool that looks alive and then loses a rank in the middle of a job).
    Returns how many were killed.
    """
    killed, deadline = 0, time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = strays(kernel, uid)
        if not found:
            break
        freeze(found)
        killed += _signal(found, signal.SIGKILL)
        time.sleep(0.02)
    return killed


def available() -> str:
    """'' when grading kernels can be isolated on this machine, else why not."""
    with tempfile.TemporaryDirectory(prefix="course-probe-") as tmp:
        os.chmod(tmp, 0o755)
        secret = Path(tmp, "hidden", "secret")
        secret.parent.mkdir()
        secret.write_text("secret")
        home = Path(tmp, "home")
        home.mkdir()
        uids = claim_uids(1) if os.getuid() == 0 else [None]
        try:
            return probe({"home": str(home), "home_mount": str(home), "hide": [str(secret.parent)],
                          "secrets": [str(secret)], "readonly": [], "needed": [sys.base_prefix, sys.prefix],
                          "uid": uids[0]})
        finally:
            release_uids([u for u in uids if u is not None])


def probe(plan: dict) -> str:
    """Try the isolation in a throwaway child; '' when it works, else why it does not.

    ``plan['secrets']`` lists files that must not be visible inside.
    """
    code = ("import json,sys; from helpers.grading import sandbox; p=json.loads(sys.argv[1]);"
            "sandbox.isolate(p); uid=p.get('uid');"
            "uid is not None and sandbox.drop_privileges(uid); sandbox._drop_capabilities();"
            "bad=[s for s in p['secrets'] if __import__('os').path.exists(s)];"
            "print('visible: '+', '.join(bad) if bad else 'ok')")
    try:
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(plan)], capture_output=True,
                              text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        return "the isolation probe did not finish"
    if proc.stdout.strip() == "ok":
        return ""
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"
