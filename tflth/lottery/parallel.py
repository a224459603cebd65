"""Branches trained in separate processes (`--workers`): seeds side by side, and the controls
of a level beside the next level's ticket.

The parent only schedules: a task (seed, level, branch) starts once the ticket of level - 1
has finished (its masks come from there). Seeds go in order, so a stopped run leaves whole
seeds behind; within a seed, tickets go first since they are the critical path.
Each worker process loads the data and builds each seed's model once, and runs
`Replicate.branch`, which writes only inside its branch folder (and, for a ticket, the next
level's masks): one writer per file. A killed run resumes like a serial one. If a task fails
or a worker dies, the other workers are stopped and the error is raised in the parent; if the
parent is stopped (SIGTERM, Ctrl-C: `tflth.cli.run`) it stops its workers, and a worker whose
parent died however (kill -9) stops itself within a second.
"""
import concurrent.futures as futures
import contextlib
import multiprocessing
import os
import signal
import threading
import time

from tflth.lottery import paths

_WORKER = {}


def _exit_with(parent):
    """Ends this worker once process `parent` is gone (this worker's parent is then another
    one): an orphan would go on writing into a run folder that the parent's lock
    (`tflth.runs.claim`) no longer protects."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


@contextlib.contextmanager
def _sigint_ignored():
    """Ctrl-C is the parent's to handle (it stops the workers): workers started inside ignore it
    from their first instruction (an ignored signal stays ignored across exec), not only once
    they have imported TensorFlow and run their initializer."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _init_worker(parent, hparams, run_folder, data_dir, threads, verbose, train_kw):
    # The parent's pid comes from the parent: a worker still importing when its parent died
    # would read its new parent's here.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    import tensorflow as tf
    if os.environ.get("TF_DETERMINISTIC_OPS") == "1":  # --deterministic: set by the parent for us
        tf.config.experimental.enable_op_determinism()
    # Share the cores between the workers instead of each TF runtime taking all of them,
    # and let workers share a GPU instead of the first one taking all its memory.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    from tflth.lottery import runner
    _WORKER.update(args=(hparams, run_folder), data=runner.load_data(hparams, data_dir), verbose=verbose,
                   train_kw=train_kw, replicates={})


def train_task(seed, level, branch):
    from tflth.lottery import runner
    replicates = _WORKER["replicates"]
    if seed not in replicates:
        hparams, run_folder = _WORKER["args"]
        replicates[seed] = runner.Replicate(hparams, run_folder, seed, _WORKER["data"], _WORKER["verbose"],
                                            **_WORKER["train_kw"])
    replicates[seed].branch(level, branch)


def _done(run_folder, seed, level, branch):
    return os.path.exists(paths.metrics(paths.branch_dir(paths.replicate_dir(run_folder, seed), level, branch)))


def run_tasks(tasks, workers, hparams, run_folder, data_dir, verbose, train_kw, target=train_task):
    """Trains every (seed, level, branch) of `tasks` not yet done, `workers` at a time.
    (`target` runs one task in a worker; tests replace it.)"""
    pending = [t for t in tasks if not _done(run_folder, *t)]
    pending.sort(key=lambda t: (t[0], t[2] != "main", t[1]))  # by seed; tickets first, then low levels
    threads = max(1, (os.cpu_count() or 1) // workers)
    others = {p.pid for p in multiprocessing.active_children()}  # the caller's own, left alone below
    pool = futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker,
                                       initargs=(os.getpid(), hparams, run_folder, data_dir, threads, verbose,
                                                 train_kw))
    running = {}
    try:
        while pending or running:
            ready = [t for t in pending if t[1] == 0 or _done(run_folder, t[0], t[1] - 1, "main")]
            for task in ready[:workers - len(running)]:
                pending.remove(task)
                with _sigint_ignored():  # submit starts a worker when one is needed
                    running[pool.submit(target, *task)] = task
            if not running:
                raise RuntimeError(f"tasks {pending} wait for tickets that no task trains")
            finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                del running[future]
                future.result()  # a task's exception, or BrokenProcessPool if a worker died
        pool.shutdown()
    finally:
        if running or pending:  # stopped early (an error, SIGTERM, Ctrl-C): the workers stop too, now
            pool.shutdown(wait=False, cancel_futures=True)
            ours = [p for p in multiprocessing.active_children() if p.pid not in others]
            for child in ours:
                child.terminate()
            for child in ours:
                child.join(timeout=10)
