"""The training engine: data streams, schedules, coupled L2, named state, the loop and resume."""
import dataclasses
import time

import keras
import numpy as np
import pytest

from tflth import engine, io, layers, models, pruning
from tflth.engine import loop
from tflth.ops import noise
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.lottery.hparams import LotteryHparams


def test_stream_batch_i_depends_only_on_seed_and_i():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    y = np.arange(10, dtype=np.int32)
    whole = [b[1].numpy().tolist() for b in engine.train_stream(x, y, 4, seed=3).take(6)]
    tail = [b[1].numpy().tolist() for b in engine.train_stream(x, y, 4, seed=3, start=2).take(4)]
    assert whole[2:] == tail
    flat = sum(whole, [])
    assert sorted(flat[:10]) == sorted(flat[10:20]) == list(range(10))  # each epoch a permutation
    assert flat[:10] != flat[10:20]  # and a new one every epoch
    other = [b[1].numpy().tolist() for b in engine.train_stream(x, y, 4, seed=4).take(6)]
    assert other != whole
    augmented = [b[1].numpy().tolist() for b in engine.train_stream(x, y, 4, seed=3, augment=True).take(6)]
    assert augmented == whole  # the same order with per-example augmentation


def test_augmentation_is_seeded_per_position():
    x = np.random.default_rng(0).integers(0, 255, (10, 8, 8, 3)).astype(np.uint8)
    y = np.zeros(10, np.int32)
    a = [b[0].numpy() for b in engine.train_stream(x, y, 4, seed=3, start=1, augment=True).take(2)]
    b = [b[0].numpy() for b in engine.train_stream(x, y, 4, seed=3, start=1, augment=True).take(2)]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_step_schedule_offset_resumes_the_schedule():
    base = engine.StepSchedule(0.1, warmup=10, drops=(20, 30), gamma=0.5)
    assert [round(float(base(s)), 6) for s in (0, 9, 19, 20, 35)] == [0.01, 0.1, 0.1, 0.05, 0.025]
    shifted = engine.StepSchedule(0.1, warmup=10, drops=(20, 30), gamma=0.5, offset=25)
    assert [float(shifted(s)) for s in (0, 4, 5)] == [float(base(s)) for s in (25, 29, 30)]
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(shifted))
    assert float(again(5)) == float(shifted(5))


def _lr_used_at(optimizer, step, variables):
    """(optimizer.learning_rate, the size of the step SGD takes with gradient 1) at optimizer step
    `step`: the rate the compiled optimizer reports and the one its update applies."""
    optimizer.iterations.assign(step)
    reported = float(optimizer.learning_rate)
    before = variables[0].numpy().copy()
    optimizer.apply([keras.ops.ones(v.shape) for v in variables], variables)
    return reported, float(np.mean(before - variables[0].numpy()))


@pytest.mark.parametrize("decay_start,offset", [(60, 0), (60, 25), (60, 70), (0, 0), (0, 25)])
def test_lr_linear_decay_is_constant_then_reaches_zero_at_the_last_iteration(decay_start, offset):
    """--lr_linear_decay=60 with --iterations=100: lr until iteration 60, then lr * (100 - i) / 40, 0 at
    100; a branch compiled at `offset` (a rewound lottery level, its optimizer's step from 0) reads
    iteration step + offset. 0: no decay."""
    lr = 0.04
    training = TrainingHparams(optimizer="sgd", lr=lr, iterations=100, eval_every=10, lr_linear_decay=decay_start)
    model = models.lenet_300_100(input_shape=(4, 4, 1))
    engine.compile_model(model, training, offset=offset)
    variables = [v for v in model.trainable_variables if v.path.endswith("fc1/kernel")]
    assert len(variables) == 1
    for iteration in (0, 1, 30, 59, 60, 61, 70, 80, 90, 99, 100, 120):
        if iteration < offset:
            continue
        expected = lr if not decay_start else lr * min(1.0, max(0.0, (100 - iteration) / (100 - decay_start)))
        reported, applied = _lr_used_at(model.optimizer, iteration - offset, variables)
        assert reported == pytest.approx(expected, rel=1e-6, abs=1e-9), iteration
        assert applied == pytest.approx(expected, rel=1e-4, abs=1e-7), iteration
        if decay_start and iteration <= decay_start:
            assert reported == pytest.approx(lr, rel=1e-7), iteration  # constant before the decay
        if decay_start and iteration >= 100:
            assert reported == 0.0 and applied == 0.0, iteration


