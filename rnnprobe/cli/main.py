"""The ``rnnprobe`` command: ``demo``, ``models``, ``machine``, and ``record`` / ``analyze`` / ``report`` from a
TOML configuration (see :mod:`rnnprobe.cli.config`). Errors are one line on stderr and exit status 2;
a command that fails writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import RnnprobeError
from .cluster import cluster_client

CONFIG_HELP = (
    "TOML configuration: models, stimuli, layers, analyses, neural RDMs (see `rnnprobe.cli.config`). A config runs "
    "code like a Python script (a factory names any importable function; a module beside it runs on import): "
    "run only configs you trust"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnprobe",
        description="Record, analyse and compare the hidden states of recurrent networks.",
    )
    parser.add_argument("--version", action="version", version=f"rnnprobe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    about = ("Compare the shipped models (BLT family on occluded digits, LSTM vs fast weights, flip-flop fixed "
             "points, energy-efficient RNN) and write a report.")  # fmt: skip
    demo = commands.add_parser("demo", help="compare the shipped trained models in one HTML report", description=about)
    demo.add_argument("--out", default="rnnprobe-demo", help="folder for report.html and report.json")
    demo.add_argument("--quick", action="store_true", help="fewer models and stimuli (under a minute)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    commands.add_parser("models", help="list the shipped trained models", description="List the shipped models.")
    about = ("Print this machine's CPU, numpy's BLAS library and kernel, and the thread settings; with --kernels, "
             "time rnnprobe's products under each OpenBLAS kernel this CPU runs and say which to set.")  # fmt: skip
    machine = commands.add_parser("machine", help="the CPU, BLAS kernel and threads; the fastest BLAS kernel",
                                  description=about)  # fmt: skip
    machine.add_argument("--kernels", action="store_true", help="time each OpenBLAS kernel (a fresh Python each)")
    machine.add_argument("--size", action="append", default=None, metavar="STEPS,ROWS,UNITS",
                         help="with --kernels: time STEPS Gram products of ROWS x UNITS instead of the default two "
                         "(repeatable: --size 50,92,512 --size 1,2000,4096)")  # fmt: skip
    machine.add_argument("--threads", type=int, default=1, help="with --kernels: BLAS threads per run (default 1)")
    machine.add_argument("--seconds", type=float, default=0.5, help="time per product and kernel (default 0.5)")
    for name, text in (
        ("record", "record every configured model's states into <output>/recordings/<model>.zarr"),
        ("analyze", "run the configured analyses on the recordings; print the summary, write analysis.json"),
        ("report", "run the configured analyses and write <output>/report.html (+ report.json)"),
    ):
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("config", help=CONFIG_HELP)
        sub.add_argument("--no-progress", action="store_true", help="hide progress bars")
        sub.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="run on a running dask scheduler (tcp://host:8786, or its scheduler file): record "
                         "shards the stimuli over its workers into the stores (a file system they share); "
                         "analyze and report open the stores dask-backed and run the blockwise analyses there. "
                         "A factory's module beside the config is sent to the workers")  # fmt: skip
        sub.add_argument("--device", default=None, metavar="DEVICE",
                         help="a torch device, e.g. cuda: record runs the models there; analyze and report run "
                         "every analysis that has a device path there (RDMs, decoding, encoding, PCA, alignment, "
                         "fixed points)")  # fmt: skip
        if name == "report":
            sub.add_argument("--export", action="append", default=[], choices=["png", "svg", "pdf"],
                             metavar="FORMAT", help="also write every figure as png, svg or pdf (repeatable: "
                             "--export png --export pdf)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rnnprobe`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(out=args.out, quick=args.quick, progress=False if args.no_progress else None)
        elif args.command == "models":
            _models()
        elif args.command == "machine":
            _machine(args)
        else:
            _configured(args)
    except RnnprobeError as exc:
        print(f"rnnprobe {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


def _models() -> None:
    from ..models import load
    from ..models.shipped import available

    rows = []
    for name in available():
        model = load(name)
        info = model.checkpoint
        metrics = {k: v for k, v in info["metrics"].items() if k.startswith("test_") and "occlusion" not in k}
        metric = ", ".join(f"{k[5:]} {v:.3f}" for k, v in metrics.items() if k != "test_error") or ", ".join(
            f"{k} {v:.3g}" for k, v in info["metrics"].items() if k not in ("train_seconds", "steps", "seed")
        )
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, info["model_class"], info["task_class"], f"{params:,}", metric))
    header = ("name", "model", "task", "parameters", "held-out metrics")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    print("\nload one with rnnprobe.models.load(name); its task with rnnprobe.models.task_from_checkpoint(model)")


def _machine(args: argparse.Namespace) -> None:
    from ..analysis.machine import compare_blas_kernels, describe_machine
    from ..errors import ArgumentError

    if not args.kernels and (args.size is not None or args.threads != 1):
        raise ArgumentError("--size/--threads: they set what --kernels times; add --kernels.")
    sizes = None
    if args.size is not None:
        try:
            sizes = [tuple(int(v) for v in size.split(",")) for size in args.size]
        except ValueError:
            message = f"--size: got {args.size!r}; pass STEPS,ROWS,UNITS as integers, e.g. 50,92,512."
            raise ArgumentError(message) from None
    print(describe_machine(torch=True), flush=True)
    if args.kernels:
        print(compare_blas_kernels(sizes=sizes, threads=args.threads, seconds=args.seconds))


def _configured(args: argparse.Namespace) -> None:
    """Record / analyze / report: read and check the whole configuration, then run."""
    from .._validation import check_device
    from ..report import write_atomic
    from .config import build_model, check_interventions, check_layers, load_config

    config = load_config(args.config)
    device = check_device(args.device)  # before any work
    progress = False if args.no_progress else None  # bars only on a terminal
    base = config.path.parent
    models = {spec.name: build_model(spec, base) for spec in config.models}
    check_layers(config, models)
    check_interventions(config, models)
    with cluster_client(args.scheduler) as client:
        if args.command == "record":
            _record(config, models, progress, client, device)
            return
        comparison = _analyze(config, models, progress, client, device)
    if args.command == "analyze":
        from ..report import Report

        report = comparison.to_report(Report(f"rnnprobe analyze: {config.path.name}"))
        _print_table(comparison.table())
        config.output.mkdir(parents=True, exist_ok=True)
        out = config.output / "analysis.json"
        write_atomic(out, report.to_json().encode("utf-8"))
        print(f"numbers written: {out.resolve()}")
    else:
        report = comparison.to_report(title=f"rnnprobe report: {config.path.name}")
        config.output.mkdir(parents=True, exist_ok=True)
        path = report.save(config.output / "report.html", data=True, export=args.export)
        _print_table(comparison.table())
        print(f"report written: {path.resolve()}")


def _record(config: Any, models: dict[str, Any], progress: bool, client: Any = None, device: Any = None) -> None:
    """Record every model into a temporary folder, then move the stores into place: a model that
    fails to record (e.g. stimuli of the wrong shape) leaves nothing behind.
    """
    import shutil
    import tempfile

    import torch

    from ..recording import record
    from ..recording.store import check_store_path, publish_store
    from .config import fingerprint, load_stimuli

    torch.set_num_threads(1)
    specs = [*config.models, *config.interventions]
    for spec in specs:  # before any work: a folder of the user's own files is never replaced
        try:
            check_store_path(config.recording_path(spec.name), overwrite=True)
        except RnnprobeError as exc:
            raise RnnprobeError(f"output: {exc}") from None
    x, metadata = load_stimuli(config, next(iter(models.values())))
    config.output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{config.output.name}-recording-", dir=config.output.parent))
    try:
        done = []
        for spec in specs:
            path = staging / config.recording_path(spec.name).name
            model_spec = next(m for m in config.models if m.name == getattr(spec, "model", spec.name))
            rec = record(models[model_spec.name], x, layers=model_spec.layers, metadata=metadata or None, store=path,
                         sequence=model_spec.sequence, provenance={"cli": fingerprint(config, spec)},
                         interventions=getattr(spec, "change", None), progress=progress, client=client,
                         device=device)  # fmt: skip
            done.append((spec.name, rec, path))
        for name, rec, path in done:
            final = config.recording_path(name)
            final.parent.mkdir(parents=True, exist_ok=True)
            publish_store(path, final, overwrite=True)  # replaces only an rnnprobe store, never other files
            print(f"{name}: {rec.n_stimuli} stimuli, layers {', '.join(rec.layers)} -> {final}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _analyze(config: Any, models: dict[str, Any], progress: bool, client: Any = None, device: Any = None) -> Any:
    from ..analysis import compare_models
    from ..errors import StoreNotFoundError
    from ..recording import Recording
    from .config import ConfigError, fingerprint, load_neural, load_responses, load_stimuli

    recordings = {}
    for spec in [*config.models, *config.interventions]:
        path = config.recording_path(spec.name)
        if not path.exists():
            raise StoreNotFoundError(
                f"{spec.name}: no recording at {str(path)!r}. Run `rnnprobe record {config.path}` first."
            )
        recordings[spec.name] = Recording.load(path, chunks="auto" if client is not None else None)
        made_by = recordings[spec.name].provenance.get("cli")
        if made_by is not None and made_by != fingerprint(config, spec):
            raise ConfigError(
                f"{spec.name}: the recording at {str(path)!r} was made from another configuration of this model "
                f"(its model, layers or stimuli changed since). Run `rnnprobe record {config.path}` again."
            )
    neural, subjects = load_neural(config)
    responses = load_responses(config)
    settings = dict(config.analyses)
    run = settings.pop("run", None)  # None: what the given inputs allow, as compare_models decides
    fp_layers = {s.name: s.fixed_point_layers for s in config.models if s.fixed_point_layers}
    run = _analyses(config, run, neural, subjects, responses, len(recordings))
    wanted = {"fixed_points", "speed_accuracy", "interventions"} & set(run or ())
    stimuli = load_stimuli(config, next(iter(models.values())))[0] if wanted - {"fixed_points"} else None
    return compare_models(
        recordings, analyses=run, neural=neural or None, subjects=subjects or None, responses=responses or None,
        models=models if wanted else None, fixed_point_layers=fp_layers or None, stimuli=stimuli,
        fixed_point_modules=_fixed_point_modules(config, models) if "fixed_points" in wanted else None,
        interventions={i.name: (i.model, i.change) for i in config.interventions} or None, progress=progress,
        device=device, **settings,
    )  # fmt: skip


def _analyses(config: Any, run: Any, neural: Any, subjects: Any, responses: Any, n_models: int) -> Any:
    """The analyses to run: as configured; unset, what compare_models runs by default on the given inputs,
    plus the configured interventions (fixed points and speed-accuracy only when asked for).
    """
    if run is not None or not config.interventions:
        return run
    from ..analysis.compare import analyses_to_run

    settings = config.analyses
    default = analyses_to_run(None, neural=neural, target=settings.get("target"), models=None, responses=responses,
                              n_models=n_models, variables=settings.get("variables"),
                              parameters=settings.get("parameters"))  # fmt: skip
    return [*default, "interventions"]


def _fixed_point_modules(config: Any, models: dict[str, Any]) -> dict[str, str]:
    """Per model, the recurrent submodule whose fixed points are searched (checked here, used by compare_models)."""
    from ..models import from_module
    from .config import ConfigError

    out = {}
    for spec in config.models:
        if spec.fixed_point_module is not None:
            try:
                from_module(models[spec.name].get_submodule(spec.fixed_point_module))
            except (AttributeError, RnnprobeError) as exc:
                raise ConfigError(f"models.{spec.name}.fixed_point_module: {exc}") from None
            out[spec.name] = spec.fixed_point_module
    return out


def _print_table(table: dict[str, list[Any]]) -> None:
    from ..report import format_value

    for i, model in enumerate(table["model"]):
        print(f"{model}: " + ", ".join(f"{k} {format_value(v[i])}" for k, v in table.items() if k != "model"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
