"""Your own Keras model made sparse (`tflth.sparsify`): its training step against the same plain
Keras model, side by side, and the time the conversion takes.

    python tools/bench_sparsify.py                          # 200 steps per fit, 5 rounds, XLA
    python tools/bench_sparsify.py --steps 20 --rounds 1 --steps_per_execution 10   # a smoke run

Two architectures, each as the plain Keras model and as `sparsify(model)` (family "masked")
pruned to 80% (`prune_to(..., allocation="erk")`, so that the masks hold zeros):

  mobilenetv2   keras.applications.MobileNetV2, 32x32x3 inputs, 10 classes (Conv2D, DepthwiseConv2D
                and Dense layers masked);
  transformer   a small encoder: 2 blocks of MultiHeadAttention (4 heads of 16, EinsumDense
                projections masked), residual sums, LayerNormalization and a 128-unit Dense MLP,
                on 32 tokens of 64 features.

Each pair trains on one in-memory stream of random inputs, batch --batch_size, compiled like the
engine compiles (Adam 1e-3, XLA unless --no_jit, --steps_per_execution); after a warm-up fit
each, the plain and the masked model take turns (tools/_bench.py), and the table gives ms per
step and masked / plain per round and its median, by wall clock and CPU time. Target: masked /
plain <= 1.05 for both. Then `sparsify(ResNet50)` (224x224x3, weights=None) is timed --rounds
times; target: median <= 2 s.
"""
import argparse
import statistics
import sys
import time

import _bench

TARGET_STEP, TARGET_CONVERSION = 1.05, 2.0


def mobilenetv2():
    import keras
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=10,
                                          classifier_activation=None)


def transformer(tokens=32, features=64, blocks=2):
    import keras
    inputs = x = keras.Input((tokens, features))
    for _ in range(blocks):
        x = keras.layers.LayerNormalization()(x + keras.layers.MultiHeadAttention(4, 16)(x, x))
        mlp = keras.layers.Dense(features)(keras.layers.Dense(128, activation="relu")(x))
        x = keras.layers.LayerNormalization()(x + mlp)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling1D()(x)))


ARCHITECTURES = {"mobilenetv2": mobilenetv2, "transformer": transformer}


def stream(model, batch_size):
    import numpy as np
    import tensorflow as tf
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20 * batch_size,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    y = rng.integers(0, 10, len(x))
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch_size, drop_remainder=True).prefetch(2)


def pair(name, args):
    """{"plain", "masked"}: the architecture and its sparse copy, compiled and warmed up."""
    import keras

    import tflth
    keras.utils.set_random_seed(0)
    plain = ARCHITECTURES[name]()
    masked = tflth.sparsify(plain)
    tflth.pruning.prune_to(masked, 0.8, allocation="erk")
    hparams = tflth.engine.TrainingHparams(lr=1e-3, jit_compile=not args.no_jit)
    data = stream(plain, args.batch_size)
    models = {"plain": plain, "masked": masked}
    for model in models.values():
        tflth.engine.compile_model(model, hparams, steps_per_execution=args.steps_per_execution)
        model.fit(data, steps_per_epoch=args.steps_per_execution, epochs=1, verbose=0)  # warm-up: tracing, XLA
    return models, data


def conversion_seconds(rounds):
    import keras

    import tflth
    model = keras.applications.ResNet50(weights=None)
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        tflth.sparsify(model)
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    _bench.add_arguments(parser, steps=200, rounds=5)
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES))
    parser.add_argument("--out", default="runs/bench_sparsify.json", help="the results as JSON")
    args = parser.parse_args(argv)
    names = [n for n in args.architectures.split(",") if n]
    _bench.check_arguments(parser, args, ["plain"], ["plain"], "plain")
    if set(names) - set(ARCHITECTURES):
        parser.error(f"--architectures from {list(ARCHITECTURES)}")
    _bench.setup_threads(args)
    from tflth import io
    results = {**_bench.environment(), "args": vars(args)}
    for name in names:
        models, data = pair(name, args)
        ms = _bench.time_interleaved(models, data, args.steps, args.rounds)
        median, ratio, median_ratio = _bench.summarize(ms, "plain")
        print(f"\n{name}:")
        _bench.print_table(list(models), median, ratio, median_ratio, "plain")
        r = median_ratio["wall"]["masked"]
        print(f"{name}: masked / plain = {r:.2f} wall (target <= {TARGET_STEP}: "
              f"{'met' if r <= TARGET_STEP else 'not met'}), {median_ratio['cpu']['masked']:.2f} CPU time\n")
        results[name] = {"ms_per_step": ms, "median_ms_per_step": median, "ratio_to_plain": ratio,
                         "median_ratio_to_plain": median_ratio}
    seconds = conversion_seconds(args.rounds)
    median = statistics.median(seconds)
    print(f"sparsify(ResNet50): median {median:.2f} s of {', '.join(f'{s:.2f}' for s in seconds)} "
          f"(target <= {TARGET_CONVERSION} s: {'met' if median <= TARGET_CONVERSION else 'not met'})")
    results["resnet50_conversion_seconds"] = seconds
    io.write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
