import pickle

import numpy as np
import pytest
import torch

import rnnprobe.models as zoo
from rnnprobe.errors import ArgumentError, ArgumentTypeError, StoreFormatError, StoreNotFoundError, UnknownNameError
from rnnprobe.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, task_from_checkpoint
from rnnprobe.models.training import train
from rnnprobe.tasks import FlipFlop, OccludedDigits

MODELS = [
    lambda: zoo.LSTM(3, 5, 2, num_layers=2, record_gates=True),
    lambda: zoo.GRU(3, 5, 2),
    lambda: zoo.VanillaRNN(3, 5, 2, nonlinearity="relu"),
    lambda: zoo.CTRNN(3, 5, 2, tau=40.0, dt=8.0),
    lambda: zoo.FastWeightsRNN(3, 5, 2, inner_steps=2),
    lambda: zoo.EnergyEfficientRNN(3),
]


@pytest.mark.parametrize("make", MODELS, ids=lambda m: type(m()).__name__)
def test_checkpoint_round_trip(tmp_path, make):
    torch.manual_seed(0)
    model = make()
    task = FlipFlop(3, n_steps=10)
    path = save_checkpoint(tmp_path / "m.pt", model, task=task, metrics={"acc": 0.5})
    loaded = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    x = torch.randn(2, 6, 3)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded.checkpoint["metrics"] == {"acc": 0.5} and loaded.checkpoint["task_class"] == "FlipFlop"
    assert task_from_checkpoint(loaded).config == task.config


def test_blt_checkpoint_round_trip(tmp_path):
    model = zoo.BLT("B-F", image_size=16, maps=4, steps=2)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "b.pt", model, task=OccludedDigits(image_size=16)))
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert task_from_checkpoint(loaded).levels == OccludedDigits().levels


