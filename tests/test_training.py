"""helpers.training: the device choice, seeding, the tensor loader, and the loops agree with PyTorch."""

import copy
from unittest import mock

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import training


def _data(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def test_pick_device_prefers_cuda_then_mps_then_cpu():
    with mock.patch.object(torch.cuda, "is_available", lambda: True), \
            mock.patch.object(torch.backends.mps, "is_available", lambda: True):
        assert training.pick_device() == torch.device("cuda")
    with mock.patch.object(torch.cuda, "is_available", lambda: False), \
            mock.patch.object(torch.backends.mps, "is_available", lambda: True):
        assert training.pick_device() == torch.device("mps")
    with mock.patch.object(torch.cuda, "is_available", lambda: False), \
            mock.patch.object(torch.backends.mps, "is_available", lambda: False):
        assert training.pick_device() == torch.device("cpu")


def test_set_seed_makes_draws_repeat_and_returns_a_generator():
    g = training.set_seed(3)
    a = torch.rand(3), torch.rand(2, generator=g)
    g = training.set_seed(3)
    b = torch.rand(3), torch.rand(2, generator=g)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)


def test_tensor_loader_batches_cover_everything_once_in_a_seeded_order():
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    loader = training.TensorLoader(x, y, batch_size=4, shuffle=True, seed=1)
    batches = list(loader)
    assert len(loader) == 3 == len(batches) and [len(b[1]) for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    torch.testing.assert_close(torch.cat([b[0] for b in batches]).squeeze(1), seen.float())  # pairs stay together
    assert torch.cat([b[1] for b in loader]).tolist() != seen.tolist()  # a new order every epoch
    again = training.TensorLoader(x, y, batch_size=4, shuffle=True, seed=1)
    assert torch.cat([b[1] for b in again]).tolist() == seen.tolist()
    assert torch.cat([b[1] for b in training.TensorLoader(x, y, batch_size=3)]).tolist() == list(range(10))
    assert len(loader.dataset) == 10
    with pytest.raises(ValueError, match="differ in length"):
        training.TensorLoader(x, y[:5])


def _reference_epoch(model, loader, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    total = 0.0
    for xb, yb in loader:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item() * len(yb)
    return total / sum(len(b[1]) for b in loader)


def test_train_one_epoch_matches_the_five_line_loop_with_a_dataloader_or_tensor_loader():
    x, y = _data()
    for loader in (DataLoader(TensorDataset(x, y), batch_size=16), training.TensorLoader(x, y, batch_size=16)):
        mine, ref = _model(), _model()
        mine.eval()  # train_one_epoch must switch back to training mode
        loss = training.train_one_epoch(mine, loader, nn.CrossEntropyLoss(), torch.optim.SGD(mine.parameters(), 0.1))
        assert mine.training
        assert loss == pytest.approx(_reference_epoch(ref, loader, 0.1), rel=1e-5)
        for a, b in zip(mine.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(a, b)


def test_evaluate_uses_eval_mode_without_gradients_and_weights_batches_by_size():
    x, y = _data(n=23)
    model = _model(dropout=0.5)
    loader = training.TensorLoader(x, y, batch_size=10)
    loss, acc = training.evaluate(model, loader, nn.CrossEntropyLoss())
    assert not model.training
    with torch.no_grad():
        out = model(x)
    assert loss == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-5)
    assert acc == pytest.approx((out.argmax(1) == y).float().mean().item())
    assert all(p.grad is None for p in model.parameters())
    preds, labels = training.predict(model, loader)
    assert torch.equal(preds, out.argmax(1)) and torch.equal(labels, y)


def test_fit_records_history_and_early_stopping_restores_the_best_epoch():
    x, y = _data(n=40)
    xv, yv = _data(n=30, seed=1)
    model = _model()
    seen = []
    history = training.fit(model, training.TensorLoader(x, y, batch_size=8, shuffle=True),
                           nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=0.05), epochs=40,
                           val_loader=training.TensorLoader(xv, yv, batch_size=30), patience=2,
                           on_epoch=lambda epoch, h: seen.append((epoch, copy.deepcopy(model.state_dict()))))
    n = len(history.val_loss)
    assert history.stopped_early and n < 40 and len(history.train_loss) == n == len(history.val_accuracy)
    assert history.best_epoch == 1 + min(range(n), key=history.val_loss.__getitem__)
    assert n - history.best_epoch == 2
    best_state = seen[history.best_epoch - 1][1]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, best_state[key])
    assert history.seconds > 0 and set(history.curves()) == {"training loss", "validation loss"}


def test_fit_without_validation_trains_every_epoch():
    x, y = _data()
    model = _model()
    history = training.fit(model, training.TensorLoader(x, y, batch_size=10), nn.CrossEntropyLoss(),
                           torch.optim.SGD(model.parameters(), lr=0.1), epochs=3)
    assert len(history.train_loss) == 3 and history.val_loss == [] and history.best_epoch is None
    assert history.train_loss[-1] < history.train_loss[0]


def test_importing_training_has_no_side_effects():
    import importlib

    state = torch.random.get_rng_state()
    importlib.reload(training)
    assert torch.equal(state, torch.random.get_rng_state())
