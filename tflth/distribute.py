"""Training on several devices and machines with TensorFlow's own tf.distribute.

    strategy = tflth.distribute.get_strategy("mirrored")
    with strategy.scope():
        model = tflth.models.lenet_300_100(); model.compile(...)   # variables mirrored
    model.fit(..., callbacks=[tflth.pruning.PruneCallback(...)])

Batch size: `--batch_size` (and a dataset's batch in `fit`) is the *global* batch, what one
step sees over all replicas; each replica gets batch_size / replicas examples and Keras
averages the gradients over the global batch. So the same flags train the same model on one
device or on N, up to float rounding, and the batch size must divide by the replicas.

Masks are non-trainable variables: a callback assigns them in cross-replica context, which
writes one value to every replica. BatchNorm's moving statistics, which Keras updates per
replica, are averaged over the replicas at every evaluation point (`average_replica_statistics`).
Every worker of a multi-worker run computes the same masks from the same (all-reduced) weights
and seed. Only the chief writes: the other workers run the
same code on a private copy of the run root (`worker_root`) that is removed at the end.
"""
import contextlib
import json
import os
import shutil
import tempfile
import weakref

import keras
import tensorflow as tf

from tflth import internals

__all__ = ["AverageReplicaStatistics", "average_replica_statistics", "barrier", "batchnorm_statistics",
           "check_batch_size", "get_strategy", "is_chief", "num_workers", "read_tf_config", "worker_root",
           "xla_allowed"]

NAMES = ("default", "mirrored", "multi_worker", "tpu")


def get_strategy(name="default", devices=None):
    """The tf.distribute strategy called `name`:
    - default: the current one (no distribution, or the scope you are in);
    - mirrored: MirroredStrategy over `devices` (default: every GPU, else the CPU);
    - multi_worker: MultiWorkerMirroredStrategy from the TF_CONFIG environment variable;
    - tpu: TPUStrategy on the TPU this process is attached to.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        read_tf_config()
        internals.patch_multi_worker_trainer()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise RuntimeError(f"--strategy=tpu: no TPU found ({str(e).splitlines()[0]})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--strategy={name!r}: allowed: {', '.join(NAMES)}")


def read_tf_config(text=None):
    """TF_CONFIG (or `text`) as a dict, checked: a "cluster" of task types, each a list of
    "host:port", and a "task" whose type and index name one of them. ValueError otherwise."""
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        raise ValueError("TF_CONFIG is not set; --strategy=multi_worker reads the cluster from it "
                         '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
                         '"index": 0}})')
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not JSON: {e}") from None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not isinstance(cluster, dict) or not cluster or any(
            not isinstance(hosts, list) or not hosts or any(not isinstance(h, str) or ":" not in h for h in hosts)
            for hosts in cluster.values()):
        raise ValueError(f"TF_CONFIG: 'cluster' must map task types to lists of 'host:port'; got {cluster!r}")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(f"TF_CONFIG: 'task' must have a 'type' among {sorted(cluster)}; got {task!r}")
    if task["type"] not in ("chief", "worker"):
        raise ValueError(f"TF_CONFIG: task type {task['type']!r}: MultiWorkerMirroredStrategy trains on 'chief' and "
                         "'worker' tasks only")
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ValueError(f"TF_CONFIG: task index {index!r} is not in [0, {len(cluster[task['type']])}) for "
                         f"type {task['type']!r}")
    return config


def check_batch_size(batch_size, strategy=None):
    """ValueError unless the global `batch_size` splits evenly over the replicas."""
    replicas = (strategy or tf.distribute.get_strategy()).num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"--batch_size={batch_size}: must be divisible by the {replicas} replicas of the strategy "
                         "(it is the global batch; each replica gets batch_size / replicas)")


def xla_allowed(strategy=None):
    """Whether the engine compiles with XLA: on one replica only. XLA over 2 logical CPUs fails
    (a replica's variables live on another device than XLA's cluster), and Keras resolves
    jit_compile="auto" to no XLA under any strategy; on GPUs that is still to be measured
    (tools/bench_distribute.py)."""
    return (strategy or tf.distribute.get_strategy()).num_replicas_in_sync == 1


_AVERAGERS = weakref.WeakKeyDictionary()  # model -> (its statistics, their compiled averaging step)


def batchnorm_statistics(model):
    """The moving statistics of the model's BatchNormalization layers, nested ones included
    (with `renorm`, its moving stddev and renorm averages too; `synchronized=True` layers are
    left out: their replicas already agree)."""
    layers = internals.all_layers(model)
    return [v for layer in layers if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized
            for v in (layer.moving_mean, layer.moving_variance) + (
                (layer.moving_stddev, layer.renorm_mean, layer.renorm_stddev) if layer.renorm else ())]


def average_replica_statistics(model):
    """Sets every replica's copy of the model's BatchNorm moving means and variances to their
    mean over all replicas and workers; a no-op on one replica.

    Keras updates them per replica, each from its share of the batch (in replica context, with
    no aggregation), so the replicas drift apart, evaluate with different statistics, and a
    checkpoint keeps the first replica's. The mean of the replicas' moving means is the moving
    average of the global batch's means (the average is linear, the shares equal); the mean of
    their moving variances leaves out the spread between the shares' means. Every worker must
    call it at the same point: it is an all-reduce."""
    strategy = model.distribute_strategy
    if strategy.num_replicas_in_sync == 1:
        return
    statistics = batchnorm_statistics(model)
    if not statistics:
        return
    known = _AVERAGERS.get(model)
    if known is None or [id(v) for v in known[0]] != [id(v) for v in statistics]:  # built or rebuilt since

        @tf.function
        def average():
            def replica():
                context = tf.distribute.get_replica_context()
                means = context.all_reduce("mean", [tf.identity(v.value) for v in statistics])
                for v, mean in zip(statistics, means):
                    v.assign(mean)
            strategy.run(replica)
        known = _AVERAGERS[model] = (statistics, average)
    known[1]()


class AverageReplicaStatistics(keras.callbacks.Callback):
    """`average_replica_statistics` in your own `model.fit`: before every validation, at the end
    of every epoch and of training. Put it before callbacks that save the model (ModelCheckpoint,
    BackupAndRestore). The engine's runs do this at every evaluation point themselves."""

    def on_test_begin(self, logs=None):
        average_replica_statistics(self.model)

    def on_epoch_end(self, epoch, logs=None):
        average_replica_statistics(self.model)

    def on_train_end(self, logs=None):
        average_replica_statistics(self.model)


