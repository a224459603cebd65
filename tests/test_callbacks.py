import keras
import numpy as np
import pytest

from tflth import models, pruning
from tflth.layers import MaskedDense


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((12,)), MaskedDense(16, activation="relu", name="fc"),
                              MaskedDense(3, name="output")], name="mlp")
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.random((n, 12)).astype("float32"), rng.integers(0, 3, n)


@pytest.mark.parametrize("schedule,pruned_steps", [
    (pruning.OneShot(step=5, fraction=0.2), [5]),
    (pruning.Every(every=4, fraction=0.2), [4, 8, 12]),
    (pruning.Every(every=4, fraction=0.2, start=2, end=11), [6, 10]),
    (pruning.PolynomialDecay(target=0.8, begin_step=3, end_step=12, frequency=3), [3, 6, 9, 12]),
    (pruning.PolynomialDecay(target=0.8, begin_step=3, end_step=13, frequency=3), [3, 6, 9, 12, 13]),
])
def test_schedules(schedule, pruned_steps):
    due = [step for step in range(16) if schedule(step)[0]]
    assert due == pruned_steps
    assert all(0 <= schedule(step)[1] < 1 for step in due)


@pytest.mark.parametrize("end_step", [100, 95])  # a multiple of the frequency from the start, or not
@pytest.mark.parametrize("initial", [0.0, 0.3])
def test_polynomial_decay_follows_zhu_and_gupta_cubic_to_its_target(end_step, initial):
    schedule = pruning.PolynomialDecay(target=0.8, begin_step=0, end_step=end_step, frequency=10, initial=initial)
    remaining = 1.0
    for step in range(101):
        due, fraction = schedule(step)
        if due:
            remaining *= 1 - fraction
            progress = min(1.0, step / end_step)  # s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3
            assert 1 - remaining == pytest.approx(0.8 + (initial - 0.8) * (1 - progress) ** 3)
    assert 1 - remaining == pytest.approx(0.8)


@pytest.mark.parametrize("bad", [
    lambda: pruning.OneShot(step=1, fraction=1.0),
    lambda: pruning.Every(every=0, fraction=0.2),
    lambda: pruning.PolynomialDecay(target=0.5, begin_step=5, end_step=5),
    lambda: pruning.PolynomialDecay(target=0.5, begin_step=0, end_step=5, initial=0.8),  # sparsity must rise
])
def test_schedule_arguments_are_checked(bad):
    with pytest.raises(ValueError):
        bad()


def test_a_schedule_that_removes_nothing_needs_a_threshold():
    with pytest.raises(ValueError, match="removes nothing without threshold="):
        pruning.PruneCallback(pruning.Every(5), score="snr")
    assert pruning.PruneCallback(pruning.Every(5), score="snr", threshold=1.0).threshold == 1.0


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_prune_and_rewind_inside_fit(steps_per_execution):
    def compiled(model):
        model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      steps_per_execution=steps_per_execution)
        return model

    model = compiled(_model())
    snapshot = pruning.Snapshot(iteration=0)
    prune_cb = pruning.PruneCallback(pruning.OneShot(step=6, fraction=0.5), rates={"output": 0.2},
                                     rewind=pruning.Rewind(snapshot), verbose=0)
    x, y = _data(64)  # 8 batches: steps 0..5, prune + rewind to init, then 2 more steps
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[snapshot, prune_cb], verbose=0, shuffle=False)
    assert prune_cb.pruned_at == [6]
    masks = pruning.get_masks(model)
    assert {n: int(m.sum()) for n, m in masks.items()} == {"fc": 96, "output": 38}
    assert int(model.optimizer.iterations.numpy()) == 2

    # The same as: the initial weights, masked, trained on the last two batches by a fresh optimizer.
    reference = compiled(_model())
    pruning.set_masks(reference, masks)
    reference.fit(x[48:], y[48:], batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_rewind_restores_the_snapshot_exactly():
    model = _model()
    x, y = _data()
    snapshot = pruning.Snapshot(iteration=3)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[snapshot], verbose=0)
    assert snapshot.weights is not None and int(snapshot.optimizer[0]) == 3
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    pruning.prune(model, 0.5)
    pruning.Rewind(snapshot)(model)
    masks = pruning.get_masks(model)
    kernel_at_3 = snapshot.weights[0]  # fc kernel
    np.testing.assert_array_equal(model.get_layer("fc").kernel.numpy(), kernel_at_3 * masks["fc"])
    np.testing.assert_array_equal(model.get_layer("fc").bias.numpy(), snapshot.weights[1])
    # A fresh optimizer: step 0 with zero moments (step 3 with zero moments would make
    # Adam's bias correction take steps several times too large).
    assert int(model.optimizer.iterations.numpy()) == 0
    assert all(not v.numpy().any() for v in model.optimizer.variables if "momentum" in v.path or "velocity" in v.path)


