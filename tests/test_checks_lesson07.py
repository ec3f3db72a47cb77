"""Lesson 07's checks: known-right answers (written several ways) pass, known-wrong ones fail with the
message that names the mistake. Every check here really runs two worker processes (gloo on the CPU)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

from helpers import distributed
from helpers.checks import lesson07 as checks
from helpers.checks.core import Outcome

pytestmark = pytest.mark.slow


def _passes(ex, answer):
    result = ex.check(answer)
    assert result.outcome is Outcome.CORRECT, str(result)


def _fails(ex, answer, *words):
    result = ex.check(answer)
    assert result.outcome is Outcome.INCORRECT, str(result)
    for word in words:
        assert word in result.message, result.message


# ------------------------------------------------------------------ 1: average_gradients


def average_gradients(model):
    world_size = dist.get_world_size()
    for p in model.parameters():
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world_size


def average_gradients_avg_op(model):
    grads = [p.grad for p in model.parameters()]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def average_gradients_env(model):  # the world size as torchrun gives it
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad.div_(int(os.environ["WORLD_SIZE"]))


def sum_only(model):
    for p in model.parameters():
        dist.all_reduce(p.grad)


def broadcast_from_zero(model):
    for p in model.parameters():
        dist.broadcast(p.grad, src=0)


def nothing(model):
    return None


def average_and_step(model):
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= dist.get_world_size()
        p.data -= 0.1 * p.grad


def only_on_rank_zero(model):
    if dist.get_rank() == 0:
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= 2


def divided_by_two(model):  # written for the lesson's two processes
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= 2


def rebinds_the_judge(model):  # hostile: makes the check compare a fixed list with itself, in the worker
    import sys
    judge = sys.modules["helpers.checks.lesson07"]
    fixed = [p.grad.clone() for p in model.parameters()]
    judge._grads = lambda m: [g.clone() for g in fixed]


def hangs_on_rank_one(model):  # rank 1 stays alive but never calls the all-reduce that rank 0 waits in
    import time
    if dist.get_rank() == 1:
        time.sleep(120)
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= dist.get_world_size()


def stub(model):
    raise NotImplementedError()


def average_gradients_numpy(model):  # uses an import of the notebook's (np), which travels with it
    scale = np.float32(1.0) / dist.get_world_size()
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad.mul_(float(scale))


WORLD_AS_TENSOR = torch.tensor(2.0)


def divides_by_a_notebook_tensor(model):  # a tensor of the notebook cannot travel as source
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= WORLD_AS_TENSOR


def rank_one_ends_its_process(model):
    if dist.get_rank() == 1:
        os._exit(0)
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= dist.get_world_size()


def rank_one_calls_exit(model):
    import sys
    if dist.get_rank() == 1:
        sys.exit()
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= dist.get_world_size()


def averages_the_weights(model):
    for p in model.parameters():
        dist.all_reduce(p.data)
        p.data /= dist.get_world_size()


def divides_without_combining(model):
    for p in model.parameters():
        p.grad /= dist.get_world_size()


def max_of_the_gradients(model):
    for p in model.parameters():
        dist.all_reduce(p.grad, op=dist.ReduceOp.MAX)


def reduces_a_copy(model):
    for p in model.parameters():
        g = p.grad.clone()
        dist.all_reduce(g)
        g /= dist.get_world_size()


def returns_the_averages(model):
    out = []
    for p in model.parameters():
        g = p.grad.clone()
        dist.all_reduce(g)
        out.append(g / dist.get_world_size())
    return out


def zeroes_the_gradients(model):
    for p in model.parameters():
        p.grad.zero_()


def first_parameter_only(model):
    p = next(model.parameters())
    dist.all_reduce(p.grad)
    p.grad /= dist.get_world_size()


def average_gradients_all_gather(model):  # gather every rank's gradient, then rebind .grad to their mean
    for p in model.parameters():
        parts = [torch.zeros_like(p.grad) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, p.grad)
        p.grad = torch.stack(parts).mean(0)


def test_allreduce_right_answers_pass():
    _passes(checks.ex1, average_gradients)
    _passes(checks.ex1, average_gradients_avg_op)
    _passes(checks.ex1, average_gradients_env)
    _passes(checks.ex1, average_gradients_numpy)
    _passes(checks.ex1, average_gradients_all_gather)


@pytest.mark.parametrize("answer, words", [
    (sum_only, ["sum", "divide by the world size"]),
    (broadcast_from_zero, ["broadcast"]),
    (nothing, ["unchanged"]),
    (average_and_step, ["weights changed"]),
    # rank 1 skips the all-reduce and returns: ended 5 s after it, not at the 30 s timeout
    (only_on_rank_zero, ["rank 1 had returned", "5 s later", "inside `if rank == 0`"]),
    (rank_one_ends_its_process, ["process of rank 1 ended", "os._exit()"]),
    (rank_one_calls_exit, ["on rank 1", "exit()"]),
    (divides_by_a_notebook_tensor, ["NameError", "WORLD_AS_TENSOR", "tensors", "inside the function"]),
    (divided_by_two, ["on 3 processes", "divided by 2", "dist.get_world_size()"]),
    (rebinds_the_judge, ["TamperError", "helpers.checks.lesson07._grads"]),
    # what the answer's collectives were given, and what the gradients became, name the mistake
    (averages_the_weights, ["given the weights", "p.grad"]),
    (divides_without_combining, ["without combining"]),
    (max_of_the_gradients, ["maximum", "ReduceOp.SUM"]),
    (reduces_a_copy, ["copies", "in place"]),
    (returns_the_averages, ["returned a list", "in place"]),
    (zeroes_the_gradients, ["zero"]),
    (first_parameter_only, ["1 of the model's 4 parameters has", "every parameter"]),
])
def test_allreduce_wrong_answers_are_named(answer, words):
    _fails(checks.ex1, answer, *words)


def test_a_hung_collective_ends_by_the_course_setting(monkeypatch):
    """COURSE_COLLECTIVE_TIMEOUT bounds how long a check waits for a hung collective (a grader sets it
    lower to spend less on hung answers); the message says how long it waited and why."""
    monkeypatch.setenv("COURSE_COLLECTIVE_TIMEOUT", "3")
    _fails(checks.ex1, hangs_on_rank_one, "within 3 s", "inside `if rank == 0`")
    monkeypatch.setenv("COURSE_COLLECTIVE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="COURSE_COLLECTIVE_TIMEOUT='soon' is not a number of seconds"):
        checks.ex1.check(average_gradients)


def test_allreduce_stub_is_not_attempted():
    assert checks.ex1.check(stub).outcome is Outcome.NOT_ATTEMPTED


# ------------------------------------------------------------------ 2: epoch_shards


def epoch_shards(n, world_size, epoch):
    shards = []
    for rank in range(world_size):
        sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
    return shards


def epoch_shards_tensors(n, world_size, epoch):
    out = []
    for r in range(world_size):
        s = DistributedSampler(list(range(n)), world_size, r)
        s.set_epoch(epoch)
        out.append(torch.tensor(list(s)))
    return tuple(out)


def shards_no_set_epoch(n, world_size, epoch):
    return [list(DistributedSampler(range(n), num_replicas=world_size, rank=r)) for r in range(world_size)]


def shards_unshuffled(n, world_size, epoch):
    return [list(DistributedSampler(range(n), num_replicas=world_size, rank=r, shuffle=False))
            for r in range(world_size)]


def shards_drop_last(n, world_size, epoch):
    out = []
    for r in range(world_size):
        s = DistributedSampler(range(n), num_replicas=world_size, rank=r, drop_last=True)
        s.set_epoch(epoch)
        out.append(list(s))
    return out


def shards_everything(n, world_size, epoch):
    g = torch.Generator().manual_seed(epoch)
    return [torch.randperm(n, generator=g).tolist() for _ in range(world_size)]


def shards_random_each_call(n, world_size, epoch):
    perm = torch.randperm(n).tolist()
    per = -(-n // world_size)
    perm += perm[: per * world_size - n]
    return [perm[r::world_size] for r in range(world_size)]


def epoch_shards_by_hand(n, world_size, epoch):
    """DistributedSampler's algorithm written out: one permutation from seed + epoch, padded, then strided."""
    g = torch.Generator()
    g.manual_seed(0 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    size = -(-n // world_size) * world_size
    order += order[: size - n]
    return [order[r:size:world_size] for r in range(world_size)]


def _sampler_shards(n, world_size, epoch, *, seed=0, ranks=None, replicas=True):
    out = []
    for r in ranks or range(world_size):
        s = (DistributedSampler(range(n), num_replicas=world_size, rank=r, seed=seed) if replicas
             else DistributedSampler(range(n), rank=r, seed=seed))
        s.set_epoch(epoch)
        out.append(list(s))
    return out


def shards_set_epoch_plus_one(n, world_size, epoch):
    return _sampler_shards(n, world_size, epoch + 1)


def shards_another_seed(n, world_size, epoch):
    return _sampler_shards(n, world_size, epoch, seed=42)


def shards_seed_per_rank(n, world_size, epoch):
    return [_sampler_shards(n, world_size, epoch, seed=r)[r] for r in range(world_size)]


def shards_same_rank_everywhere(n, world_size, epoch):
    return _sampler_shards(n, world_size, epoch, ranks=[0] * world_size)


def shards_without_num_replicas(n, world_size, epoch):
    return _sampler_shards(n, world_size, epoch, replicas=False)


def shards_contiguous(n, world_size, epoch):
    """Equal, covering, changing with the epoch, but not the sampler's: contiguous blocks of its order."""
    strided = epoch_shards_by_hand(n, world_size, epoch)
    order = [strided[k % world_size][k // world_size] for k in range(world_size * len(strided[0]))]
    per = len(strided[0])
    return [order[r * per:(r + 1) * per] for r in range(world_size)]


def epoch_shards_as_rows(n, world_size, epoch):  # one row per rank: a 2-D tensor, or a NumPy array
    return torch.tensor(epoch_shards(n, world_size, epoch))


def epoch_shards_as_array(n, world_size, epoch):
    return np.array(epoch_shards(n, world_size, epoch))


def shards_by_rank_in_a_dict(n, world_size, epoch):
    return dict(enumerate(epoch_shards(n, world_size, epoch)))


def shards_of_rank_zero(n, world_size, epoch):
    return epoch_shards(n, world_size, epoch)[0]


def test_shards_right_answers_pass():
    _passes(checks.ex2, epoch_shards)
    _passes(checks.ex2, epoch_shards_as_rows)
    _passes(checks.ex2, epoch_shards_as_array)
    _passes(checks.ex2, epoch_shards_tensors)
    _passes(checks.ex2, epoch_shards_by_hand)


def test_shards_hidden_cases_compare_with_the_reference_of_the_hidden_test():
    cases = [(13, 4, 2), (7, 2, 9), (5, 5, 0)]
    checks.ex2.grade(epoch_shards_by_hand, cases=cases, reference=epoch_shards)
    with pytest.raises(AssertionError, match="epoch 3, not of epoch 2"):
        checks.ex2.grade(shards_set_epoch_plus_one, cases=cases, reference=epoch_shards)


@pytest.mark.parametrize("answer, words", [
    (shards_set_epoch_plus_one, ["shards of epoch 1, not of epoch 0", "set_epoch(epoch + 1)"]),
    (shards_another_seed, ["not the ones DistributedSampler gives", "seed=0"]),
    (shards_contiguous, ["not the ones DistributedSampler gives"]),
    (shards_seed_per_rank, ["same seed on every rank"]),
    (shards_same_rank_everywhere, ["same shard", "rank="]),
    (shards_without_num_replicas, ["none in this one process", "num_replicas=world_size"]),
    (shards_no_set_epoch, ["set_epoch"]),
    (shards_unshuffled, ["not shuffled"]),
    (shards_drop_last, ["never used", "drop_last"]),
    (shards_everything, ["whole data set"]),
    (shards_random_each_call, ["same epoch"]),
    (shards_by_rank_in_a_dict, ["returned a dict", "one list of indices per rank"]),
    (shards_of_rank_zero, ["one flat list of 6 indices", "one list per rank"]),
])
def test_shards_wrong_answers_are_named(answer, words):
    _fails(checks.ex2, answer, *words)


# ------------------------------------------------------------------ 3: ddp_step


def ddp_step(model, images, labels, lr):
    ddp = DDP(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=lr)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    x, y = images.chunk(world_size)[rank], labels.chunk(world_size)[rank]
    optimizer.zero_grad()
    F.cross_entropy(ddp(x), y).backward()
    optimizer.step()


def ddp_step_strided(model, images, labels, lr):
    rank, world = dist.get_rank(), dist.get_world_size()
    net = DDP(model, device_ids=None)
    opt = torch.optim.SGD(model.parameters(), lr)
    loss = torch.nn.CrossEntropyLoss()(net(images[rank::world]), labels[rank::world])
    loss.backward()
    opt.step()
    return net


def _my_share(t):  # a helper of the notebook's, sent with the answer that calls it
    return t.chunk(dist.get_world_size())[dist.get_rank()]


def ddp_step_with_a_helper(model, images, labels, lr):
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    opt.zero_grad()
    F.cross_entropy(ddp(_my_share(images)), _my_share(labels)).backward()
    opt.step()


def step_without_ddp(model, images, labels, lr):
    rank, world = dist.get_rank(), dist.get_world_size()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    F.cross_entropy(model(images.chunk(world)[rank]), labels.chunk(world)[rank]).backward()
    opt.step()


def step_full_batch(model, images, labels, lr):
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    F.cross_entropy(ddp(images), labels).backward()
    opt.step()


def step_sum_loss(model, images, labels, lr):
    rank, world = dist.get_rank(), dist.get_world_size()
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    F.cross_entropy(ddp(images.chunk(world)[rank]), labels.chunk(world)[rank], reduction="sum").backward()
    opt.step()


def step_same_shard(model, images, labels, lr):
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    half = len(images) // dist.get_world_size()
    F.cross_entropy(ddp(images[:half]), labels[:half]).backward()
    opt.step()


def step_no_step(model, images, labels, lr):
    rank, world = dist.get_rank(), dist.get_world_size()
    ddp = DDP(model)
    F.cross_entropy(ddp(images.chunk(world)[rank]), labels.chunk(world)[rank]).backward()


def step_split_in_two(model, images, labels, lr):  # written for the lesson's two processes
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    rank = dist.get_rank()
    F.cross_entropy(ddp(images.chunk(2)[rank]), labels.chunk(2)[rank]).backward()
    opt.step()


def _shard_step(model, images, labels, *, optimizer=torch.optim.SGD, loss=F.cross_entropy, scale=1.0, **settings):
    rank, world = dist.get_rank(), dist.get_world_size()
    ddp = DDP(model)
    opt = optimizer(ddp.parameters(), **settings)
    opt.zero_grad()
    (loss(ddp(images.chunk(world)[rank]), labels.chunk(world)[rank]) * scale).backward()
    opt.step()


def step_loss_over_world(model, images, labels, lr):  # divides what DDP already averages
    _shard_step(model, images, labels, lr=lr, scale=1 / dist.get_world_size())


def step_lr_times_world(model, images, labels, lr):
    _shard_step(model, images, labels, lr=lr * dist.get_world_size())


def step_adam(model, images, labels, lr):
    _shard_step(model, images, labels, optimizer=torch.optim.Adam, lr=lr)


def step_weight_decay(model, images, labels, lr):
    _shard_step(model, images, labels, lr=lr, weight_decay=0.01)


def step_nll_on_logits(model, images, labels, lr):
    _shard_step(model, images, labels, loss=F.nll_loss, lr=lr)


def step_mse_one_hot(model, images, labels, lr):
    _shard_step(model, images, labels, loss=lambda out, y: F.mse_loss(out, F.one_hot(y, 3).float()), lr=lr)


def ddp_step_logging_the_whole_batch(model, images, labels, lr):  # an evaluation under no_grad trains nothing
    with torch.no_grad():
        F.cross_entropy(model(images), labels).item()
    _shard_step(model, images, labels, lr=lr)


def test_ddp_step_right_answers_pass():
    _passes(checks.ex3, ddp_step)
    _passes(checks.ex3, ddp_step_strided)
    _passes(checks.ex3, ddp_step_with_a_helper)
    _passes(checks.ex3, ddp_step_logging_the_whole_batch)


@pytest.mark.parametrize("answer, words", [
    (step_without_ddp, ["DistributedDataParallel"]),
    (step_full_batch, ["whole batch"]),
    (step_sum_loss, ["4 times too large"]),
    (step_same_shard, ["disjoint"]),
    (step_no_step, ["did not change"]),
    (step_split_in_two, ["on 3 processes", "on rank 2", "IndexError", "dist.get_world_size()"]),
    (step_loss_over_world, ["2 times too small", "Don't divide the loss by the world size"]),
    (step_lr_times_world, ["learning rate was 1", "not the lr given (0.5)"]),
    (step_adam, ["taken by Adam", "torch.optim.SGD"]),
    (step_weight_decay, ["weight_decay"]),
    (step_nll_on_logits, ["nll_loss on the logits", "F.cross_entropy"]),
    (step_mse_one_hot, ["mse_loss", "F.cross_entropy"]),
])
def test_ddp_step_wrong_answers_are_named(answer, words):
    _fails(checks.ex3, answer, *words)


def test_ddp_step_equals_a_single_process_full_batch_step():
    """The numbers themselves: two real processes, DDP, against plain torch on the whole batch."""
    out = distributed.run_on_ranks([ddp_step], "helpers.checks.lesson07:_worker_step", (5, 8, 0.3))
    model, (x, y) = checks.tiny_model(5), checks.tiny_batch(8, 6)
    want = checks._sgd_step(model, x, y, 0.3)
    assert [r.status for r in out] == ["ok", "ok"]
    for r in out:
        torch.testing.assert_close(r.value["weights"], want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(want, checks._flat(model))


# ------------------------------------------------------------------ 4: checkpoints


def save_checkpoint(model, optimizer, epoch, path):
    if dist.get_rank() == 0:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, path)
    dist.barrier()


def load_checkpoint(path, model, optimizer):
    ckpt = torch.load(path, map_location="cpu")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt["epoch"]


def load_checkpoint_device(path, model, optimizer):
    device = next(model.parameters()).device
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"])


def save_checkpoint_env(model, optimizer, epoch, path):  # the rank as torchrun gives it, as the lesson shows
    if int(os.environ["RANK"]) == 0:
        tmp = f"{path}.tmp"
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, tmp)
        os.replace(tmp, path)
    dist.barrier()


def save_every_rank(model, optimizer, epoch, path):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, path)
    dist.barrier()


def save_no_barrier(model, optimizer, epoch, path):
    if dist.get_rank() == 0:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, path)


def save_barrier_inside(model, optimizer, epoch, path):
    if dist.get_rank() == 0:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, path)
        dist.barrier()