@pytest.mark.parametrize("value", [100, 150, -1])
def test_a_bad_lr_linear_decay_is_refused_in_one_line(value):
    with pytest.raises(ValueError) as error:
        TrainingHparams(iterations=100, eval_every=10, lr_linear_decay=value)
    assert str(error.value).startswith(f"--lr_linear_decay={value}: must be in [0, --iterations=100)")
    assert "\n" not in str(error.value)
    # As a recipe's flags give it (the lottery CLI prints this line and exits with status 2).
    from absl import flags
    from tflth.lottery import cli
    values = flags.FlagValues()
    cli.define_run_flags(values)
    values(["recipe", "--iterations=100", "--eval_every=10", f"--lr_linear_decay={value}"])
    with pytest.raises(ValueError, match=rf"^--lr_linear_decay={value}: must be in \[0, --iterations=100\)"):
        cli.read_hparams(values)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_coupled_l2_is_pytorchs_weight_decay(name):
    """l2 * w joins the gradient before momentum / Adam's moments, as torch.optim does."""
    training = TrainingHparams(optimizer=name, lr=0.1, momentum=0.9, l2=0.01, iterations=10, eval_every=10)
    optimizer = engine.make_optimizer(training)
    assert isinstance(optimizer, engine.CoupledL2SGD if name == "sgd" else engine.CoupledL2Adam)
    w = keras.Variable(np.array([1.0, -2.0], np.float32))
    optimizer.build([w])
    grads = [np.array([0.5, 0.5], np.float32), np.array([-0.3, 0.1], np.float32)]
    expected, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate(grads, start=1):
        optimizer.apply([keras.ops.convert_to_tensor(g)], [w])
        d = g + 0.01 * expected
        if name == "sgd":  # Keras' momentum form: m = 0.9 m - lr d; w += m (torch's, for constant lr)
            m = 0.9 * m - 0.1 * d
            expected = expected + m
        else:
            m, v = 0.9 * m + 0.1 * d, 0.999 * v + 0.001 * d * d
            lr_t = 0.1 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            expected = expected - lr_t * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5)
    config = optimizer.get_config()
    assert config["l2"] == 0.01 and type(optimizer).from_config(config).l2 == 0.01


def test_without_l2_the_optimizer_is_plain_keras():
    assert type(engine.make_optimizer(TrainingHparams())) is keras.optimizers.Adam
    sgd = engine.make_optimizer(TrainingHparams(optimizer="sgd", momentum=0.9, weight_decay=1e-4))
    assert type(sgd) is keras.optimizers.SGD and sgd.weight_decay == 1e-4


@pytest.mark.parametrize("decay", [{"l2": 0.1}, {"weight_decay": 0.1}])
def test_l2_and_weight_decay_leave_a_familys_own_variables_alone(decay):
    """Decaying a posterior's rho toward 0 would inflate its scale: only kernels and biases decay."""
    model = models.lenet_300_100(input_shape=(4, 4, 1), family="reparam", dataset_size=10)
    engine.compile_model(model, TrainingHparams(optimizer="sgd", lr=1.0, iterations=1, eval_every=1, **decay))
    rho = [v for v in model.trainable_variables if v.path.endswith("kernel_rho")]
    kernels = [v for v in model.trainable_variables if v.path.endswith("/kernel")]
    assert rho and kernels and {v.path for v in rho} <= {v.path for v in layers.family_variables(model)}
    for v in rho + kernels:
        v.assign(np.ones(v.shape, np.float32))
    zero = [keras.ops.zeros(v.shape) for v in model.trainable_variables]
    model.optimizer.apply(zero, model.trainable_variables)
    assert all(np.all(v.numpy() == 1.0) for v in rho)  # a zero gradient leaves them
    assert all(np.all(v.numpy() < 1.0) for v in kernels)  # and decays the kernels


