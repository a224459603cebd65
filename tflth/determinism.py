"""Bit-identical runs (`--deterministic`) that keep XLA where XLA is deterministic already.

TensorFlow's op determinism (`tf.config.experimental.enable_op_determinism`) makes Keras
compile without XLA ("not all ops are supported by XLA with determinism enabled",
`keras.src.trainers.trainer.model_supports_jit`), which made the lottery recipe 1.24x slower
on CPU (`tools/bench_runs.py deterministic`). XLA-compiled training on CPU needs no such
switch: without it, the same seed gave the same bits run to run and process to process for
masked, L0 and Bayesian LeNets, LeNet-5 and ResNet-20 with BatchNorm
(`tests/test_reproducible.py` checks masked, L0, Flipout and ResNet-20 runs on every CI run).
Unlike XLA on GPUs, XLA on CPU does not choose kernels by timing them. The rest of a run is
deterministic without the switch on CPU too: tf.data keeps its order by default, and every
random draw of tflth is seeded.

So `request(jit_compile, strategy)` leaves op determinism off where XLA will compile on a
machine with CPUs alone and one replica, and switches it on everywhere else: on GPUs and TPUs,
whose XLA autotunes and whose determinism tflth has not measured (Keras then compiles without
XLA, and a one-line warning says so), and where XLA is off anyway (`--jit_compile=false`,
several replicas).
"""
import os
import sys

import tensorflow as tf

from tflth import distribute
from tflth.internals import op_determinism_on


def xla_is_deterministic(strategy=None):
    """Whether XLA-compiled training is run-to-run deterministic here without op determinism:
    no accelerator visible and one replica (XLA is not used over several)."""
    cpu_only = all(device.device_type == "CPU" for device in tf.config.list_physical_devices())
    return cpu_only and distribute.xla_allowed(strategy)


def request(jit_compile, strategy=None, warn=True):
    """Makes this process's trainings bit-identical run to run (the recipes' `--deterministic`):
    nothing to do where `jit_compile` asks for XLA and `xla_is_deterministic`; TensorFlow's op
    determinism otherwise (and TF_DETERMINISTIC_OPS, TensorFlow's own switch, which worker
    processes inherit). Returns whether op determinism is on."""
    if jit_compile and xla_is_deterministic(strategy):
        if op_determinism_on() and warn:  # TensorFlow reads TF_DETERMINISTIC_OPS itself
            _warn("TF_DETERMINISTIC_OPS is set in the environment: TensorFlow's op determinism is on, which "
                  "Keras does not combine with XLA; unset it to keep XLA (deterministic on CPUs as it is)")
        return op_determinism_on()
    if jit_compile and warn and distribute.xla_allowed(strategy):
        _warn("--deterministic: training compiles without XLA on this machine (TensorFlow's op determinism, "
              "which Keras does not combine with XLA; tflth knows XLA to be deterministic on CPUs only); "
              "--deterministic=false keeps XLA")
    tf.config.experimental.enable_op_determinism()
    os.environ["TF_DETERMINISTIC_OPS"] = "1"
    return True


def _warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)
