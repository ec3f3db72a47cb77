"""Instant checks for lesson 07, distributed training with DDP.

The answers run where they belong, on two processes (a :class:`helpers.distributed.Pool` of
``gloo`` workers on the CPU); Exercises 1 and 3 have a visible case on three processes as well (a
case's optional last item), so that code written for two (``p.grad /= 2``, ``chunk(2)``) is caught.
Nothing here holds an answer: the judges compare what the
learner's code does with what PyTorch itself gives (``DistributedDataParallel``'s own
gradients, a plain single-process SGD step on the whole batch), or check properties
(shards disjoint and covering, a file complete when every rank returns, a resumed run equal
to an uninterrupted one). The ``_worker_*`` functions run inside the worker processes.

Introduced in lesson 07.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from collections.abc import Sequence

import torch
from torch import nn

from helpers import config, distributed
from helpers.checks.core import Exercise, Mismatch, NotAttempted, describe, values_close

WORLD = 2
_MODULE = "helpers.checks.lesson07"
_HANG = ("a rank waited in a collective that another rank never called (or left): every rank must make the same "
         "collective calls in the same order, so never put all_reduce, broadcast or barrier inside `if rank == 0`.")


def tiny_model(seed: int = 70) -> nn.Sequential:
    """A 6 -> 8 -> 3 MLP, small enough to compare weights exactly."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def tiny_batch(n: int = 8, seed: int = 71) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random examples: (n, 6) inputs and (n,) labels in 0..2."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _grads(model: nn.Module) -> list:
    return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]


def _source_of(answer, name: str):
    """The answer as something :func:`helpers.distributed.module_source` can send; fail clearly otherwise."""
    if isinstance(answer, str):
        return answer
    if not callable(answer):
        raise Mismatch(f"{name} should be a function, got {describe(answer)}.")
    try:
        text = distributed.module_source(answer)[len(distributed.HEADER):]
    except TypeError as err:
        raise Mismatch(str(err)) from None
    own = getattr(answer, "__name__", name)
    return text if own == name else f"{text}\n\n{name} = {own}\n"  # the workers call it by its lesson name


def _run(answers: Sequence, entry: str, args=(), *, kwargs=None, timeout: float | None = None, nproc: int = WORLD):
    timeout = config.collective_timeout() if timeout is None else timeout  # see there: 30 s unless set
    straggler = min(timeout, STRAGGLER_S)
    results = distributed.run_on_ranks(list(answers), f"{_MODULE}:{entry}", args, nproc=nproc, timeout=timeout,
                                       kwargs=kwargs, straggler_s=straggler)
    for r in results:
        if r.status == "error" and r.error.startswith("NotImplementedError"):
            raise NotAttempted()
    for r in results:
        if r.status == "error" and "AttributeError: module 'answer_" in r.error:
            raise Mismatch(f"the file sent to the workers lacks a function: {r.error.split(': ', 1)[1]}.")
    if all(r.status == "died" and "did not start" in r.error for r in results):
        raise RuntimeError(f"the worker processes could not start ({results[0].error}). This is not a mistake in "
                           "your code: run the cell again, or restart the kernel.")
    bad = [r for r in results if r.status != "ok"]
    if not bad:
        return [r.value for r in results]
    stuck = ("connection", "timeout", "timed out", "closed")  # gloo's words for a peer that is gone or late
    own = [r for r in bad if r.status == "error" and not any(w in r.error.lower() for w in stuck)]
    if own:  # a rank's own error comes first: the others then only waited for it
        raise Mismatch(_raised(own[0]))
    died = [r.rank for r in results if r.status == "died"]
    if died:
        raise Mismatch(f"the process of rank {died[0]} ended in the middle of the job (it exited, crashed or was "
                       "killed) while the other ranks waited for it in a collective: never end a process inside "
                       "the function (exit(), os._exit()); return from it, on every rank.")
    returned = [r.rank for r in results if r.status == "ok"]
    if returned:
        waiting = bad[0].rank
        raise Mismatch(f"rank {returned[0]} had returned, and rank {waiting} was still inside a collective "
                       f"{straggler:g} s later: {_HANG}")
    raise Mismatch(f"no rank finished within {timeout:g} s, so {_HANG}")


STRAGGLER_S = 5.0  # how long the other ranks may go on after one returned, before they count as stuck


def _raised(r) -> str:
    """What rank ``r``'s own error says, with the cause named for the errors that have one."""
    if r.error.startswith("SystemExit"):
        return (f"on rank {r.rank}, your code called exit() (SystemExit): return from the function instead; a "
                "rank that leaves makes the others wait for it.")
    text = f"on rank {r.rank}, your code raised {r.error}".rstrip(". :") + "."
    if r.error.startswith("NameError"):
        name = r.error.split("'")[1] if r.error.count("'") >= 2 else "a name"
        return (f"{text} The worker processes get your functions' source code, with what they use from the "
                "notebook when it can travel as code (imports, other functions, plain constants), but not "
                f"other objects (tensors, models, data sets): create {name} inside the function, or import it "
                "there.")
    return text


# --------------------------------------------------------------- 1: all-reduce by hand


_COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "broadcast", "reduce", "reduce_scatter",
                "all_to_all", "all_reduce_coalesced")