def test_rewind_to_the_snapshots_optimizer_state():
    model = _model()
    x, y = _data()
    snapshot = pruning.Snapshot(iteration=3)
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[snapshot], verbose=0)
    pruning.Rewind(snapshot, optimizer="snapshot")(model)
    assert int(model.optimizer.iterations.numpy()) == 3  # moments and their step together
    for v, saved in zip(model.optimizer.variables, snapshot.optimizer):
        np.testing.assert_array_equal(v.numpy(), saved)
    assert any(v.numpy().any() for v in model.optimizer.variables if "velocity" in v.path)


def test_fresh_optimizer_cannot_resume_a_schedule_at_k():
    model = _model()
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    snapshot = pruning.Snapshot(iteration=3)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[snapshot], verbose=0)
    with pytest.raises(ValueError, match="optimizer='snapshot'"):
        pruning.Rewind(snapshot)(model)
    late = pruning.PruneCallback(pruning.OneShot(step=1000, fraction=0.5), rewind=pruning.Rewind(snapshot), verbose=0)
    with pytest.raises(ValueError, match="optimizer='snapshot'"):  # when training begins, not at step 1000
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[late], verbose=0)
    pruning.Rewind(snapshot, optimizer="snapshot")(model)
    assert int(model.optimizer.iterations.numpy()) == 3


def test_learning_rate_rewinding_keeps_weights():
    model = _model()
    x, y = _data()
    snapshot = pruning.Snapshot(iteration=2)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[snapshot], verbose=0)
    pruning.prune(model, 0.5)
    before = model.get_layer("fc").kernel.numpy()
    pruning.Rewind(snapshot, weights=False, optimizer="snapshot")(model)
    np.testing.assert_array_equal(model.get_layer("fc").kernel.numpy(), before)
    assert int(model.optimizer.iterations.numpy()) == 2


def test_reinit_draws_new_weights_on_the_same_mask():
    model = _model()
    pruning.prune(model, 0.5)
    masks = pruning.get_masks(model)
    before = model.get_layer("fc").kernel.numpy()
    pruning.Rewind(reinit=True, seed=7)(model)
    after = model.get_layer("fc").kernel.numpy()
    assert np.all(after[masks["fc"] == 0] == 0)
    assert not np.allclose(after[masks["fc"] == 1], before[masks["fc"] == 1])
    again = _model()
    pruning.set_masks(again, masks)
    pruning.Rewind(reinit=True, seed=7)(again)
    np.testing.assert_array_equal(again.get_layer("fc").kernel.numpy(), after)


def test_rewind_arguments():
    with pytest.raises(ValueError, match="snapshot"):
        pruning.Rewind()
    with pytest.raises(ValueError, match="optimizer='adam' is unknown"):
        pruning.Rewind(reinit=True, optimizer="adam")
    with pytest.raises(ValueError, match="snapshot"):
        pruning.Rewind(reinit=True, optimizer="snapshot")
    with pytest.raises(RuntimeError, match="not taken"):
        pruning.Rewind(pruning.Snapshot(iteration=100))(_model())


def test_sparsity_logger_writes_history_and_tensorboard(tmp_path):
    model = _model()
    pruning.prune(model, 0.25)
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0,
                        callbacks=[pruning.SparsityLogger(log_dir=str(tmp_path))])
    assert history.history["sparsity/total"] == pytest.approx([0.25, 0.25], abs=0.01)
    assert history.history["sparsity/fc"] == [0.25, 0.25]
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


def test_rewinding_the_optimizer_does_not_rewind_the_pruning_schedule():
    model = _model()
    snapshot = pruning.Snapshot(iteration=0)
    prune_cb = pruning.PruneCallback(pruning.OneShot(step=6, fraction=0.5), rewind=pruning.Rewind(snapshot),
                                     verbose=0)
    x, y = _data(64)
    model.fit(x, y, batch_size=8, epochs=3, callbacks=[snapshot, prune_cb], verbose=0)
    assert prune_cb.pruned_at == [6]  # steps 6 of later epochs are steps 14 and 22, not 6 again
    assert int(model.optimizer.iterations.numpy()) == 24 - 6
    assert pruning.sparsity(model)["fc"] == 0.5


def test_a_second_fit_does_not_replay_the_schedule():
    model = _model()
    init = pruning.Snapshot(iteration=0)
    prune_cb = pruning.PruneCallback(pruning.OneShot(step=6, fraction=0.5), rewind=pruning.Rewind(init), verbose=0)
    x, y = _data(64)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[init, prune_cb], verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[init, prune_cb], verbose=0)  # steps 8..15
    assert prune_cb.pruned_at == [6] and prune_cb.steps_done == 16
    assert pruning.sparsity(model)["fc"] == 0.5  # not 0.75: step 6 did not come round again