def save_whole_objects(model, optimizer, epoch, path):
    if dist.get_rank() == 0:
        torch.save({"model": model, "optimizer": optimizer, "epoch": epoch}, path)
    dist.barrier()


def save_model_only(model, optimizer, epoch, path):
    if dist.get_rank() == 0:
        torch.save({"model": model.state_dict(), "epoch": epoch}, path)
    dist.barrier()


def load_no_map_location(path, model, optimizer):
    ckpt = torch.load(path)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt["epoch"]


def save_epoch_and_patch_torch(model, optimizer, epoch, path):  # hostile: every later comparison agrees
    if dist.get_rank() == 0:
        torch.save({"epoch": epoch}, path)
    dist.barrier()
    torch.allclose = lambda *a, **k: True


def load_epoch_only(path, model, optimizer):  # and momentum buffers of zeros, for the comparison to agree with
    for p in model.parameters():
        optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
    return torch.load(path, map_location="cpu")["epoch"]


def load_model_only(path, model, optimizer):
    ckpt = torch.load(path, map_location="cpu")
    model.load_state_dict(ckpt["model"])
    return ckpt["epoch"]


def load_on_rank_zero_and_broadcast(path, model, optimizer):  # one read of the file, sent to the others
    state = [torch.load(path, map_location="cpu") if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(state, src=0)
    model.load_state_dict(state[0]["model"])
    optimizer.load_state_dict(state[0]["optimizer"])
    return state[0]["epoch"]


def load_on_rank_zero_only(path, model, optimizer):
    if dist.get_rank() == 0:
        ckpt = torch.load(path, map_location="cpu")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        return ckpt["epoch"]
    return None


def test_checkpoint_right_answers_pass():
    _passes(checks.ex4, (save_checkpoint, load_checkpoint))
    _passes(checks.ex4, (save_checkpoint, load_on_rank_zero_and_broadcast))
    _passes(checks.ex4, (save_checkpoint, load_checkpoint_device))
    _passes(checks.ex4, (save_checkpoint_env, load_checkpoint))


@pytest.mark.parametrize("answer, words", [
    ((save_every_rank, load_checkpoint), ["only rank 0"]),
    ((save_no_barrier, load_checkpoint), ["went on before rank 0"]),
    ((save_barrier_inside, load_checkpoint), ["collective"]),
    ((save_whole_objects, load_checkpoint), ["state_dict"]),
    ((save_checkpoint, load_no_map_location), ["map_location"]),
    ((save_checkpoint, load_model_only), ["momentum"]),
    ((save_checkpoint, load_on_rank_zero_only), ["on rank 1 the model was not restored", "every rank must load"]),
    # it saves no weights, loads none, and makes torch.allclose agree with anything in the worker, where the
    # check compares the loaded weights: put back, TamperError
    ((save_epoch_and_patch_torch, load_epoch_only), ["TamperError", "torch.allclose"]),
])
def test_checkpoint_wrong_answers_are_named(answer, words):
    _fails(checks.ex4, answer, *words)


# ------------------------------------------------------------------ 5: resume


def train_resumable(model, optimizer, dataset, epochs, snapshot_path):
    start = 0
    if os.path.exists(snapshot_path):
        start = load_checkpoint(snapshot_path, model, optimizer)
    ddp = DDP(model)
    sampler = DistributedSampler(dataset, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler)
    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(ddp(x), y).backward()
            optimizer.step()
        save_checkpoint(model, optimizer, epoch + 1, snapshot_path)


BATCH = 4  # a constant of the notebook's, sent with the answer that uses it


def train_resumable_with_constants(model, optimizer, dataset, epochs, snapshot_path):
    start = load_checkpoint(snapshot_path, model, optimizer) if os.path.exists(snapshot_path) else 0
    net = DDP(model)
    sampler = DistributedSampler(dataset, seed=0)
    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        for x, y in DataLoader(dataset, batch_size=BATCH, sampler=sampler):
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
        save_checkpoint(model, optimizer, epoch + 1, snapshot_path)


def train_never_resumes(model, optimizer, dataset, epochs, snapshot_path):
    ddp = DDP(model)
    sampler = DistributedSampler(dataset, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(ddp(x), y).backward()
            optimizer.step()
        save_checkpoint(model, optimizer, epoch + 1, snapshot_path)


def train_relative_epoch(model, optimizer, dataset, epochs, snapshot_path):
    start = load_checkpoint(snapshot_path, model, optimizer) if os.path.exists(snapshot_path) else 0
    ddp = DDP(model)
    sampler = DistributedSampler(dataset, seed=0)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler)
    for i in range(epochs - start):
        sampler.set_epoch(i)  # the number since the restart, not the real epoch
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(ddp(x), y).backward()
            optimizer.step()
        save_checkpoint(model, optimizer, start + i + 1, snapshot_path)


def _train(model, optimizer, dataset, epochs, snapshot_path, *, resume_after=0, number_from=1, ddp=True,
           batch_size=4, shuffle=True, seed=0, steps=1, loss=F.cross_entropy, sampler=True, evaluate=False):
    """The reference loop with one thing changed: how snapshots are numbered and resumed, DDP, the sampler,
    the batch size, the loss, the steps per batch, an evaluation on the whole data set after each epoch."""
    start = load_checkpoint(snapshot_path, model, optimizer) + resume_after if os.path.exists(snapshot_path) else 0
    net = DDP(model) if ddp else model
    order = DistributedSampler(dataset, shuffle=shuffle, seed=seed) if sampler else None
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order, shuffle=None if sampler else True)
    for epoch in range(start, epochs):
        if order is not None:
            order.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            loss(net(x), y).backward()
            for _ in range(steps):
                optimizer.step()
        if evaluate:
            with torch.no_grad():  # the whole data set, for the log: not a training batch
                x_all, y_all = dataset.tensors
                (model(x_all).argmax(1) == y_all).float().mean()
        save_checkpoint(model, optimizer, epoch + number_from, snapshot_path)