def _compiled(seed=0, offset=0, training=TrainingHparams(iterations=40, eval_every=10)):
    keras.utils.set_random_seed(seed)
    model = models.lenet_300_100(input_shape=(28, 28, 1))
    engine.compile_model(model, training, offset=offset)
    return model


def test_state_round_trips_by_name_into_another_instance():
    a = _compiled(seed=0)
    pruning.prune(a, 0.5)
    a.optimizer.iterations.assign(7)
    for v in a.optimizer.variables[2:]:
        v.assign(np.full(v.shape, 0.25, np.float32))
    b = _compiled(seed=1)  # other weights, another optimizer object (its name is "adam_<n>")
    engine.state.restore(b, engine.state.capture(a))
    for u, v in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
    weights_only = engine.state.capture(a, optimizer=False, masks=False)
    assert not [k for k in weights_only if "mask" in k or k.startswith(engine.state.OPTIMIZER)]
    c = _compiled(seed=2)
    engine.state.restore(c, weights_only, optimizer=False, masks=False)
    assert int(c.optimizer.iterations.numpy()) == 0 and pruning.sparsity(c)["total"] == 0.0


def test_state_mismatch_is_refused_before_anything_changes():
    a = _compiled()
    saved = engine.state.capture(a)
    keras.utils.set_random_seed(3)
    other = models.lenet5()
    engine.compile_model(other, TrainingHparams(iterations=40, eval_every=10))
    before = [v.numpy() for v in other.weights]
    with pytest.raises(ValueError, match="lacks|shape|optimizer"):
        engine.state.restore(other, saved)
    for v, w in zip(other.weights, before):
        np.testing.assert_array_equal(v.numpy(), w)


@pytest.mark.parametrize("start,stop,every,extra,points,runs", [
    (0, 40, 10, (), [10, 20, 30, 40], [(0, 10, 4)]),
    (0, 45, 10, (15,), [10, 15, 20, 30, 40, 45], [(0, 10, 1), (10, 5, 2), (20, 10, 2), (40, 5, 1)]),
    (20, 50, 20, (), [40, 50], [(20, 20, 1), (40, 10, 1)]),
])
def test_points_and_fit_segments(start, stop, every, extra, points, runs):
    assert loop.boundaries(start, stop, every, extra) == points
    assert loop.segments(start, points) == runs


@pytest.mark.parametrize("intervals,expected", [((1000, 50000), 100), ((500, 3000), 100), ((10, 40, 10), 10),
                                                 ((300, 1050), 75), ((7, 21), 7)])
def test_steps_per_execution_divides_every_interval(intervals, expected):
    assert engine.steps_per_execution(*intervals) == expected


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.int32)
    x = (rng.integers(0, 40, (n, 28, 28, 1)) + 200 * (np.arange(28)[None, :, None, None] == y[:, None, None, None])
         ).astype(np.uint8)  # the label's row is bright: learnable in a few steps
    return {"x": x, "y": y, "validation": engine.eval_stream(x[:40], y[:40]), "test": engine.eval_stream(x[40:80], y[40:80])}


HP = LotteryHparams(DatasetHparams(batch_size=20, validation_size=40),
                    training=TrainingHparams(iterations=60, eval_every=10))