def _compiled(steps_per_execution):
    model = _model()
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    return model


def test_snapshot_needs_an_execution_boundary():
    x, y = _data(64)
    with pytest.raises(ValueError, match="iteration=3 is not on an execution boundary of steps_per_execution=2"):
        _compiled(2).fit(x, y, batch_size=8, epochs=1, callbacks=[pruning.Snapshot(3)], verbose=0)
    exact, one_by_one = pruning.Snapshot(4), pruning.Snapshot(4)
    _compiled(2).fit(x, y, batch_size=8, epochs=1, callbacks=[exact], verbose=0, shuffle=False)
    _compiled(1).fit(x, y, batch_size=8, epochs=1, callbacks=[one_by_one], verbose=0, shuffle=False)
    assert int(exact.optimizer[0]) == 4  # the weights after exactly 4 steps
    for a, b in zip(exact.weights, one_by_one.weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_ema_leaves_pruned_weights_at_zero():
    model = _model()
    model.compile(keras.optimizers.Adam(0.01, use_ema=True, ema_momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(64)
    prune_cb = pruning.PruneCallback(pruning.OneShot(step=4, fraction=0.5), verbose=0)
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[prune_cb], verbose=0)
    kernel, mask = model.get_layer("fc").kernel.numpy(), pruning.get_masks(model)["fc"]
    assert mask.mean() == 0.5 and np.all(kernel[mask == 0] == 0.0) and np.all(kernel[mask == 1] != 0.0)


def test_reset_optimizer_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = _model()
        x, y = _data()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        optimizer = model.optimizer
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        pruning.reset_optimizer(model)
        assert float(optimizer.inner_optimizer.learning_rate) == pytest.approx(0.01)
        assert int(optimizer.iterations.numpy()) == 0
        assert float(optimizer.dynamic_scale.numpy()) == optimizer.get_config()["initial_scale"]
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert int(optimizer.iterations.numpy()) == 8  # it trains on
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_prune_callback_refuses_a_bad_score_before_training():
    with pytest.raises(ValueError, match=r"score='snrr' is unknown"):
        pruning.PruneCallback(pruning.Every(10, fraction=0.2), score="snrr")
    model = models.lenet_300_100(input_shape=(4, 4, 1))
    model.compile("adam", "sparse_categorical_crossentropy")
    callback = pruning.PruneCallback(pruning.Every(10, fraction=0.2), score="snr")
    x, y = np.zeros((4, 4, 4, 1), np.float32), np.zeros(4, np.int32)
    with pytest.raises(ValueError, match=r"score 'snr' needs Bayesian layers"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])


def test_a_gradient_score_without_data_is_refused_when_the_callback_is_made():
    with pytest.raises(ValueError, match=r"score 'snip' reads the loss gradient of data: pass score_args="):
        pruning.PruneCallback(pruning.OneShot(step=0, fraction=0.5), score="snip")


def test_score_args_data_may_be_a_function_of_the_step_and_a_loss_passes_as_it_is():
    model = _model()
    x, y = _data()
    asked = []

    def data(step):
        asked.append(step)
        return x[:16], y[:16]

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # callable, but not a step function
    callback = pruning.PruneCallback(pruning.OneShot(step=2, fraction=0.5), score="snip",
                                     score_args={"data": data, "loss": loss}, verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert asked == [2] and pruning.sparsity(model)["total"] == pytest.approx(0.5, abs=0.01)


def test_a_user_schedule_subclasses_step_callback_and_sees_every_step_once_across_fits():
    """tflth.pruning.StepCallback, the public base of the schedules: at_step(step) before each
    step, counted on across fit calls, the steps between executions visited late."""
    class Record(pruning.StepCallback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def at_step(self, step):
            self.seen.append((step, self.late))

    model, (x, y) = _model(), _data(64)
    record = Record()
    model.fit(x, y, batch_size=16, epochs=2, callbacks=[record], verbose=0)  # 4 steps an epoch
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[record], verbose=0)
    assert record.seen == [(step, False) for step in range(12)]
    model = _model()
    model.compile(model.optimizer, model.loss, steps_per_execution=2)
    record = Record()
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[record], verbose=0)
    assert record.seen == [(0, False), (1, True), (2, False)]  # hooks at steps 0 and 2 only
    with pytest.raises(NotImplementedError, match="Bare must define at_step"):
        type("Bare", (pruning.StepCallback,), {})().at_step(0)