def test_checkpoint_errors(tmp_path):
    path = save_checkpoint(tmp_path / "gru.pt", zoo.GRU(2, 3, 1))
    with pytest.raises(CheckpointError, match=r"holds a GRU, not a LSTM\. Load it with model_class=GRU"):
        load_checkpoint(path, model_class=zoo.LSTM)
    assert type(load_checkpoint(path, model_class="GRU")) is zoo.GRU
    with pytest.raises(StoreNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(StoreFormatError, match="not an rnnprobe checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ArgumentTypeError, match="Checkpoints hold rnnprobe zoo models"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))
    with pytest.raises(ArgumentError, match="not loaded from a checkpoint"):
        task_from_checkpoint(zoo.GRU(2, 3, 1))


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch notes the foreign pickle
def test_checkpoints_never_unpickle_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pt", "wb") as f:
        pickle.dump({"format": "rnnprobe.checkpoint", "x": _Boom()}, f)
    with pytest.raises(StoreFormatError, match="weights-only"):
        load_checkpoint("evil.pt")
    assert not (tmp_path / "PWNED").exists()


def test_shipped_unknown_name_lists_available():
    with pytest.raises(UnknownNameError, match=r"'nope' is not a shipped model\. Available: "):
        zoo.load("nope")


def test_training_is_deterministic_and_learns():
    task = FlipFlop(2, n_steps=20, p_pulse=0.1)

    def run():
        torch.manual_seed(0)
        model = zoo.GRU(2, 8, 2)
        return model, train(model, task, steps=80, lr=2e-2, batch_size=32, progress=False)

    (a, history_a), (b, history_b) = run(), run()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert history_a.loss == history_b.loss
    assert history_a.loss[-1] < 0.5 * history_a.loss[0]
    assert history_a.eval_metric[-1] > 0.85  # chance is 0.5
    assert not a.training


def test_train_bad_input():
    with pytest.raises(ArgumentError, match="steps: got 0"):
        train(zoo.GRU(2, 3, 2), FlipFlop(2), steps=0, progress=False)
    with pytest.raises(ArgumentTypeError, match=r"Pass an rnnprobe\.tasks Task"):
        train(zoo.GRU(2, 3, 2), "flipflop", steps=1, progress=False)
    with pytest.raises(ArgumentError, match="lr: got -1"):
        train(zoo.GRU(2, 3, 2), FlipFlop(2), steps=1, lr=-1, progress=False)


@pytest.mark.parametrize("name", sorted(__import__("rnnprobe.models.recipes", fromlist=["RECIPES"]).RECIPES))
def test_every_recipe_builds_trains_and_evaluates(name):
    from rnnprobe.models.recipes import RECIPES, evaluate_recipe

    recipe = RECIPES[name]
    model, task = recipe.build(seed=0)
    again, _ = recipe.build(seed=0)
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)  # seeded initialisation
    train(model, task, steps=2, lr=recipe.lr, batch_size=4, progress=False)
    model.train()
    metrics = evaluate_recipe(name, model, task, n=24)
    assert metrics and all(isinstance(v, (int, float)) for v in metrics.values())
    assert model.training  # (the caller's mode, restored)
    doubled = evaluate_recipe(name, model.double(), task, n=24)  # float64 trials for a float64 model: the same
    assert doubled.keys() == metrics.keys()  # metrics (the float32 run's outputs to rounding; 24 trials, no tie)
    np.testing.assert_allclose(list(doubled.values()), list(metrics.values()), rtol=1e-5)


SHIPPED_GOALS = {  # name -> (metric key, check); the acceptance figures
    "flipflop-gru": ("test_sign_accuracy", lambda v: v >= 0.995),
    "flipflop-gru64": ("test_sign_accuracy", lambda v: v >= 0.995),
    "flipflop-lstm": ("test_sign_accuracy", lambda v: v >= 0.995),
    "retrieval-fastweights": ("test_error", lambda v: v < 0.30),
    "retrieval-lstm": ("test_error", lambda v: v > 0.50),
    "occluded-b": ("test_accuracy", lambda v: v > 0.5),
    "occluded-bk": ("test_accuracy", lambda v: v > 0.5),
    "occluded-bf": ("test_accuracy", lambda v: v > 0.5),
    "occluded-bl": ("test_accuracy", lambda v: v > 0.7),
    "occluded-blt": ("test_accuracy", lambda v: v > 0.7),
}


def test_shipped_blt_family_orders_as_the_paper_on_heavy_occlusion():
    heavy = {name: zoo.load(name).checkpoint["metrics"]["test_accuracy_occlusion_12"]
             for name in ("occluded-b", "occluded-bk", "occluded-bf", "occluded-bl", "occluded-blt")}  # fmt: skip
    for recurrent in ("occluded-bl", "occluded-blt"):
        for feedforward in ("occluded-b", "occluded-bk", "occluded-bf"):
            assert heavy[recurrent] > heavy[feedforward], (recurrent, feedforward, heavy)


def test_shipped_energy_efficient_rnn_predicts():
    metrics = zoo.load("energy-efficient").checkpoint["metrics"]
    assert metrics["mean_abs_preactivation_after_first_step"] < metrics["input_only_baseline"]
    assert metrics["n_prediction_units"] > 0


@pytest.mark.parametrize("name", sorted(SHIPPED_GOALS))
def test_shipped_checkpoints_load_and_perform(name):
    from rnnprobe.models.recipes import RECIPES

    assert name in zoo.available()
    model = zoo.load(name)
    key, goal = SHIPPED_GOALS[name]
    assert goal(model.checkpoint["metrics"][key])
    assert model.checkpoint["model_config"] == RECIPES[name].make_model().config  # made by its recipe
    # recompute on fresh held-out trials rather than trusting the stored number
    task = task_from_checkpoint(model)
    data = task.sample(256, split="test", index=7)
    with torch.no_grad():
        value = task.metric(model(data.x), data)
    assert goal(1 - value if key == "test_error" else value)


def _edited(tmp_path, change):
    model = zoo.GRU(2, 6, 2)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model)
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(format_version=99), "says checkpoint format 99"),
        (lambda p: p.pop("format_version"), "says checkpoint format None"),
        (lambda p: p.pop("state_dict"), "is damaged: state_dict"),
        (lambda p: p["model_config"].update(bogus=1), "does not build a GRU"),
        (
            lambda p: p["model_config"].update(hidden_size=60000),
            r"disagree: readout.weight \(config \(2, 60000\), weights \(2, 6\)\)",
        ),
        (lambda p: p["state_dict"].pop("readout.bias"), "disagree: readout.bias"),
    ],
)
def test_crafted_checkpoints_are_refused_before_building(tmp_path, change, message):
    path = _edited(tmp_path, change)
    with pytest.raises((StoreFormatError, CheckpointError), match=message):
        load_checkpoint(path)


def test_checkpoint_path_type():
    with pytest.raises(ArgumentTypeError, match="path: got 5"):
        load_checkpoint(5)