def test_train_evaluates_test_at_new_bests_and_at_the_end(tmp_path):
    model, data = _compiled(training=HP.training), _data()
    seen = []
    rows = engine.train(model, data, HP, str(tmp_path), on_point=seen.append, verbose=False)
    assert [r["step"] for r in rows] == seen == [0, 10, 20, 30, 40, 50, 60]
    best = np.inf
    for row in rows[1:]:
        assert (row["test_acc"] is not None) == (row["val_loss"] < best or row["step"] == 60)
        best = min(best, row["val_loss"])
    assert rows[0]["test_acc"] is None and rows[-1]["test_acc"] is not None
    summary = engine.summarize_rows(rows, 0)
    assert summary["early_stop_test_acc"] is not None
    everything = engine.train(_compiled(training=HP.training), data, HP, str(tmp_path / "all"), verbose=False,
                              test_every_eval=True)
    assert all(r["test_acc"] is not None for r in everything)


def _train_until_checkpoint(folder, data, monkeypatch, at_step=None):
    """Trains a fresh model in `folder` and stops it (KeyboardInterrupt) right after its first
    checkpoint, or after the one at `at_step`: a run killed there."""
    save = engine.state.save

    def save_then_die(path, model, *args, **kw):
        save(path, model, *args, **kw)
        if at_step is None or int(kw["step"]) == at_step:
            raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(engine.state, "save", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            engine.train(_compiled(training=HP.training), data, HP, folder, verbose=False, checkpoint_seconds=0)


def test_train_resumes_to_the_same_rows_and_weights(tmp_path, monkeypatch):
    data = _data()
    reference = _compiled(training=HP.training)
    expected = engine.train(reference, data, HP, str(tmp_path / "a"), verbose=False, checkpoint_seconds=0)

    _train_until_checkpoint(str(tmp_path / "b"), data, monkeypatch, at_step=30)
    resumed = _compiled(seed=5, training=HP.training)  # other start weights: the checkpoint wins
    rows = engine.train(resumed, data, HP, str(tmp_path / "b"), verbose=False, checkpoint_seconds=0)
    assert rows == expected
    for u, v in zip(reference.weights + reference.optimizer.variables, resumed.weights + resumed.optimizer.variables):
        np.testing.assert_array_equal(u.numpy(), v.numpy())


def test_checkpoints_wait_for_checkpoint_seconds(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(engine.state, "save", lambda path, model, **kw: saved.append(int(kw["step"])))
    engine.train(_compiled(training=HP.training), _data(), HP, str(tmp_path), verbose=False, checkpoint_seconds=3600)
    assert saved == []
    engine.train(_compiled(training=HP.training), _data(), HP, str(tmp_path / "b"), verbose=False, checkpoint_seconds=0)
    assert saved == [10, 20, 30, 40, 50]  # every point but the end (the caller writes the final state)


def test_train_prints_progress_lines(tmp_path, capsys):
    engine.train(_compiled(training=HP.training), _data(), HP, str(tmp_path), label="demo")
    out = capsys.readouterr().out
    assert "[demo] step 60/60 train_loss" in out and "ms/it" in out and "test_acc" in out


def test_steps_per_execution_must_divide_the_intervals(tmp_path):
    model = _compiled(training=HP.training)
    model.compile(model.optimizer, model.loss, steps_per_execution=4)  # 4 does not divide 10
    with pytest.raises(ValueError, match="steps_per_execution=4 must divide every interval"):
        engine.train(model, _data(), HP, str(tmp_path), verbose=False)


def test_state_refuses_repeated_variable_paths():
    def sub(name):  # functional models do not put their name in their variables' paths
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(3, name="fc1")(inputs), name=name)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Add()([sub("a")(inputs), sub("b")(inputs)]))
    assert len({v.path for v in model.variables}) < len(model.variables)
    with pytest.raises(ValueError, match="repeat"):
        engine.state.capture(model, optimizer=False)