def _cluster(strategy):
    """The cluster resolver of a multi-worker strategy, else None (TPU resolvers name tasks too)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    resolver = strategy.cluster_resolver
    return resolver if resolver is not None and resolver.task_type else None


def num_workers(strategy=None):
    """The number of worker machines of a multi-worker `strategy` (TF_CONFIG's cluster), else 1."""
    resolver = _cluster(strategy)
    if resolver is None:
        return 1
    return sum(len(hosts) for kind, hosts in resolver.cluster_spec().as_dict().items() if kind in ("chief", "worker"))


def is_chief(strategy=None):
    """Whether this process writes: the "chief" task, else worker 0 of a cluster without one,
    and always outside a multi-worker cluster."""
    resolver = _cluster(strategy)
    if resolver is None or resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def barrier(strategy, failed=False):
    """Returns once every worker has reached it (an all-reduce every replica joins); raises on
    every worker if any of them arrives with `failed`, so none waits for a worker that gave up."""
    @tf.function
    def meet():
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("sum", tf.constant(float(failed))))
    total = strategy.experimental_local_results(meet())[0]
    if float(total) > 0:
        raise RuntimeError("a worker failed to prepare its copy of the run root; see its own error")


@contextlib.contextmanager
def worker_root(root, strategy=None):
    """The folder of run folders this process writes to: `root` itself, except on the workers
    of a multi-worker run that are not the chief, which get a private copy of it (hidden, beside
    it; hard links where the file system allows: every tflth write replaces a file, never edits
    it), so they resume and skip exactly as the chief does while only the chief's files stay on
    disk. `root` must be on storage every worker sees (as for any multi-worker checkpoint). The
    copy is made while every worker waits, before the chief writes, and removed at the end."""
    strategy = strategy or tf.distribute.get_strategy()
    if num_workers(strategy) == 1:
        yield root
        return
    barrier(strategy)  # nobody has written yet
    private, failed = None, False
    if not is_chief(strategy):
        try:  # beside root: the same file system, so hard links work
            parent = os.path.dirname(os.path.abspath(root))
            os.makedirs(parent, exist_ok=True)
            private = os.path.join(tempfile.mkdtemp(prefix=".tflth-worker-", dir=parent), "root")
            if os.path.isdir(root):
                shutil.copytree(root, private, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(".*"))
            else:
                os.makedirs(private)
        except OSError as e:
            print(f"error: worker {_cluster(strategy).task_id}: cannot copy {root}: {e}", flush=True)
            failed = True
    barrier(strategy, failed)  # every copy is made before the chief goes on
    try:
        yield private or root
    finally:
        if private:
            shutil.rmtree(os.path.dirname(private), ignore_errors=True)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)
