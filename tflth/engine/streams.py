"""The data a run trains and evaluates on, as tf.data pipelines built once per branch.

Batch i of a training stream is a pure function of (seed, i): example position p = i * B + j
is example `index_shuffle(p mod n)` of epoch p // n's seeded permutation. So a run resumed at
iteration s reads exactly the batches an uninterrupted run reads, and nothing about the order
depends on TensorFlow's global seed or on how many streams were made before.
"""
import tensorflow as tf

EVAL_BATCH = 1000


def _shuffled(positions, n, seed):
    """The example index at each position of the endless sequence of seeded epochs."""
    epoch = positions // n
    seeds = tf.stack([tf.fill(tf.shape(positions), tf.cast(seed, tf.int64)), epoch, tf.zeros_like(epoch)],
                     axis=-1)
    # The op itself: tf.random.experimental.index_shuffle pads a batch of seeds wrongly (TF 2.21).
    return tf.raw_ops.RandomIndexShuffle(index=positions % n, seed=seeds, max_index=tf.cast(n - 1, tf.int64))


def _augment(image, seed):
    """Pad-4 random crop and horizontal flip, seeded per example (deterministic)."""
    shape = tf.shape(image)
    padded = tf.image.pad_to_bounding_box(image, 4, 4, shape[0] + 8, shape[1] + 8)
    image = tf.image.stateless_random_crop(padded, shape, seed=seed)
    return tf.image.stateless_random_flip_left_right(image, seed=seed + 1)


def train_stream(x, y, batch_size, seed, start=0, augment=False):
    """Batches start, start + 1, ... (endless) of seeded epochs over uint8 images `x`, labels `y`."""
    n, seed = len(x), int(seed)
    images, labels = tf.constant(x), tf.constant(y)  # once per stream, not per interval

    if augment:  # crops differ per example, so build examples one by one
        def example(position):
            index = _shuffled(position, n, seed)
            image = _augment(tf.cast(tf.gather(images, index), tf.float32) / 255.0,
                             tf.stack([tf.constant(seed, tf.int64), position]))
            return image, tf.gather(labels, index)
        ds = tf.data.Dataset.counter(start * batch_size).map(example, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size)
    else:  # gather whole batches: no per-example work
        def batch(step):
            index = _shuffled(step * batch_size + tf.range(batch_size, dtype=tf.int64), n, seed)
            return tf.cast(tf.gather(images, index), tf.float32) / 255.0, tf.gather(labels, index)
        ds = tf.data.Dataset.counter(start).map(batch, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_stream(x, y, batch_size=EVAL_BATCH):
    """The whole of (x, y) once per pass, as float images, cached after the first pass."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return ds.map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b)).cache().prefetch(tf.data.AUTOTUNE)