def test_state_covers_random_generator_states():
    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5, name="drop"),
                                 keras.layers.Dense(3, name="fc")], name="net")
    model = build()
    saved = engine.state.capture(model, optimizer=False)
    assert any("seed" in key for key in saved)
    x = np.ones((2, 4), np.float32)
    first = model(x, training=True).numpy()
    engine.state.restore(model, saved, optimizer=False)
    np.testing.assert_array_equal(model(x, training=True).numpy(), first)  # the same dropout draw again
    other = build()  # its generator has another auto-generated name ("seed_generator_<n>")
    engine.state.restore(other, saved, optimizer=False)
    np.testing.assert_array_equal(other(x, training=True).numpy(), first)


def test_a_callback_that_stops_training_stops_the_run(tmp_path):
    class StopAt25(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps == 25:
                self.model.stop_training = True
    hparams = LotteryHparams(HP.dataset, training=TrainingHparams(iterations=60, eval_every=10, jit_compile=False))
    model = _compiled(training=hparams.training)
    rows = engine.train(model, _data(), hparams, str(tmp_path), extra_points=[15], callbacks=[StopAt25()],
                        verbose=False)
    assert [r["step"] for r in rows] == [0, 10, 15, 20, 25]  # the row says where training stopped
    assert rows[-1]["test_acc"] is not None
    assert int(model.optimizer.iterations.numpy()) == 25


def test_nan_validation_loss_is_never_the_early_stop():
    rows = [{"step": 0, "val_loss": 2.0, "test_acc": None}, {"step": 10, "val_loss": float("nan"), "test_acc": None},
            {"step": 20, "val_loss": 1.0, "test_acc": 0.5}, {"step": 30, "val_loss": 1.5, "test_acc": 0.4}]
    assert engine.summarize_rows(rows, 0)["early_stop_step"] == 20


def test_checkpoint_before_more_than_checkpoint_seconds_go_unsaved(tmp_path, monkeypatch):
    """With 25 s per interval and checkpoint_seconds=60, waiting past 35 s unsaved would risk
    75 s: checkpoint at 10 (50 s unsaved + 25), 30 and 50 (the old rule saved at 20 and 50)."""
    saved, clock = [], iter(range(25, 10_000, 25))
    monkeypatch.setattr(loop.time, "time", lambda: next(clock))
    monkeypatch.setattr(engine.state, "save", lambda path, model, **kw: saved.append(int(kw["step"])))
    engine.train(_compiled(training=HP.training), _data(), HP, str(tmp_path), verbose=False, checkpoint_seconds=60)
    assert saved == [10, 30, 50]


def test_early_stopping_callbacks_see_the_validation_loss(tmp_path):
    hparams = LotteryHparams(HP.dataset, training=TrainingHparams(iterations=200, eval_every=10))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1)
    model = _compiled(training=hparams.training)
    model.optimizer.learning_rate.assign(0.05)  # overfits the 120 examples quickly
    rows = engine.train(model, _data(), hparams, str(tmp_path), callbacks=[stop], verbose=False)
    assert rows[-1]["step"] < 200 and stop.stopped_epoch > 0
    assert rows[-1]["test_acc"] is not None  # the last row of a stopped run has the test set too


def test_ema_weights_give_the_final_row(tmp_path):
    import dataclasses
    hp = dataclasses.replace(HP, training=dataclasses.replace(HP.training, ema=0.9))
    model, data = _compiled(training=hp.training), _data()
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.9
    rows = engine.train(model, data, hp, str(tmp_path), verbose=False)
    assert rows[-1]["ema"] and not any(r.get("ema") for r in rows[:-1])
    final = model.evaluate(data["test"], verbose=0, return_dict=True)  # the weights now are the averages
    assert rows[-1]["test_acc"] == pytest.approx(final["accuracy"]) and rows[-1]["test_loss"] == pytest.approx(
        final["cross_entropy"])