def _recording_collectives(model):
    """Patch torch.distributed's collectives to note what each call was given, as "weights" (a parameter's
    storage), "grads" (a gradient's) or "other" (a copy, a new tensor); returns (calls, undo)."""
    import torch.distributed as dist

    calls: list[tuple[str, str]] = []
    weights = {p.data_ptr() for p in model.parameters()}
    grads = {p.grad.data_ptr() for p in model.parameters() if p.grad is not None}
    originals = {name: getattr(dist, name) for name in _COLLECTIVES if hasattr(dist, name)}

    def kind(t) -> str:
        if isinstance(t, (list, tuple)):
            kinds = {kind(u) for u in t}
            return "weights" if "weights" in kinds else "grads" if "grads" in kinds else "other"
        ptr = t.data_ptr() if isinstance(t, torch.Tensor) else None
        return "weights" if ptr in weights else "grads" if ptr in grads else "other"

    def recorder(name, real):
        def call(*args, **kwargs):
            first = args[0] if args else next(iter(kwargs.values()), None)
            last = args[1] if name.startswith("all_gather") and len(args) > 1 else first  # what is sent
            calls.append((name, kind(last)))
            return real(*args, **kwargs)
        return call

    for name, real in originals.items():
        setattr(dist, name, recorder(name, real))

    def undo():
        for name, real in originals.items():
            setattr(dist, name, real)
    return calls, undo


def _worker_allreduce(answer, rank, world_size, seed, n):
    model = tiny_model(seed)
    x, y = tiny_batch(n, seed + 1)
    xs, ys = x.chunk(world_size)[rank], y.chunk(world_size)[rank]  # this rank's shard
    mine = copy.deepcopy(model)
    nn.functional.cross_entropy(mine(xs), ys).backward()
    local = _grads(mine)
    before = _flat(mine)
    ddp = nn.parallel.DistributedDataParallel(copy.deepcopy(model))
    nn.functional.cross_entropy(ddp(xs), ys).backward()
    reference = _grads(ddp.module)  # DDP's gradients, taken before the answer runs: it cannot change them
    calls, undo = _recording_collectives(mine)
    try:
        returned = answer.average_gradients(mine)
    finally:
        undo()
    return {"mine": _grads(mine), "local": local, "ddp": reference,
            "weights_changed": not torch.equal(before, _flat(mine)), "calls": calls,
            "returned": None if returned is None else describe(returned)}


def _same(a: list, b: list, rtol=1e-5, atol=1e-6) -> bool:
    return all(x is not None and y is not None and values_close(x, y, rtol=rtol, atol=atol)
               for x, y in zip(a, b, strict=True))


def _world(case: tuple, size: int) -> int:
    """A case's number of processes: its extra last item, else ``WORLD`` (2). The visible cases include
    one on 3 processes, so that code written for two (``p.grad /= 2``, ``chunk(2)``) is caught."""
    return int(case[size]) if len(case) > size else WORLD


def _on(world: int, judge):
    """Run ``judge``; on a case with other than 2 processes, say so in its message."""
    try:
        judge()
    except Mismatch as err:
        if world == WORLD:
            raise
        advice = (" Code written for two processes (chunk(2), a division by 2) breaks here: ask "
                  "dist.get_world_size() and dist.get_rank().") if "IndexError" in str(err) else ""
        raise Mismatch(f"on {world} processes, {err}{advice}") from None


def _unchanged(o: dict) -> str:
    """Why every rank still holds its own gradient, from what the answer's collectives were given."""
    kinds = {k for _name, k in o["calls"]}
    if "weights" in kinds and "grads" not in kinds:
        return ("the gradients are unchanged, and the collectives were given the weights (p or p.data): "
                "average each parameter's gradient, p.grad, not the parameter itself.")
    if o["returned"] is not None:
        return (f"the gradients are unchanged: the function returned {o['returned']}, which nobody uses. "
                "Change each p.grad in place; the optimizer reads the gradients from there.")
    if kinds and kinds <= {"other"}:
        return ("the gradients are unchanged: the collectives combined copies (p.grad.clone(), a new tensor), "
                "and p.grad still holds this rank's own gradient. Reduce p.grad itself in place, or copy the "
                "result back into it.")
    return ("the gradients are unchanged: each rank still has only its own shard's gradient. Combine them across "
            "the ranks with a collective.")


def _name_partial_averages(out: list, total: list) -> None:
    """Name the answers that average some of the way: divide without combining, MAX, only some parameters,
    gradients zeroed."""
    world = len(out)
    if all(_same(o["mine"], [g / world for g in o["local"]]) for o in out):
        raise Mismatch(f"each rank divided its own gradient by {world} without combining them first: all-reduce "
                       "(sum) the gradients across the ranks, then divide by the world size.")
    largest = [torch.stack([o["local"][i] for o in out]).amax(0) for i in range(len(total))]
    if all(_same(o["mine"], largest) for o in out):
        raise Mismatch("every rank has the element-wise maximum of the gradients (op=ReduceOp.MAX): sum them "
                       "(ReduceOp.SUM, the default) and divide by the world size.")
    if all(all(torch.count_nonzero(g) == 0 for g in o["mine"]) for o in out):
        raise Mismatch("every gradient is zero after your function: average the gradients, don't reset them "
                       "(zero_grad belongs at the start of the next step).")
    done = [i for i in range(len(total)) if all(_same(o["mine"][i:i + 1], o["ddp"][i:i + 1]) for o in out)]
    kept = [i for i in range(len(total)) if all(_same(o["mine"][i:i + 1], o["local"][i:i + 1]) for o in out)]
    if done and kept and len(done) + len(kept) == len(total):
        raise Mismatch(f"{len(done)} of the model's {len(total)} parameters {'has' if len(done) == 1 else 'have'} "
                       f"the averaged gradient, and {len(kept)} still {'has' if len(kept) == 1 else 'have'} this "
                       "rank's own: loop over every parameter in model.parameters().")


