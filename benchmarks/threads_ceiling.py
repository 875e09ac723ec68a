"""How much faster can two cores make each heavy analysis on this machine at all? (issue 20, goal 3)

Run:  python benchmarks/threads_ceiling.py [--repeats 3] [--only "decoding"]

Two threads share one interpreter (its lock), one allocator and the cores' caches and memory. Two processes
share only the hardware. This script runs each case of ``benchmarks/threads.py`` on one thread in a process
alone, then the same one-thread call in two processes at once (started together at a barrier; cases under
0.1 s as blocks of consecutive calls, the first of each block not counted), alternating, and prints the
ceiling 2 x (time alone) / (time of each of two at once): the speed-up that two cores give a case when
nothing of the program is shared. In the same run, the parent process times the case on 1 and on 2 threads
as ``threads.py`` does (results checked equal first, and the two processes' results equal to the parent's).
Where the threads' speed-up stays under the goal (1.7x) and the ceiling does too, the machine's shared
caches and memory bandwidth, not the interpreter lock or a serial part of rnnprobe, hold the case back.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics

import numpy as np
from _machine import print_machine
from threads import arguments, cases, run


def _worker(rank: int, quick: bool, commands, results, barrier) -> None:
    """A process of one thread that runs the cases it is sent: (name, calls, together) -> (rank, times, out)."""
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    torch.set_num_threads(1)
    work = cases(quick)
    while (command := commands.get()) is not None:
        name, calls, together = command
        if together:
            barrier.wait()
        times, out = run(work[name], 1, calls)
        results.put((rank, times[1:] if calls > 1 else times, out))


def _processes(commands: list, results, name: str, calls: int, *, together: bool) -> tuple[list[float], list]:
    """Per-call times of ``name`` in one process (``together=False``) or in both at once, and their results."""
    ranks = (0, 1) if together else (0,)
    for rank in ranks:
        commands[rank].put((name, calls, together))
    replies = sorted((results.get() for _ in ranks), key=lambda reply: reply[0])
    return [t for _, times, _ in replies for t in times], [out for *_, out in replies]


def _case(name: str, fn, commands: list, results, repeats: int) -> tuple[float, float, float, float]:
    """(1 thread, 2 threads, one process alone, each of two processes at once) median seconds per call."""
    (first,), one = run(fn, 1)  # warm-up, and the reference results
    _, two = run(fn, 2)
    np.testing.assert_allclose(two, one, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)
    calls = 1 if first > 0.1 else max(3, int(0.2 / first))  # as threads.py: short cases in blocks of calls
    rounds = repeats if calls == 1 else max(repeats, round(1.0 / (calls * first)))
    _, outs = _processes(commands, results, name, 1, together=True)  # the processes' warm-up
    for out in outs:
        np.testing.assert_allclose(out, one, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)
    times: dict[str, list[float]] = {"1": [], "2": [], "alone": [], "together": []}
    for _ in range(rounds):
        for threads in (1, 2):
            block = run(fn, threads, calls)[0]
            times[str(threads)] += block[1:] if calls > 1 else block
        times["alone"] += _processes(commands, results, name, calls, together=False)[0]
        times["together"] += _processes(commands, results, name, calls, together=True)[0]
    return tuple(statistics.median(times[key]) for key in ("1", "2", "alone", "together"))


def main() -> None:
    args = arguments(__doc__)
    print_machine()
    print("1 / 2 threads in this process (threadpoolctl + torch.set_num_threads); then one thread in one process "
          "alone / in each of two processes at once; ceiling = 2 x alone / at once; goal >= 1.7x")  # fmt: skip
    context = mp.get_context("spawn")  # fresh interpreters: no thread pools inherited from a fork
    commands, results, barrier = [context.Queue(), context.Queue()], context.Queue(), context.Barrier(2)
    workers = [context.Process(target=_worker, args=(rank, args.quick, commands[rank], results, barrier))
               for rank in (0, 1)]  # fmt: skip
    for worker in workers:
        worker.start()
    try:
        for name, fn in cases(args.quick).items():
            if args.only not in name:
                continue
            t1, t2, alone, together = _case(name, fn, commands, results, args.repeats)
            print(f"  {name:52s} threads {t1 * 1e3:8.1f} / {t2 * 1e3:8.1f} ms {t1 / t2:5.2f}x   processes "
                  f"{alone * 1e3:8.1f} / {together * 1e3:8.1f} ms, ceiling {2 * alone / together:5.2f}x",
                  flush=True)  # fmt: skip
    finally:
        for queue in commands:
            queue.put(None)
        for worker in workers:
            worker.join(timeout=60)


if __name__ == "__main__":
    main()