def train_numbers_snapshots_by_index(model, optimizer, dataset, epochs, snapshot_path):  # consistent: passes
    _train(model, optimizer, dataset, epochs, snapshot_path, resume_after=1, number_from=0)


def train_by_index_resumes_at_it(model, optimizer, dataset, epochs, snapshot_path):  # runs an epoch twice
    _train(model, optimizer, dataset, epochs, snapshot_path, resume_after=0, number_from=0)


def train_skips_an_epoch(model, optimizer, dataset, epochs, snapshot_path):
    _train(model, optimizer, dataset, epochs, snapshot_path, resume_after=1)


def train_without_ddp(model, optimizer, dataset, epochs, snapshot_path):
    _train(model, optimizer, dataset, epochs, snapshot_path, ddp=False)


def train_without_sampler(model, optimizer, dataset, epochs, snapshot_path):
    _train(model, optimizer, dataset, epochs, snapshot_path, sampler=False)


def train_batches_of_8(model, optimizer, dataset, epochs, snapshot_path):
    _train(model, optimizer, dataset, epochs, snapshot_path, batch_size=8)


def train_unshuffled(model, optimizer, dataset, epochs, snapshot_path):
    _train(model, optimizer, dataset, epochs, snapshot_path, shuffle=False)


def train_two_steps_a_batch(model, optimizer, dataset, epochs, snapshot_path):
    _train(model, optimizer, dataset, epochs, snapshot_path, steps=2)