def _judge_allreduce(fn, case):
    world = _world(case, 2)
    _on(world, lambda: _judge_allreduce_on(fn, case[0], case[1], world))


def _judge_allreduce_on(fn, seed, n, world):
    out = _run([_source_of(fn, "average_gradients")], "_worker_allreduce", (seed, n), nproc=world)
    if any(o["weights_changed"] for o in out):
        raise Mismatch("the weights changed: average each parameter's .grad, not the parameter itself "
                       "(the optimizer's step() comes later).")
    if any(g is None for o in out for g in o["mine"]):
        raise Mismatch("a parameter's .grad is None after your function: reduce the gradient tensor in place, "
                       "don't replace it with None.")
    total = [sum(o["local"][i] for o in out) for i in range(len(out[0]["local"]))]
    wrong = [r for r, o in enumerate(out) if not _same(o["mine"], o["ddp"])]
    if not wrong:
        return
    if all(_same(o["mine"], o["local"]) for o in out):
        raise Mismatch(_unchanged(out[0]))
    _name_partial_averages(out, total)
    if all(_same(o["mine"], total) for o in out):
        raise Mismatch(f"every rank has the sum of the {len(out)} gradients: DDP averages, so divide by the "
                       "world size.")
    if len(out) != WORLD and all(_same(o["mine"], [g / WORLD for g in total]) for o in out):
        raise Mismatch(f"the sum was divided by {WORLD}, not by the number of processes: divide by "
                       "dist.get_world_size(), so that the same code runs on any number of processes.")
    if all(_same(o["mine"], out[0]["local"]) for o in out):
        raise Mismatch("every rank has rank 0's gradient: broadcast copies one rank's tensor, but every rank's "
                       "gradient must count.")
    if len(wrong) < len(out):
        raise Mismatch(f"the gradients agree with DDP on some ranks but not on rank {wrong[0]}: every rank must "
                       "end with the same averaged gradient.")
    raise Mismatch("the gradients differ from DistributedDataParallel's: each parameter's gradient should be "
                   "the mean over the ranks of their own gradients.")


ex1 = Exercise(
    1, "average_gradients", points=2, judge=_judge_allreduce, cases=lambda: [(70, 8), (74, 9, 3)],
    hints=[
        "The gradient of the whole batch is the mean of the shards' gradients. Each rank has computed the gradient "
        "of its own shard; after your function every rank must hold the same mean, for every parameter.",
        "torch.distributed has a collective that sums a tensor across all ranks in place, and one that tells you "
        "how many ranks there are. Parameters are in model.parameters(), gradients in p.grad.",
        "for every p in model.parameters(): dist.______(p.grad, op=dist.ReduceOp.___), then divide p.grad by "
        "dist.__________() in place",
    ],
)


# --------------------------------------------------------------- 2: DistributedSampler shards


def _as_indices(got, what: str) -> list[int]:
    if isinstance(got, torch.Tensor):
        got = got.tolist()
    if not isinstance(got, (list, tuple)) and not hasattr(got, "__iter__"):
        raise Mismatch(f"{what} should be a list of indices, got {describe(got)}.")
    out = []
    for i in got:
        if isinstance(i, torch.Tensor) and i.numel() == 1:
            i = i.item()
        if isinstance(i, bool) or not float(i).is_integer():
            raise Mismatch(f"{what} should hold integer indices, got {describe(i)}.")
        out.append(int(i))
    return out


def _shards(fn, n, world_size, epoch):
    from helpers.checks.core import call_answer

    got = call_answer(fn, n, world_size, epoch, name="epoch_shards")
    if got is None:
        raise Mismatch("epoch_shards returned None: did you forget `return`?")
    if isinstance(got, dict):
        raise Mismatch(f"epoch_shards returned a dict; return a list with one list of indices per rank, in rank "
                       f"order (shards[r] is rank r's): [shard of rank 0, ..., shard of rank {world_size - 1}].")
    if getattr(got, "ndim", None) == 2 and hasattr(got, "tolist"):  # a tensor or array, one row per rank
        got = got.tolist()
    if isinstance(got, (list, tuple)) and got and all(isinstance(i, int) and not isinstance(i, bool) for i in got):
        raise Mismatch(f"epoch_shards returned one flat list of {len(got)} indices: return one list per rank "
                       f"({world_size} lists, shards[r] being rank r's), not a single rank's shard or all of "
                       "them joined.")
    if not isinstance(got, (list, tuple)) or len(got) != world_size:
        size = len(got) if isinstance(got, (list, tuple)) else None
        raise Mismatch(f"epoch_shards should return one list of indices per rank ({world_size} lists), got "
                       f"{describe(got)}" + (f" of length {size}." if size is not None else "."))
    return [_as_indices(s, f"the shard of rank {r}") for r, s in enumerate(got)]


def _observe_shards(fn, case):
    """The right answer's shards in the case's epoch, and in the epochs next to it (for naming an off-by-one
    set_epoch)."""
    n, world_size, epoch = case
    return {"shards": _shards(fn, n, world_size, epoch), "next": _shards(fn, n, world_size, epoch + 1),
            "previous": _shards(fn, n, world_size, epoch - 1) if epoch > 0 else None}


