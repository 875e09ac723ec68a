import collections
import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import rnnprobe
from rnnprobe import Recording, Tap, record, recordable
from rnnprobe.errors import (
    ArgumentError,
    ArgumentTypeError,
    ModelCallError,
    NonFiniteWarning,
    RnnprobeWarning,
    ShapeError,
    StoreExistsError,
    UnknownNameError,
)


class Repeated(nn.Module):
    """Calls `block` T times; step t's output is known in closed form: x * (t + 1) + t."""

    def __init__(self, steps=4):
        super().__init__()
        self.steps = steps
        self.block = nn.Identity()
        self.tap = Tap()

    def forward(self, x):
        for t in range(self.steps):
            self.tap(self.block(x * (t + 1) + t))
        return x


class LoopCell(nn.Module):
    """A user's own recurrent loop over nn.LSTMCell with a per-step readout."""

    def __init__(self):
        super().__init__()
        self.cell = nn.LSTMCell(3, 5)
        self.readout = nn.Linear(5, 2)

    def forward(self, x):
        h = c = torch.zeros(x.shape[0], 5)
        outs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(self.readout(h))
        return torch.stack(outs, 1)


class MiniBLT(nn.Module):
    """A BLT-style conv net: the same conv block is called once per time step, with lateral recurrence."""

    def __init__(self, steps=3):
        super().__init__()
        self.steps = steps
        self.bottom_up = nn.Conv2d(1, 4, 3, padding=1)
        self.lateral = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.readout = nn.Linear(4, 3)

    def forward(self, x):
        a = None
        outs = []
        for _ in range(self.steps):
            pre = self.bottom_up(x) + (self.lateral(a) if a is not None else 0)
            a = self.act(pre)
            outs.append(self.readout(a.mean((2, 3))))
        return torch.stack(outs, 1)


class Parts(nn.Module):
    def forward(self, x):
        Out = collections.namedtuple("Out", ["mean", "extra"])
        return {"a": x * 2, "b": (x + 1, None, Out(x.mean(-1), "text"))}


class WithParts(nn.Module):
    def __init__(self):
        super().__init__()
        self.parts = Parts()

    def forward(self, x):
        return self.parts(x)


@dataclasses.dataclass
class DC:
    h: torch.Tensor
    n: int


class DataclassOut(nn.Module):
    def forward(self, x):
        return DC(x + 3, 1)


def test_repeated_calls_are_time_steps_in_order():
    x = torch.arange(6.0).reshape(3, 2)
    rec = record(Repeated(4), x, layers=["block"], batch_size=2, progress=False)
    assert rec.shapes == {"block": (3, 4, 2)}
    expected = np.stack([x.numpy() * (t + 1) + t for t in range(4)], axis=1)
    np.testing.assert_array_equal(rec["block"], expected)
    np.testing.assert_array_equal(rec.times["block"], np.arange(4))


def test_taps_are_the_default():
    rec = record(Repeated(3), torch.ones(2, 1), progress=False)
    assert rec.layers == ["tap"]
    np.testing.assert_array_equal(rec["tap"][0, :, 0], [1, 3, 5])


def test_default_layers_are_leaves():
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    rec = record(model, torch.randn(4, 2), progress=False)
    assert rec.layers == ["0", "2.0", "2.1"]


def test_in_place_ops_do_not_change_recorded_states():
    torch.manual_seed(0)
    model = MiniBLT(3)
    x = torch.randn(5, 1, 6, 6)
    rec = record(model, x, layers=["bottom_up", "lateral", "act", "readout"], batch_size=2, progress=False)
    assert rec.shapes["bottom_up"] == (5, 3, 4, 6, 6)
    assert rec.shapes["lateral"] == (5, 2, 4, 6, 6)  # lateral input only from the second step on
    with torch.no_grad():
        conv = model.bottom_up(x)
        a = torch.relu(conv)
        lateral1 = model.lateral(a)
        a2 = torch.relu(conv + lateral1)
    np.testing.assert_allclose(rec["bottom_up"][:, 0], conv.numpy(), atol=1e-6)
    assert rec["bottom_up"].min() < 0  # recorded before the in-place ReLU
    np.testing.assert_allclose(rec["lateral"][:, 0], lateral1.numpy(), atol=1e-6)
    np.testing.assert_allclose(rec["act"][:, 1], a2.numpy(), atol=1e-6)
    np.testing.assert_allclose(rec["readout"], model(x).detach().numpy(), atol=1e-6)


