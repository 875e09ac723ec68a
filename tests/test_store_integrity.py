"""Nothing incomplete loads as complete, the previous store survives, nothing the user owns is deleted:
saving over the store being read, concurrent writers, SIGKILL mid-way, deleted and corrupted chunks,
hand-edited headers."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from rnnprobe import Recording
from rnnprobe.errors import IncompleteStoreError, StoreExistsError, StoreFormatError
from rnnprobe.testing import assert_recordings_equal, make_recording


def _header(path):
    return json.loads((path / "zarr.json").read_text())


def _edit_header(path, **changes):
    meta = _header(path)
    meta["attributes"]["rnnprobe"].update(changes)
    (path / "zarr.json").write_text(json.dumps(meta))


def test_saving_over_the_store_a_recording_reads_from_is_refused(tmp_path):
    path = make_recording(20, 3, 4, seed=0).save(tmp_path / "r.zarr", chunk_stimuli=5)
    rec = Recording.load(path)
    for source in (rec, rec.select(stimuli=slice(0, 10))):
        with pytest.raises(StoreExistsError, match="is the store this recording reads from"):
            source.save(path, overwrite=True)
    assert_recordings_equal(Recording.load(path), make_recording(20, 3, 4, seed=0))  # untouched, not zeros
    other = make_recording(8, 3, 4, seed=1)
    other.save(path, overwrite=True)  # another recording replaces it (written beside, then swapped)
    assert_recordings_equal(Recording.load(path), other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr"]


def test_overwrite_never_deletes_what_rnnprobe_did_not_write(tmp_path):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(StoreExistsError, match="not an rnnprobe store; refusing to delete it"):
        make_recording(4, 2, 2).save(mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "precious"


def test_concurrent_saves_one_wins_the_others_get_one_clear_error(tmp_path):
    path = tmp_path / "race.zarr"
    recs = [make_recording(400, 5, 64, seed=k) for k in range(4)]
    errors, barrier = [], threading.Barrier(len(recs))

    def save(rec):
        barrier.wait()
        try:
            rec.save(path, chunk_stimuli=20)
        except StoreExistsError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(rec,)) for rec in recs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == len(recs) - 1
    loaded = Recording.load(path)
    assert any(np.array_equal(loaded.get("h"), rec.get("h")) for rec in recs)  # one whole store
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.zarr"]  # no partial left behind


def test_missing_and_corrupt_chunks_are_errors_naming_the_layer(tmp_path):
    rec = Recording({"h": np.arange(40.0).reshape(10, 2, 2), "z": np.zeros((10, 1, 1))},
                    metadata={"label": np.arange(10)})  # fmt: skip
    path = rec.save(tmp_path / "r.zarr", chunk_stimuli=4)
    header = _header(path)["attributes"]["rnnprobe"]
    assert header["chunks"]["states/0"] == 3 and header["chunks"]["states/1"] == 3  # all-zero chunks too
    assert_recordings_equal(Recording.load(path), rec)

    broken = rec.save(tmp_path / "missing.zarr", chunk_stimuli=4)
    os.remove(broken / "states" / "0" / "c" / "1" / "0" / "0")
    with pytest.raises(StoreFormatError, match=r"layer 'h' has 2 of its 3 chunk files"):
        Recording.load(broken)
    no_labels = rec.save(tmp_path / "labels.zarr", chunk_stimuli=4)
    for root, _, files in os.walk(no_labels / "metadata"):
        for f in files:
            if "zarr.json" not in f:
                os.remove(os.path.join(root, f))
    with pytest.raises(StoreFormatError, match="metadata column 'label' has 0 of its 1 chunk files"):
        Recording.load(no_labels)

    corrupt = rec.save(tmp_path / "corrupt.zarr", chunk_stimuli=4)
    chunk = corrupt / "states" / "0" / "c" / "2" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    loaded = Recording.load(corrupt)
    np.testing.assert_array_equal(loaded.get("h", stimuli=slice(0, 8)), rec.get("h", stimuli=slice(0, 8)))
    with pytest.raises(StoreFormatError, match=r"layer 'h', stimuli 0\.\.9: a chunk could not be read"):
        loaded.get("h")


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"complete": "no"}, IncompleteStoreError, "is incomplete"),
        ({"complete": 1}, IncompleteStoreError, "is incomplete"),
        ({"format_version": 0}, StoreFormatError, "says store format 0"),
        ({"format_version": 99}, StoreFormatError, "format 99.*Upgrade rnnprobe"),
        ({"format_version": None}, StoreFormatError, "says store format None"),
        ({"layers": None, "metadata": None}, StoreFormatError, "damaged"),
    ],
)
def test_hand_edited_headers_are_refused(tmp_path, changes, error, message):
    path = make_recording(6, 2, 2).save(tmp_path / "r.zarr")
    _edit_header(path, **changes)
    if changes.get("layers", 0) is None:  # keys removed rather than set
        meta = _header(path)
        for key in changes:
            del meta["attributes"]["rnnprobe"][key]
        (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(error, match=message):
        Recording.load(path)


def test_truncated_header_is_refused(tmp_path):
    path = make_recording(6, 2, 2).save(tmp_path / "r.zarr")
    text = (path / "zarr.json").read_text()
    (path / "zarr.json").write_text(text[: len(text) // 2])
    with pytest.raises(StoreFormatError, match=r"unreadable zarr\.json"):
        Recording.load(path)


SLOW_RECORDING = textwrap.dedent("""
    import sys, time, torch, rnnprobe
    from torch import nn

    class Slow(nn.Module):
        def __init__(self):
            super().__init__()
            self.h = rnnprobe.Tap()
        def forward(self, x):
            time.sleep(0.2)
            return self.h(x)

    print("started", flush=True)
    rnnprobe.record(Slow(), torch.ones(400, 8), batch_size=8, chunk_stimuli=8, store=sys.argv[1],
                    overwrite=True, progress=False)
""")


@pytest.mark.slow
def test_sigkill_during_an_overwrite_keeps_the_previous_store(tmp_path):
    path = tmp_path / "r.zarr"
    before = make_recording(30, 1, 8, seed=2, layer="h")
    before.save(path)
    script = tmp_path / "slow.py"
    script.write_text(SLOW_RECORDING)
    with subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline().strip() == "started"
        deadline = time.time() + 60
        while not [p for p in tmp_path.iterdir() if ".rnnprobe-partial-" in p.name] and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # some chunks written
        proc.send_signal(signal.SIGKILL)
    # (leaving the block waits for the process and closes its pipe)
    assert_recordings_equal(Recording.load(path), before)  # the previous store survived
    (partial,) = [p for p in tmp_path.iterdir() if ".rnnprobe-partial-" in p.name]
    with pytest.raises(IncompleteStoreError):
        Recording.load(partial)  # the leftover is recognisable and never loads
    after = make_recording(5, 1, 8, seed=3, layer="h")
    after.save(path, overwrite=True)  # a later write replaces the store and removes the dead writer's partial
    assert_recordings_equal(Recording.load(path), after)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr", "slow.py"]