def _judge_shards(fn, case, expected):
    n, world_size, epoch = case
    try:
        shards = _shards(fn, n, world_size, epoch)
    except Mismatch as err:
        if "process group has not been initialized" not in str(err):
            raise
        raise Mismatch("the sampler (or dist.get_rank / get_world_size) looked for a process group, and there is "
                       "none in this one process: give each rank's sampler num_replicas=world_size and rank=r, so "
                       "it needs none.") from None
    per_rank = math.ceil(n / world_size)
    sizes = [len(s) for s in shards]
    if world_size > 1 and n > per_rank and all(s == shards[0] for s in shards):
        raise Mismatch("every rank got the same shard: give each rank's sampler its own rank= (0, 1, ...), so "
                       "that the ranks read different parts.")
    if all(size == n for size in sizes) and n > per_rank:
        raise Mismatch("every rank got the whole data set: tell the sampler how many replicas there are and "
                       "which one this is, so each rank gets its own part.")
    if any(size != per_rank for size in sizes):
        if all(size == n // world_size for size in sizes):
            lost = n % world_size
            lost_are = f"{lost} examples are" if lost > 1 else "1 example is"
            raise Mismatch(f"each rank got {n // world_size} indices, so {lost_are} never used: keep the default "
                           "drop_last=False, which pads instead.")
        raise Mismatch(f"the ranks got {sizes} indices; with {n} examples on {world_size} ranks each should get "
                       f"{per_rank} (the sampler pads by repeating a few indices so that all ranks are equal).")
    flat = [i for s in shards for i in s]
    if any(i < 0 or i >= n for i in flat):
        raise Mismatch(f"an index is outside 0..{n - 1}.")
    if set(flat) != set(range(n)):
        raise Mismatch(f"{n - len(set(flat))} examples are in no shard: together the shards must cover the data "
                       "set (the ranks' samplers must shuffle alike: the same seed on every rank, each its own "
                       "rank=).")
    if len(flat) - len(set(flat)) != world_size * per_rank - n:
        raise Mismatch("the shards overlap: an example appears on two ranks (only the padding may repeat).")
    in_order = list(range(n)) + list(range(world_size * per_rank - n))  # no shuffle: 0, 1, 2, ... then padding
    if n > world_size and all(s == in_order[r::world_size] for r, s in enumerate(shards)):
        raise Mismatch("every shard is in increasing order, so the data is not shuffled: use shuffle=True "
                       "(the sampler's default).")
    again = _shards(fn, n, world_size, epoch)
    if again != shards:
        raise Mismatch("two calls for the same epoch gave different shards: the order must depend only on the "
                       "seed and the epoch (don't draw your own random numbers).")
    if _shards(fn, n, world_size, epoch + 1) == shards:
        raise Mismatch(f"epoch {epoch + 1} has the same order as epoch {epoch}: give the sampler "
                       "the epoch (set_epoch) before reading the indices, or every epoch repeats the same order.")
    if shards != expected["shards"]:
        for name, offset in (("next", "+ 1"), ("previous", "- 1")):
            if expected[name] is not None and shards == expected[name]:
                raise Mismatch(f"these are the shards of epoch {epoch + 1 if name == 'next' else epoch - 1}, not "
                               f"of epoch {epoch}: call set_epoch(epoch), not set_epoch(epoch {offset}), and keep "
                               "seed=0 (the order is drawn from seed + epoch).")
        raise Mismatch(f"the shards are equal, cover the data and change with the epoch, but they are not the ones "
                       f"DistributedSampler gives in epoch {epoch}: use DistributedSampler with shuffle=True and "
                       "seed=0 (another seed, or a shuffle of your own, gives another order), and set_epoch(epoch).")


ex2 = Exercise(
    2, "epoch_shards", points=2, judge=_judge_shards, observe=_observe_shards, cases=lambda: [(12, 2, 0), (10, 3, 4)],
    hints=[
        "A DistributedSampler gives each rank its own part of the indices. It does not need a process group "
        "when you tell it the world size and the rank, so one process can look at every rank's part.",
        "DistributedSampler(dataset, num_replicas=..., rank=..., shuffle=True, seed=0); its set_epoch(epoch) "
        "changes the order; list(sampler) gives the indices. Any object with a length works as the dataset, "
        "for example range(n).",
        "shards = []  then for each rank r in range(world_size): make a sampler for rank r, call "
        "sampler.set_epoch(____), append list(sampler); finally return shards",
    ],
)


# --------------------------------------------------------------- 3: one DDP step


def _worker_step(answer, rank, world_size, seed, n, lr):
    model = tiny_model(seed)
    x, y = tiny_batch(n, seed + 1)
    seen: list[torch.Tensor] = []
    model[0].register_forward_pre_hook(  # what the model trained on (a forward under no_grad only evaluates)
        lambda _m, inp: seen.append(inp[0].detach().clone()) if torch.is_grad_enabled() else None)
    wrapped = []
    original = nn.parallel.DistributedDataParallel.forward

    def forward(self, *a, **k):
        wrapped.append(True)
        return original(self, *a, **k)

    steps = []  # each optimizer step the answer took: (class name, lr, weight_decay)

    def note_step(opt, _args, _kwargs):
        group = opt.param_groups[0]
        steps.append((type(opt).__name__, float(group.get("lr", float("nan"))),
                      float(group.get("weight_decay", 0.0) or 0.0)))

    nn.parallel.DistributedDataParallel.forward = forward
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    hook = register_optimizer_step_pre_hook(note_step)
    try:
        answer.ddp_step(model, x, y, lr)
    finally:
        nn.parallel.DistributedDataParallel.forward = original
        hook.remove()
    return {"weights": _flat(model), "seen": torch.cat(seen) if seen else torch.empty(0, 6), "ddp": bool(wrapped),
            "steps": steps}


def _sgd_step(model, x, y, lr, loss=nn.functional.cross_entropy):
    """One plain SGD step of a copy of ``model`` on (x, y), in this one process: the single-process answer."""
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    loss(model(x), y).backward()
    opt.step()
    return _flat(model)


# Losses a beginner takes for cross-entropy: judged by the step each gives (for naming the mistake only).
_OTHER_LOSSES = {
    "nll_loss on the logits (it expects log-probabilities: cross_entropy = log_softmax + nll_loss)":
        nn.functional.nll_loss,
    "mse_loss against one-hot labels": lambda out, y: nn.functional.mse_loss(
        out, nn.functional.one_hot(y, out.shape[1]).to(out.dtype)),
}


def _name_wrong_step(out: list, model, x, y, lr) -> None:
    """Why the common step differs from the single-process one: the optimizer, its settings, the loss or the
    step's size."""
    steps = [s for o in out for s in o["steps"]]
    names = {name for name, _lr, _wd in steps}
    if names and names != {"SGD"}:
        raise Mismatch(f"the step was taken by {', '.join(sorted(names))}: take it with torch.optim.SGD, as "
                       "asked, so that it can be compared with one plain SGD step.")
    if any(not math.isclose(step_lr, lr, rel_tol=1e-6) for _name, step_lr, _wd in steps):
        got = next(step_lr for _name, step_lr, _wd in steps if not math.isclose(step_lr, lr, rel_tol=1e-6))
        raise Mismatch(f"the optimizer's learning rate was {got:g}, not the lr given ({lr:g}): DDP already "
                       "averages the gradients, so the single-process lr is the right one.")
    if any(wd for _name, _lr, wd in steps):
        raise Mismatch("the optimizer has weight_decay, which adds to the step: use plain "
                       "torch.optim.SGD(parameters, lr=lr).")
    for k in sorted({len(out), len(x) // len(out), len(x)} - {1}):
        if values_close(out[0]["weights"], _sgd_step(model, x, y, lr * k), rtol=1e-4, atol=1e-6):
            raise Mismatch(f"the step is {k} times too large: use the mean loss of the shard "
                           "(cross_entropy's default), which DDP then averages over the ranks.")
        if values_close(out[0]["weights"], _sgd_step(model, x, y, lr / k), rtol=1e-4, atol=1e-6):
            extra = (f" Don't divide the loss by the world size ({len(out)}): DDP's all-reduce already averages "
                     "the gradients." if k == len(out) else "")
            raise Mismatch(f"the step is {k} times too small.{extra}")
    for what, loss in _OTHER_LOSSES.items():
        if values_close(out[0]["weights"], _sgd_step(model, x, y, lr, loss), rtol=1e-4, atol=1e-6):
            raise Mismatch(f"the step is the one of {what}: use F.cross_entropy on the model's outputs.")


def _judge_step(fn, case):
    world = _world(case, 3)
    _on(world, lambda: _judge_step_on(fn, *case[:3], world))


def _judge_step_on(fn, seed, n, lr, world):
    out = _run([_source_of(fn, "ddp_step")], "_worker_step", (seed, n, lr), nproc=world)
    model, (x, y) = tiny_model(seed), tiny_batch(n, seed + 1)
    full = _sgd_step(model, x, y, lr)
    start = _flat(model)
    if all(values_close(o["weights"], start) for o in out):
        raise Mismatch("the weights did not change: take one optimizer step (zero_grad, forward, loss, backward, "
                       "step) on the model.")
    sizes = [len(o["seen"]) for o in out]
    if any(size == n for size in sizes):
        raise Mismatch(f"a rank ran the model on the whole batch of {n}: each of the {len(out)} ranks should run "
                       f"its own {n // len(out)} examples, so that together they cover the batch once.")
    if any(size != n // len(out) for size in sizes):
        raise Mismatch(f"the ranks ran the model on {sizes} examples: each should take an equal share of the "
                       f"{n} (one forward pass on {n // len(out)} examples).")
    rows = torch.cat([o["seen"] for o in out])
    used = torch.cdist(rows, x).argmin(dim=1).tolist()
    if sorted(used) != list(range(n)):
        raise Mismatch("some examples were used by two ranks and others by none: the shards of the batch must be "
                       "disjoint and together cover it (take the rank-th of world_size equal parts).")
    if not all(o["ddp"] for o in out):
        raise Mismatch("the model was not run through DistributedDataParallel, so each rank stepped on its own "
                       "shard's gradient and the ranks now disagree: wrap the model in DDP and call the wrapper.")
    if not all(values_close(out[0]["weights"], o["weights"], rtol=1e-5, atol=1e-6) for o in out[1:]):
        raise Mismatch("the ranks ended with different weights: every rank must make the same step.")
    if not values_close(out[0]["weights"], full, rtol=1e-4, atol=1e-6):
        _name_wrong_step(out, model, x, y, lr)
        raise Mismatch("the weights differ from one single-process SGD step on the whole batch: one step of "
                       "torch.optim.SGD with the given lr and the mean cross-entropy of this rank's shard.")


ex3 = Exercise(
    3, "ddp_step", points=3, judge=_judge_step, cases=lambda: [(72, 8, 0.5), (75, 9, 0.5, 3)],
    hints=[
        "Each rank computes the loss of its own part of the batch, and DDP averages the gradients during "
        "backward(); the step then equals one step on the whole batch, on every rank.",
        "dist.get_rank() and dist.get_world_size() say which part is this rank's (tensor.chunk splits a batch "
        "into equal parts); DistributedDataParallel (DDP) wraps the model; torch.optim.SGD and F.cross_entropy "
        "do the rest.",
        "ddp = ___(____); opt = torch.optim.SGD(____.parameters(), lr=__); x = images.chunk(____)[____]; "
        "y likewise; then zero_grad, loss of ddp(x), backward, step",
    ],
)


# --------------------------------------------------------------- 4: rank-0 checkpoint


def _worker_checkpoint(answer, rank, world_size, seed, epoch, folder):
    import torch.distributed as dist

    path = os.path.join(folder, f"ckpt-{seed}.pt")
    model = tiny_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = tiny_batch(8, seed + 1)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()  # now the optimizer has momentum buffers worth saving
    saves, loads, barriers = [], [], []
    real_save, real_load, real_barrier = torch.save, torch.load, dist.barrier

    def on_disk(f) -> bool:  # a path or an open file; not the buffers torch's object collectives use
        return isinstance(f, (str, os.PathLike)) or hasattr(f, "name")

    def save(obj, f, *a, **k):
        if not on_disk(f):
            return real_save(obj, f, *a, **k)
        if rank == 0:
            time.sleep(0.3)  # a slow disk: a rank that does not wait sees no file yet
        saves.append(str(f))
        return real_save(obj, f, *a, **k)

    def load(f, *a, **k):
        if on_disk(f):
            loads.append("map_location" in k or len(a) >= 1)
        return real_load(f, *a, **k)

    def barrier(*a, **k):
        barriers.append(True)
        return real_barrier(*a, **k)

    torch.save, torch.load, dist.barrier = save, load, barrier
    try:
        answer.save_checkpoint(model, opt, epoch, path)
        visible = os.path.exists(path)
        complete = False
        weights_only = True
        if visible:
            try:
                real_load(path, weights_only=True)
                complete = True
            except Exception as err:
                weights_only = "weights_only" not in str(err) and "Unsupported" not in str(err)
                complete = not weights_only
        fresh = tiny_model(seed + 1)
        fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
        got_epoch, load_error = None, ""
        if visible:
            try:
                got_epoch = answer.load_checkpoint(path, fresh, fresh_opt)
            except NotImplementedError:
                raise
            except Exception as err:  # judged after the properties of the saved file
                load_error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    finally:
        torch.save, torch.load, dist.barrier = real_save, real_load, real_barrier
    buffers = [fresh_opt.state.get(p, {}).get("momentum_buffer") for p in fresh.parameters()] if visible else []
    want = [opt.state[p]["momentum_buffer"] for p in model.parameters()]
    return {"saves": saves, "visible": visible, "complete": complete, "weights_only": weights_only,
            "map_location": all(loads) and bool(loads), "loaded": bool(loads), "epoch": got_epoch,
            "weights": values_close(_flat(fresh), _flat(model)) if visible else False,
            "momentum": visible and _same(buffers, want), "barriers": len(barriers),
            "load_error": load_error}


def _judge_checkpoint(answer, case):
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Mismatch(f"check (save_checkpoint, load_checkpoint) together, got {describe(answer)}.")
    seed, epoch = case
    funcs = [_source_of(answer[0], "save_checkpoint"), _source_of(answer[1], "load_checkpoint")]
    with tempfile.TemporaryDirectory(prefix="course-ckpt-") as folder:
        out = _run(funcs, "_worker_checkpoint", (seed, epoch, folder))
    if not any(o["saves"] for o in out):
        raise Mismatch("no rank called torch.save: rank 0 should write the checkpoint.")
    if out[0]["saves"] == [] or any(o["saves"] for o in out[1:]):
        raise Mismatch("only rank 0 writes the checkpoint: the ranks hold the same weights, and several "
                       "processes writing one file at once can leave it corrupt.")
    if not out[0]["weights_only"]:
        raise Mismatch("the checkpoint holds pickled objects: save the state_dict() of the model and of the "
                       "optimizer (and the epoch), not the objects themselves.")
    late = [r for r, o in enumerate(out) if not o["visible"] or not o["complete"]]
    if late:
        raise Mismatch(f"rank {late[0]} went on before rank 0 had finished writing: after the save, every rank "
                       "must wait for the others (a barrier that all ranks call).")
    failed = next((o["load_error"] for o in out if o["load_error"]), "")
    if failed:
        raise Mismatch(f"calling load_checkpoint(...) raised {failed}".rstrip(".") + ".")
    if not any(o["loaded"] for o in out):
        raise Mismatch("load_checkpoint never called torch.load.")
    if not all(o["map_location"] for o in out if o["loaded"]):
        raise Mismatch("load with map_location: a checkpoint written by rank 0 from cuda:0 would otherwise be "
                       "loaded onto cuda:0 by every rank.")
    missed = [r for r, o in enumerate(out) if not o["loaded"] and not o["weights"]]
    if missed:  # a rank that neither read the file nor received its contents (rank 0 reading and broadcasting is fine)
        raise Mismatch(f"on rank {missed[0]} the model was not restored: every rank must load the checkpoint "
                       "into its own model (not only rank 0), each onto its own device.")
    if any(o["epoch"] != epoch for o in out):
        rank, got = next((r, o["epoch"]) for r, o in enumerate(out) if o["epoch"] != epoch)
        raise Mismatch(f"load_checkpoint returned {got!r} on rank {rank}, not the epoch that was saved ({epoch}): "
                       "return it on every rank.")
    if not all(o["weights"] for o in out):
        raise Mismatch("after load_checkpoint the model's weights are not the saved ones: load the model's "
                       "state_dict into the model.")
    if not all(o["momentum"] for o in out):
        raise Mismatch("the optimizer's state (SGD's momentum) was not restored: save and load the optimizer's "
                       "state_dict as well, or a resumed run takes different steps.")


ex4 = Exercise(
    4, "(save_checkpoint, load_checkpoint)", points=3, judge=_judge_checkpoint, cases=lambda: [(74, 3)],
    needs_callable=False,
    hints=[
        "All ranks hold the same weights, so one of them writes the file. The others must not read it before it "
        "is complete, so everyone waits at the end of the save. Loading happens on every rank, each onto its own "
        "device.",
        "dist.get_rank(), torch.save of a dict of model.state_dict(), optimizer.state_dict() and the epoch; "
        "dist.barrier(); torch.load(path, map_location=...); load_state_dict on both.",
        "save: if dist.get_rank() == _: torch.save({...}, path)  then, outside the if: dist._______().  "
        "load: ckpt = torch.load(path, map_location=_____); model.load_state_dict(ckpt[...]); "
        "optimizer likewise; return ckpt[...]",
    ],
)


# --------------------------------------------------------------- 5: resume after a killed worker

RESUME_BATCH = 4  # the batch size Exercise 5 asks for


def _worker_resume(answer, rank, world_size, seed, epochs, path, kill_after):
    """One run of the answer's train_resumable; the last rank dies right after the answer's ``kill_after``-th
    snapshot (counted, so that either way of numbering the snapshots is killed after the same epoch)."""
    from torch.utils.data import DistributedSampler, TensorDataset

    saved, epochs_set, samplers, batches, steps = [], [], [], [], []
    original_save = answer.save_checkpoint
    started = [f"{path}.started{r}" for r in range(world_size)]  # a rank's first forward: past its start-up

    def save_then_maybe_die(model, optimizer, epoch, p):
        if not saved:  # no snapshot before every rank has begun: one that came first would find it and resume
            _wait_for(started, RESUME_START_S)
        original_save(model, optimizer, epoch, p)
        saved.append(int(epoch))
        if rank == world_size - 1 and len(saved) == kill_after:
            os._exit(1)  # the worker is killed right after a snapshot

    answer.save_checkpoint = save_then_maybe_die
    original_set_epoch, original_iter = DistributedSampler.set_epoch, DistributedSampler.__iter__

    def set_epoch(self, epoch):
        epochs_set.append(int(epoch))
        return original_set_epoch(self, epoch)

    def iterate(self):
        samplers.append({"shuffle": bool(self.shuffle), "seed": int(self.seed), "replicas": int(self.num_replicas)})
        return original_iter(self)

    DistributedSampler.set_epoch, DistributedSampler.__iter__ = set_epoch, iterate
    try:
        model = tiny_model(seed)
        model[0].register_forward_pre_hook(  # the training batches (a forward under no_grad only evaluates)
            lambda _m, inp: batches.append(int(inp[0].shape[0])) if torch.is_grad_enabled() else None)
        model[0].register_forward_pre_hook(lambda *_: open(started[rank], "a").close())  # noqa: SIM115
        opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        opt.register_step_post_hook(lambda *_: steps.append(1))
        x, y = tiny_batch(16, seed + 1)
        answer.train_resumable(model, opt, TensorDataset(x, y), epochs, path)
    finally:
        DistributedSampler.set_epoch, DistributedSampler.__iter__ = original_set_epoch, original_iter
    return {"weights": _flat(model), "start": _flat(tiny_model(seed)), "saved": saved, "set_epoch": epochs_set,
            "samplers": samplers, "batches": batches, "steps": len(steps)}


RESUME_START_S = 5.0  # how long rank 0's first snapshot waits for the other ranks to begin training


def _wait_for(files: list, seconds: float) -> None:
    """Until every file exists, or ``seconds`` have passed. An answer without DDP (no collective before its
    first snapshot) would otherwise race: a rank that starts late finds rank 0's first snapshot and resumes
    from it, and the check would name a hang instead of the missing DDP."""
    deadline = time.monotonic() + seconds
    while not all(os.path.exists(f) for f in files) and time.monotonic() < deadline:
        time.sleep(0.01)


def _resume_funcs(answer) -> list:
    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        raise Mismatch("check (train_resumable, save_checkpoint, load_checkpoint) together, got "
                       f"{describe(answer)}.")
    names = ("train_resumable", "save_checkpoint", "load_checkpoint")
    return [_source_of(a, n) for a, n in zip(answer, names, strict=True)]


def _clean_run(funcs, seed, epochs) -> list:
    with tempfile.TemporaryDirectory(prefix="course-resume-") as folder:
        return _run(funcs, "_worker_resume", (seed, epochs, os.path.join(folder, "clean.pt"), -1))


def _observe_resume(answer, case):
    """What a run that is never killed ends with (rank 0's weights): the lesson's recipe, shipped for the
    visible case, so that a run that resumes consistently but trains otherwise is told apart."""
    seed, epochs, _kill_after = case
    return {"weights": _clean_run(_resume_funcs(answer), seed, epochs)[0]["weights"]}


def _judge_clean_run(clean: list, epochs: int, expected: dict) -> None:
    """The uninterrupted run: DDP training with a DistributedSampler, a snapshot per epoch, the recipe asked."""
    first = clean[0]
    if values_close(first["weights"], first["start"], rtol=0, atol=0):
        raise Mismatch(f"a run of {epochs} epochs left the weights as they were: for every batch, zero the "
                       "gradients, compute the loss through the DDP model, backward(), optimizer.step().")
    if first["steps"] == 0:
        raise Mismatch("the optimizer that train_resumable is given never took a step: train with it, not with one "
                       "of your own, since its state is what the snapshots save and a restart restores.")
    if not any(o["samplers"] for o in clean):
        raise Mismatch("no DistributedSampler was read: give the DataLoader a DistributedSampler (shuffle=True, "
                       "seed=0) as its sampler, so that each rank reads its own part of every epoch.")
    if not all(values_close(o["weights"], first["weights"], rtol=1e-5, atol=1e-6) for o in clean[1:]):
        raise Mismatch("the ranks ended with different weights: wrap the model in DDP and run the batches through "
                       "the wrapper, which averages the gradients, so that every rank takes the same steps.")
    if first["saved"] not in (list(range(1, epochs + 1)), list(range(epochs))):
        raise Mismatch(f"a run of {epochs} epochs saved snapshots for epochs {first['saved']}: save one after every "
                       f"epoch, with the number of epochs done (1 to {epochs}).")
    if first["set_epoch"] != list(range(epochs)):
        raise Mismatch(f"sampler.set_epoch was called with {first['set_epoch']}: call it once per epoch with the "
                       f"epoch's number (0 to {epochs - 1}), or every epoch has the same order.")
    sizes = sorted(set(first["batches"]))
    if sizes != [RESUME_BATCH]:
        raise Mismatch(f"the model ran on batches of {sizes} examples: use DataLoader(dataset, "
                       f"batch_size={RESUME_BATCH}, sampler=sampler), as asked.")
    if first["steps"] != len(first["batches"]):
        raise Mismatch(f"the run took {first['steps']} optimizer steps for {len(first['batches'])} batches: one "
                       "step per batch (zero_grad, loss, backward, step).")
    sampler = first["samplers"][0]
    if not sampler["shuffle"] or sampler["seed"] != 0:
        raise Mismatch(f"the sampler had shuffle={sampler['shuffle']}, seed={sampler['seed']}: the exercise asks "
                       "for shuffle=True and seed=0.")
    if not values_close(first["weights"], expected["weights"], rtol=1e-4, atol=1e-5):
        raise Mismatch("a run that was never killed ends with other weights than the lesson's recipe: one step "
                       "of the optimizer you are given per batch, on F.cross_entropy of the DDP model's output, "
                       f"batches of {RESUME_BATCH} from a DistributedSampler with shuffle=True and seed=0.")


def _judge_resume(answer, case, expected):
    seed, epochs, kill_after = case
    funcs = _resume_funcs(answer)
    clean = _clean_run(funcs, seed, epochs)
    _judge_clean_run(clean, epochs, expected)
    with tempfile.TemporaryDirectory(prefix="course-resume-") as folder:
        path = os.path.join(folder, "killed.pt")
        killed = distributed.run_on_ranks(funcs, f"{_MODULE}:_worker_resume", (seed, epochs, path, kill_after),
                                          timeout=config.collective_timeout())
        if killed[-1].status != "died":
            raise Mismatch(f"the run that should have been killed after epoch {kill_after} was not: "
                           f"{killed[-1].error or 'it finished'}.")
        resumed = _run(funcs, "_worker_resume", (seed, epochs, path, -1))
    got = resumed[0]
    if got["set_epoch"][:1] == [0] and got["saved"][:1] == clean[0]["saved"][:1]:
        raise Mismatch(f"after the restart, training started again at epoch 0: load the snapshot when it exists "
                       f"and go on from the epoch after it (epoch {kill_after}, counting from 0).")
    if got["set_epoch"] != list(range(kill_after, epochs)):
        raise Mismatch(f"after the restart set_epoch was called with {got['set_epoch']}, not "
                       f"{list(range(kill_after, epochs))}: a snapshot taken after {kill_after} epochs must resume "
                       f"at epoch {kill_after} (counting from 0), so that no epoch is skipped or run twice.")
    if got["saved"] != clean[0]["saved"][kill_after:]:
        raise Mismatch(f"after the restart the snapshots were numbered {got['saved']}, but a run that was never "
                       f"killed numbered them {clean[0]['saved'][kill_after:]} from there: number them the same "
                       "way after a restart.")
    if not values_close(got["weights"], clean[0]["weights"], rtol=1e-5, atol=1e-6):
        raise Mismatch("the resumed run ends with other weights than a run that was never killed: restore the model "
                       "and the optimizer from the snapshot, and give set_epoch the real epoch number.")


ex5 = Exercise(
    5, "(train_resumable, save_checkpoint, load_checkpoint)", points=3, judge=_judge_resume,
    observe=_observe_resume, cases=lambda: [(75, 3, 2)], needs_callable=False,
    hints=[
        "When a worker dies, torchrun restarts every worker from the top of the script. The only memory of the "
        "killed run is the last snapshot: a restarted run that finds one must continue from there, with the same "
        "weights, optimizer state and data order as if nothing had happened.",
        "os.path.exists(snapshot_path), your load_checkpoint (it returns the epoch), DDP around the model, "
        "a DistributedSampler (shuffled, seed 0) with set_epoch, a DataLoader with sampler=..., "
        "and your save_checkpoint after every epoch.",
        "the first epoch is 0, or what load_checkpoint(...) returns when os.path.exists(____);  ddp = ...; "
        "sampler = ...; loader = DataLoader(dataset, batch_size=_, sampler=____);  for epoch in range(_____, epochs): "
        "sampler.set_epoch(____), one pass over loader, save_checkpoint(model, optimizer, ____, snapshot_path)",
    ],
)


EXERCISES = (ex1, ex2, ex3, ex4, ex5)
