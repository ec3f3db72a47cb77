"""helpers.training: seeding, the tensor loader, and the course's trainer agree with PyTorch."""

import copy

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


def test_fit_trains_like_the_five_line_loop_and_weights_batches_by_size():
    x, y = _data()
    for loader in (DataLoader(TensorDataset(x, y), batch_size=16), training.TensorLoader(x, y, batch_size=16)):
        mine, ref = _model(), _model()
        mine.eval()  # fit must switch to training mode
        history = training.fit(mine, loader, nn.CrossEntropyLoss(), torch.optim.SGD(mine.parameters(), 0.1), 1)
        assert mine.training
        assert history.train_loss == [pytest.approx(_reference_epoch(ref, loader, 0.1), rel=1e-5)]
        for a, b in zip(mine.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(a, b)


def test_fit_validates_in_eval_mode_without_gradients():
    x, y = _data(n=40)
    xv, yv = _data(n=23, seed=1)
    model = _model(dropout=0.5)
    seen = []
    history = training.fit(model, training.TensorLoader(x, y, batch_size=8, shuffle=True),
                           nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=0.05), epochs=3,
                           val_loader=training.TensorLoader(xv, yv, batch_size=10),
                           on_epoch=lambda epoch, h: seen.append(copy.deepcopy(model)))
    assert not model.training and len(history.train_loss) == 3 == len(history.val_loss) == len(history.val_accuracy)
    for snapshot, loss, acc in zip(seen, history.val_loss, history.val_accuracy, strict=True):
        with torch.no_grad():
            out = snapshot.eval()(xv)
        assert loss == pytest.approx(nn.functional.cross_entropy(out, yv).item(), rel=1e-5)  # batches 10, 10, 3
        assert acc == pytest.approx((out.argmax(1) == yv).float().mean().item())
    assert history.seconds > 0 and set(history.curves()) == {"training loss", "validation loss"}


def test_fit_stops_when_on_epoch_says_so():
    x, y = _data()
    model = _model()
    history = training.fit(model, training.TensorLoader(x, y, batch_size=10), nn.CrossEntropyLoss(),
                           torch.optim.SGD(model.parameters(), lr=0.1), epochs=10,
                           on_epoch=lambda epoch, h: epoch == 3)
    assert len(history.train_loss) == 3 and history.stopped_early and history.val_loss == []
    assert history.train_loss[-1] < history.train_loss[0]


def test_fit_refuses_batches_off_the_model_device_and_an_empty_loader():
    x, y = _data()
    model = _model().to("meta")
    with pytest.raises(ValueError, match="as_tensors"):
        training.fit(model, training.TensorLoader(x, y), nn.CrossEntropyLoss(),
                     torch.optim.SGD(model.parameters(), lr=0.1), epochs=1)
    model = _model()
    with pytest.raises(ValueError, match="gave no batch"):
        training.fit(model, [], nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), epochs=1)


def test_the_package_holds_no_answer_of_lessons_05_and_06():
    """Issue 13 part 2: the device choice, the epoch, the evaluation and the predictions are the learners'."""
    from helpers.plots import evaluation as plots_eval

    for name in ("pick_device", "train_one_epoch", "evaluate", "predict"):
        assert not hasattr(training, name), name
    assert not hasattr(plots_eval, "confusion_counts")


def test_importing_training_has_no_side_effects():
    import importlib

    state = torch.random.get_rng_state()
    importlib.reload(training)
    assert torch.equal(state, torch.random.get_rng_state())