def train_nll_on_logits(model, optimizer, dataset, epochs, snapshot_path):
    _train(model, optimizer, dataset, epochs, snapshot_path, loss=F.nll_loss)


def train_only_snapshots(model, optimizer, dataset, epochs, snapshot_path):  # resumes perfectly, trains nothing
    # (the barrier lets rank 0 write its first snapshot at once: this answer never runs the model, so the check
    # would wait RESUME_START_S for the other ranks to begin)
    start = load_checkpoint(snapshot_path, model, optimizer) if os.path.exists(snapshot_path) else 0
    dist.barrier()
    sampler = DistributedSampler(dataset, shuffle=True, seed=0)
    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        save_checkpoint(model, optimizer, epoch + 1, snapshot_path)


def train_and_evaluate_each_epoch(model, optimizer, dataset, epochs, snapshot_path):  # right: passes
    _train(model, optimizer, dataset, epochs, snapshot_path, evaluate=True)


def train_with_an_optimizer_of_its_own(model, optimizer, dataset, epochs, snapshot_path):
    start = load_checkpoint(snapshot_path, model, optimizer) if os.path.exists(snapshot_path) else 0
    ddp = DDP(model)
    own = torch.optim.SGD(ddp.parameters(), lr=0.2, momentum=0.9)  # not the one given: its state is never saved
    sampler = DistributedSampler(dataset, shuffle=True, seed=0)
    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        for x, y in DataLoader(dataset, batch_size=4, sampler=sampler):
            own.zero_grad()
            F.cross_entropy(ddp(x), y).backward()
            own.step()
        save_checkpoint(model, optimizer, epoch + 1, snapshot_path)