def test_val_loss_is_the_cross_entropy_without_layer_penalties(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.lenet_300_100(kernel_regularizer=keras.regularizers.L2(10.0))
    engine.compile_model(model, HP.training)
    rows = engine.train(model, _data(), HP, str(tmp_path), verbose=False)
    penalized = model.evaluate(_data()["validation"], verbose=0, return_dict=True)
    assert penalized["loss"] > 10 * rows[-1]["val_loss"]  # Keras' loss holds the L2 term; val_loss does not
    assert rows[-1]["val_loss"] == pytest.approx(penalized["cross_entropy"])


def test_ema_refuses_more_than_one_fit(tmp_path):
    import dataclasses
    hp = dataclasses.replace(HP, training=dataclasses.replace(HP.training, iterations=65, ema=0.9))
    with pytest.raises(ValueError, match="^ema: "):
        engine.train(_compiled(training=hp.training), _data(), hp, str(tmp_path), verbose=False)


def test_timing_splits_the_calls_wall_time_by_part(tmp_path, monkeypatch):
    """Each part gets the time spent in it (known lower bounds: sleeps added to saving and to
    on_point) and the parts add up to the call's wall time."""
    save = engine.state.save

    def slow_save(*args, **kw):
        time.sleep(0.1)
        save(*args, **kw)
    monkeypatch.setattr(engine.state, "save", slow_save)
    timing = {"steps": 1.0}  # a dict the caller already filled: train adds to it
    model, data = _compiled(training=HP.training), _data()
    began = time.perf_counter()
    engine.train(model, data, HP, str(tmp_path), verbose=False, checkpoint_seconds=0,
                 on_point=lambda step: time.sleep(0.05), timing=timing)
    wall = time.perf_counter() - began
    assert set(timing) == set(loop.PARTS)
    assert timing["checkpoints"] >= 5 * 0.1 and timing["points"] >= 7 * 0.05  # 5 checkpoints, 7 points
    assert timing["evaluation"] > 0 and timing["steps"] > 1.0
    assert sum(timing.values()) - 1.0 == pytest.approx(wall, abs=0.05)


def test_resuming_under_another_compilation_warns(tmp_path, monkeypatch, capsys):
    """A training checkpointed with XLA and resumed without it (a flag or tflth changed between
    the two processes) says that its results are no longer bit-identical."""
    _train_until_checkpoint(str(tmp_path), _data(), monkeypatch)
    capsys.readouterr()
    same = _compiled(training=HP.training)
    assert same.jit_compile
    engine.train(same, _data(), HP, str(tmp_path / "copy"), verbose=False)  # another folder: no resume, no warning
    assert "warning" not in capsys.readouterr().err
    without_xla = dataclasses.replace(HP.training, jit_compile=False)
    engine.train(_compiled(training=without_xla), _data(), HP, str(tmp_path), label="demo", verbose=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[demo] the training began with XLA and resumes without it" in err


def test_resuming_under_xla_a_training_begun_with_philox_noise_warns(tmp_path, monkeypatch, capsys):
    """A progress file from before tflth.ops.noise drew with ThreeFry under XLA (no noise_scheme)
    resumed under XLA says that layers that sample now draw other noise; one with the current
    scheme resumes silently."""
    for folder in ("old", "current"):
        _train_until_checkpoint(str(tmp_path / folder), _data(), monkeypatch)
    progress = loop.progress_file(str(tmp_path / "old"))
    saved = engine.state.load(progress)
    assert int(saved.pop("noise_scheme")) == noise.SCHEME == 2
    io.write_npz(progress, saved)  # as a tflth before noise schemes wrote it
    capsys.readouterr()
    engine.train(_compiled(training=HP.training), _data(), HP, str(tmp_path / "current"), verbose=False)
    assert "warning" not in capsys.readouterr().err
    engine.train(_compiled(training=HP.training), _data(), HP, str(tmp_path / "old"), label="demo", verbose=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[demo] the training began under XLA with a tflth that drew noise with Philox" in err