def test_lstm_sequence_outputs_and_hidden_states():
    torch.manual_seed(0)
    for batch_first in (True, False):
        lstm = nn.LSTM(3, 6, num_layers=2, batch_first=batch_first)
        x = torch.randn(7, 5, 3)  # 7 stimuli, 5 steps
        forward = None if batch_first else (lambda m, xb: m(xb.transpose(0, 1)))
        rec = record(lstm, x, forward=forward, batch_size=3, progress=False)
        assert rec.layers == ["output", "h_n", "c_n"]
        with torch.no_grad():
            out, (h_n, c_n) = lstm(x if batch_first else x.transpose(0, 1))
        out = out if batch_first else out.transpose(0, 1)
        np.testing.assert_allclose(rec["output"], out.numpy(), atol=1e-6)
        assert rec.shapes["h_n"] == (7, 1, 2, 6)
        np.testing.assert_allclose(rec["h_n"][:, 0], h_n.transpose(0, 1).numpy(), atol=1e-6)
        np.testing.assert_allclose(rec["c_n"][:, 0], c_n.transpose(0, 1).numpy(), atol=1e-6)


def test_lstm_unrolled_cell_states_every_layer():
    torch.manual_seed(3)
    model = nn.Sequential()
    model.add_module("lstm", nn.LSTM(4, 8, num_layers=3, batch_first=True))
    x = torch.randn(10, 12, 4)
    names = ["lstm:output", "lstm:c_n"] + [f"lstm:l{k}.{s}" for k in range(3) for s in "hcifgo"]
    rec = record(model, x, layers=names, batch_size=4, progress=False)
    assert rec.layers == names
    with torch.no_grad():
        out, (h_n, c_n) = model.lstm(x)
    np.testing.assert_allclose(rec["lstm:l2.h"], out.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(rec["lstm:output"], out.numpy(), rtol=0, atol=1e-6)
    for k in range(3):
        np.testing.assert_allclose(rec[f"lstm:l{k}.c"][:, -1], c_n[k].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(rec[f"lstm:l{k}.h"][:, -1], h_n[k].numpy(), rtol=0, atol=1e-6)
    # after recording, the module is its fused self again
    assert "forward" not in vars(model.lstm)


def test_gru_bidirectional_layers():
    torch.manual_seed(4)
    gru = nn.GRU(2, 3, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(5, 6, 2)
    rec = record(gru, x, layers=["output", "l1.h", "l1_reverse.h", "l0.z"], progress=False)
    with torch.no_grad():
        out, _ = gru(x)
    np.testing.assert_allclose(rec["l1.h"], out[..., :3].numpy(), atol=1e-6)
    np.testing.assert_allclose(rec["l1_reverse.h"], out[..., 3:].numpy(), atol=1e-6)
    assert 0 <= rec["l0.z"].min() and rec["l0.z"].max() <= 1


def test_lstm_cell_loop_records_h_and_c():
    torch.manual_seed(5)
    model = LoopCell()
    x = torch.randn(6, 4, 3)
    rec = record(model, x, layers=["cell", "readout"], progress=False)
    assert rec.layers == ["cell:h", "cell:c", "readout"]
    assert rec.shapes["cell:c"] == (6, 4, 5)
    lstm = nn.LSTM(3, 5, batch_first=True)
    lstm.load_state_dict({k + "_l0": v for k, v in model.cell.state_dict().items()})
    with torch.no_grad():
        out, (_, c_n) = lstm(x)
    np.testing.assert_allclose(rec["cell:h"], out.numpy(), atol=1e-6)
    np.testing.assert_allclose(rec["cell:c"][:, -1], c_n[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(rec["readout"], model(x).detach().numpy(), atol=1e-6)


def test_tuple_dict_namedtuple_and_dataclass_outputs():
    x = torch.randn(4, 3)
    rec = record(WithParts(), x, layers=["parts"], progress=False)
    assert rec.layers == ["parts:a", "parts:b.0", "parts:b.2.mean"]  # None and str are not states
    np.testing.assert_allclose(rec["parts:b.2.mean"][:, 0], x.mean(-1).numpy())
    one = record(WithParts(), x, layers=["parts:b.0"], progress=False)
    np.testing.assert_allclose(one["parts:b.0"][:, 0], (x + 1).numpy())
    with pytest.raises(UnknownNameError, match=r"'parts:c' is not in the output of 'parts'.*'parts:a', 'parts:b.0'"):
        record(WithParts(), x, layers=["parts:c"], progress=False)
    model = nn.Sequential(DataclassOut())
    rec = record(model, x, progress=False)
    assert rec.layers == ["0:h"]


def test_sequence_option_for_whole_sequence_modules():
    torch.manual_seed(6)

    class SeqModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(2, 4, batch_first=True)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(self.rnn(x)[0])

    x = torch.randn(5, 7, 2)
    with pytest.warns(RnnprobeWarning, match=r"'fc' was called once .* pass sequence=\['fc'\]"):
        plain = record(SeqModel(), x, layers=["fc"], progress=False)  # detected, and said what to pass
    assert plain.shapes["fc"] == (5, 1, 7, 3)
    seq = record(SeqModel(), x, layers=["fc"], sequence=["fc"], progress=False)
    assert seq.shapes["fc"] == (5, 7, 3)
    with pytest.raises(UnknownNameError, match="sequence: 'rnn'"):
        record(SeqModel(), x, layers=["fc", "rnn"], sequence=["rnn"], progress=False)


def test_own_provenance_is_kept(tmp_path):
    rec = record(nn.Sequential(Tap()), torch.zeros(3, 2), provenance={"config": "a.toml"}, progress=False)
    assert rec.provenance["config"] == "a.toml" and rec.provenance["n_stimuli"] == 3
    with pytest.raises(ArgumentTypeError, match="provenance: must be JSON-serialisable"):
        record(nn.Sequential(Tap()), torch.zeros(3, 2), provenance={"x": object()}, progress=False)


def test_batching_does_not_change_results(tmp_path):
    torch.manual_seed(7)
    model = MiniBLT(3)
    x = torch.randn(11, 1, 5, 5)
    ref = record(model, x, layers=["act", "readout"], batch_size=11, progress=False)
    for batch_size in (1, 4):
        rec = record(model, x, layers=["act", "readout"], batch_size=batch_size, progress=False)
        for name in ref.layers:
            np.testing.assert_allclose(rec[name], ref[name], rtol=0, atol=1e-6)
    stored = record(
        model,
        x.numpy().astype(np.float64),  # numpy float64 stimuli are cast to the model's float32
        layers=["act", "readout"],
        batch_size=4,
        chunk_stimuli=3,
        store=tmp_path / "rec.zarr",
        metadata={"label": np.arange(11) % 3},
        progress=False,
    )
    assert stored.is_lazy
    for name in ref.layers:
        np.testing.assert_allclose(stored[name], ref[name], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(stored.column("label"), np.arange(11) % 3)
    assert Recording.load(tmp_path / "rec.zarr").provenance == stored.provenance


def test_float16_storage_and_provenance():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Linear(3, 4))
    x = torch.randn(5, 3)
    rec = record(model, x, dtype="float16", seed=11, batch_size=2, progress=False)
    assert rec.dtypes["0"] == np.float16
    np.testing.assert_allclose(rec["0"][:, 0], model(x).detach().numpy(), atol=2e-3)
    prov = rec.provenance
    assert prov["model_class"] == "torch.nn.modules.container.Sequential"
    assert prov["layers"] == ["0"] and prov["seed"] == 11 and prov["storage_dtype"] == "float16"
    assert prov["rnnprobe_version"] == rnnprobe.__version__ and prov["n_stimuli"] == 5
    assert prov["date"].endswith("+00:00")


def test_seed_makes_stochastic_models_reproducible_without_touching_global_rng():
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.noise = Tap()

        def forward(self, x):
            return self.noise(x + torch.randn_like(x))

    x = torch.zeros(6, 2)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = record(Noisy(), x, seed=1, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    b = record(Noisy(), x, seed=1, progress=False)
    c = record(Noisy(), x, seed=2, progress=False)
    np.testing.assert_array_equal(a["noise"], b["noise"])
    assert not np.array_equal(a["noise"], c["noise"])


def test_nonfinite_values_warn_with_layer_time_and_count(tmp_path):
    class Blows(nn.Module):
        def __init__(self):
            super().__init__()
            self.h = Tap()

        def forward(self, x):
            for t in range(4):
                self.h(x / 0 if t == 2 else x)  # x / 0: inf, or nan where x == 0

    x = torch.tensor([[1.0, 0.0], [2.0, 3.0], [1.0, 1.0]])
    for store in (None, tmp_path / "blows.zarr"):  # counted beside the next batch in memory, at once for a store
        with pytest.warns(NonFiniteWarning, match=r"layer 'h' has 6 NaN/inf values at 1 time step\(s\): t=2: 6"):
            record(Blows(), x, batch_size=2, store=store, progress=False)
    with pytest.warns(NonFiniteWarning, match="t=0: 1"):  # float16 overflow is caught too
        record(nn.Sequential(nn.Identity()), torch.tensor([[1e6], [1.0]]), dtype="float16", progress=False)


def test_model_state_is_restored_even_on_error():
    torch.manual_seed(9)

    class FailsLater(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(2, 3, batch_first=True)
            self.drop = nn.Dropout(0.3)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("out of memory (simulated)")
            return self.drop(self.lstm(x)[0])

    model = FailsLater().train()
    model.drop.eval()  # a mixed-mode model keeps its modes
    with pytest.raises(ModelCallError, match=r"failed on batch 2 .*out of memory \(simulated\)"):
        record(model, torch.randn(10, 4, 2), layers=["lstm:l0.c"], batch_size=4, progress=False)
    assert model.training and not model.drop.training and model.lstm.training
    assert "forward" not in vars(model.lstm)
    assert not model.lstm._forward_hooks
    out = model.lstm(torch.randn(1, 4, 2))  # the fused module works as before
    assert out[0].shape == (1, 4, 3)


def test_interrupted_recording_leaves_the_previous_store(tmp_path):
    class Interrupted(nn.Module):
        def __init__(self):
            super().__init__()
            self.h = Tap()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return self.h(x)

    path = tmp_path / "cut.zarr"
    with pytest.raises(KeyboardInterrupt):
        record(Interrupted(), torch.randn(20, 3), batch_size=4, chunk_stimuli=4, store=path, progress=False)
    assert not path.exists() and list(tmp_path.iterdir()) == []  # nothing half-written anywhere
    first = record(nn.Sequential(Tap()), torch.randn(20, 3), store=path, progress=False)
    with pytest.raises(KeyboardInterrupt):  # an interrupted overwrite keeps the store that was there
        record(Interrupted(), torch.randn(20, 3), batch_size=4, chunk_stimuli=4, store=path, overwrite=True,
               progress=False)  # fmt: skip
    np.testing.assert_array_equal(Recording.load(path).get("0"), first.get("0"))
    rec = record(nn.Sequential(Tap()), torch.ones(12, 3), store=path, overwrite=True, progress=False)
    assert Recording.load(path).n_stimuli == rec.n_stimuli == 12 and [p.name for p in tmp_path.iterdir()] == [
        "cut.zarr"
    ]


def test_recordable_lists_names():
    names = recordable(LoopCell())
    assert names == ["cell", "cell:h", "cell:c", "readout"]
    lstm_names = recordable(nn.Sequential(nn.LSTM(2, 3, num_layers=2)))
    assert lstm_names[:4] == ["0", "0:output", "0:h_n", "0:c_n"]
    assert "0:l1.o" in lstm_names and "0:l2.h" not in lstm_names
    assert recordable(nn.GRU(2, 3, bidirectional=True)) == [
        "output", "h_n", "l0.h", "l0.r", "l0.z", "l0.n", "l0_reverse.h", "l0_reverse.r", "l0_reverse.z",
        "l0_reverse.n",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("stimuli", "kwargs", "error", "match"),
    [
        (torch.randn(4, 5, 3), {"layers": ["lstn"]}, UnknownNameError, r"'lstn' is not recordable in LoopCell.*'c"),
        (torch.randn(4, 5, 3), {"layers": ["cell:x"]}, UnknownNameError, r"'cell' is a LSTMCell whose parts are 'h'"),
        (torch.randn(4, 5, 3), {"layers": [3]}, ArgumentTypeError, "Layer names are strings"),
        (torch.randn(4, 5, 3), {"layers": []}, ArgumentError, "nothing to record"),
        (torch.randn(4, 5, 4), {}, ModelCallError, r"batch 0 \(Tensor of shape \(4, 5, 4\).*input has inconsistent"),
        (torch.randn(4, 3), {}, ModelCallError, "laid out"),
        (torch.zeros(0, 5, 3), {}, ShapeError, r"holds no stimuli"),
        (torch.tensor(1.0), {}, ShapeError, r"holds no stimuli"),
        ([[1.0, 2.0]], {}, ArgumentTypeError, "convert nested lists with np.asarray"),
        ("abc", {}, ArgumentTypeError, r"stimuli: got 'abc'"),
        (np.array([["a"]]), {}, ArgumentTypeError, "must be numeric"),
        ((torch.zeros(3, 5, 3), torch.zeros(2, 1)), {}, ShapeError, r"different numbers of stimuli \(\[3, 2\]\)"),
        (torch.randn(4, 5, 3), {"metadata": {"label": [1, 2]}}, ShapeError, "there are 4 stimuli"),
        (torch.randn(4, 5, 3), {"batch_size": 0}, ArgumentError, "batch_size: got 0. Pass a positive integer"),
        (torch.randn(4, 5, 3), {"dtype": "int8"}, ArgumentError, "floating-point storage dtype"),
        (torch.randn(4, 5, 3), {"store": 3}, ArgumentTypeError, "store: got 3"),
    ],
)
def test_bad_input(stimuli, kwargs, error, match):
    with pytest.raises(error, match=match):
        record(LoopCell(), stimuli, progress=False, **kwargs)


def test_bad_model_and_store_paths(tmp_path):
    with pytest.raises(ArgumentTypeError, match=r"Pass a torch\.nn\.Module"):
        record(lambda x: x, torch.zeros(2, 2))
    path = tmp_path / "exists.zarr"
    path.mkdir()
    (path / "data.txt").write_text("x")
    with pytest.raises(StoreExistsError, match="overwrite=True"):
        record(LoopCell(), torch.randn(2, 3, 3), store=path, progress=False)
    with pytest.raises(StoreExistsError, match="not an rnnprobe store"):
        record(LoopCell(), torch.randn(2, 3, 3), store=path, overwrite=True, progress=False)
    assert (path / "data.txt").exists()


def test_unused_module_and_variable_length_are_errors():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Identity()
            self.unused = nn.Linear(2, 2)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            for _ in range(2 if self.calls == 1 else 3):
                self.used(x)

    with pytest.raises(ArgumentError, match=r"'unused' .* was never called"):
        record(Skips(), torch.zeros(4, 2), layers=["unused"], progress=False)
    with pytest.raises(ShapeError, match=r"gave 3 time steps .* in batch 1, but 2 steps"):
        record(Skips(), torch.zeros(4, 2), layers=["used"], batch_size=2, progress=False)


def test_batch_axis_must_come_first():
    class SeqFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.h = Tap()

        def forward(self, x):
            return self.h(x.transpose(0, 1))

    with pytest.raises(ShapeError, match="first axis is not the batch of 3 stimuli"):
        record(SeqFirst(), torch.zeros(3, 5, 2), progress=False)


def test_progress_bar_is_optional(capsys):
    record(nn.Sequential(Tap()), torch.zeros(3, 2), progress=True)
    assert "record Sequential" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record(nn.Sequential(Tap()), torch.zeros(3, 2), progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on CI); the CPU path is tested above")
def test_record_on_cuda_equals_cpu():
    torch.manual_seed(10)
    model = MiniBLT(3)
    x = torch.randn(6, 1, 5, 5)
    cpu = record(model, x, layers=["act", "readout"], batch_size=4, progress=False)
    gpu = record(model, x, layers=["act", "readout"], batch_size=4, device="cuda", progress=False)
    assert next(model.parameters()).device.type == "cpu"  # moved back afterwards
    for name in cpu.layers:
        np.testing.assert_allclose(gpu[name], cpu[name], rtol=1e-4, atol=1e-5)