def test_resume_right_answer_passes():
    _passes(checks.ex5, (train_resumable, save_checkpoint, load_checkpoint))
    _passes(checks.ex5, (train_resumable_with_constants, save_checkpoint, load_checkpoint))
    _passes(checks.ex5, (train_numbers_snapshots_by_index, save_checkpoint_env, load_on_rank_zero_and_broadcast))
    _passes(checks.ex5, (train_and_evaluate_each_epoch, save_checkpoint, load_checkpoint))


def test_resume_hidden_cases_compare_with_the_reference_of_the_hidden_test():
    cases = [(708, 3, 1)]
    checks.ex5.grade((train_numbers_snapshots_by_index, save_checkpoint, load_checkpoint), cases=cases,
                     reference=(train_resumable, save_checkpoint, load_checkpoint))
    with pytest.raises(AssertionError, match="other weights than the lesson's recipe"):
        checks.ex5.grade((train_nll_on_logits, save_checkpoint, load_checkpoint), cases=cases,
                         reference=(train_resumable, save_checkpoint, load_checkpoint))


@pytest.mark.parametrize("answer, words", [
    ((train_never_resumes, save_checkpoint, load_checkpoint), ["started again at epoch 0"]),
    ((train_relative_epoch, save_checkpoint, load_checkpoint), ["set_epoch was called with"]),
    ((train_resumable, save_checkpoint, load_model_only), ["other weights"]),
    ((train_by_index_resumes_at_it, save_checkpoint, load_checkpoint), ["called with [1, 2], not [2]"]),
    ((train_skips_an_epoch, save_checkpoint, load_checkpoint), ["called with [], not [2]"]),
    ((train_without_ddp, save_checkpoint, load_checkpoint), ["different weights", "wrap the model in DDP"]),
    ((train_without_sampler, save_checkpoint, load_checkpoint), ["no DistributedSampler"]),
    ((train_batches_of_8, save_checkpoint, load_checkpoint), ["batches of [8]", "batch_size=4"]),
    ((train_unshuffled, save_checkpoint, load_checkpoint), ["shuffle=False", "shuffle=True and seed=0"]),
    ((train_two_steps_a_batch, save_checkpoint, load_checkpoint), ["12 optimizer steps for 6 batches"]),
    ((train_nll_on_logits, save_checkpoint, load_checkpoint), ["other weights than the lesson's recipe"]),
    ((train_only_snapshots, save_checkpoint, load_checkpoint), ["left the weights as they were"]),
    ((train_with_an_optimizer_of_its_own, save_checkpoint, load_checkpoint), ["never took a step", "of your own"]),
])
def test_resume_wrong_answers_are_named(answer, words):
    _fails(checks.ex5, answer, *words)

