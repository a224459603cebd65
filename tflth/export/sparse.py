"""The `sparse` export format: kernels stored in compressed sparse row (CSR) form.

A kernel is seen as a matrix with one row per output unit (a Dense kernel transposed; a Conv2D
kernel reshaped to (filters, height * width * in_channels)) and stored as its non-zero values
(float32), their column indices (int16 where the row length allows, else int32) and one row
pointer (int32) per row plus one: about 6 bytes per kept weight where a dense kernel spends 4 per
weight. Dense layers multiply sparsely (`csr_matmul`: gather the inputs the kept weights read,
sum per output unit), so neither the file nor the memory ever holds the dense kernel. Conv2D layers rebuild their (small) dense kernel in each call
and convolve with `tf.nn.conv2d`: TensorFlow has no sparse convolution, and computing one as a
sparse product with image patches would cost far more memory (the patches) than the kernel saves.
"""
import keras
import numpy as np
import tensorflow as tf


def index_dtype(columns):
    return np.int16 if columns <= np.iinfo(np.int16).max + 1 else np.int32


def to_csr(matrix):
    """(values float32, column indices, row pointers int32) of a 2-D array's non-zero entries."""
    matrix = np.asarray(matrix)
    rows, columns = np.nonzero(matrix)
    pointers = np.zeros(matrix.shape[0] + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=matrix.shape[0]), out=pointers[1:])
    return (matrix[rows, columns].astype(np.float32), columns.astype(index_dtype(matrix.shape[1])), pointers)


def from_csr(values, columns, pointers, shape):
    """The dense matrix of `to_csr`'s output."""
    matrix = np.zeros(shape, np.float32)
    matrix[np.repeat(np.arange(shape[0]), np.diff(pointers)), columns.astype(np.int64)] = values
    return matrix


def csr_limit_bytes(nonzeros, rows, value_bytes=4, index_bytes=4):
    """The bytes CSR needs at the least: values, column indices and rows + 1 row pointers, all
    32-bit by default (scipy's CSR; `index_bytes=2`: 16-bit column indices, as `to_csr` stores
    where the rows allow, with 32-bit pointers)."""
    return nonzeros * (value_bytes + index_bytes) + (rows + 1) * 4


def _row_ids(pointers, rows):
    """The row of every stored entry, from the row pointers."""
    return tf.repeat(tf.range(rows), pointers[1:] - pointers[:-1])


def csr_matmul(x, values, columns, pointers, shape):
    """x @ W for x of shape (batch, shape[1]) and W.T (of `shape`) in CSR form: (batch, shape[0]).
    Each kept weight's input is gathered and the products are summed per output unit
    (`tf.math.segment_sum` over the sorted row ids): time and memory in proportion to the kept
    weights times the batch. On a 2-core CPU this ran 1.3x to 2x faster than
    `tf.sparse.sparse_dense_matmul` with its transposes, and 3x faster than
    `unsorted_segment_sum` at batch 256 (tools/bench_export.py measures the result)."""
    rows = shape[0]
    products = tf.gather(tf.transpose(x), tf.cast(columns, tf.int32)) * values[:, None]  # (kept, batch)
    sums = tf.math.segment_sum(products, _row_ids(pointers, rows))  # rows up to the last non-empty one
    return tf.transpose(tf.pad(sums, [[0, rows - tf.shape(sums)[0]], [0, 0]]))


class _CSRLayer(keras.layers.Layer):
    """Holds a kernel in CSR form (`rows` output units by `row_length`) and a bias."""

    def __init__(self, rows, row_length, nonzeros, activation=None, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.row_length, self.nonzeros = rows, row_length, nonzeros
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        def weight(name, shape, dtype):
            return self.add_weight(name=name, shape=shape, dtype=dtype, initializer="zeros", trainable=False)

        self.values = weight("values", (self.nonzeros,), "float32")
        self.columns = weight("columns", (self.nonzeros,), np.dtype(index_dtype(self.row_length)).name)
        self.pointers = weight("row_pointers", (self.rows + 1,), "int32")
        self.bias = weight("bias", (self.rows,), "float32") if self.use_bias else None

    def csr(self):
        return self.values, self.columns, self.pointers, (self.rows, self.row_length)

    def finish(self, y):
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)

    def get_config(self):
        return {**super().get_config(), "rows": self.rows, "row_length": self.row_length, "nonzeros": self.nonzeros,
                "activation": keras.activations.serialize(self.activation), "use_bias": self.use_bias}


class SparseDense(_CSRLayer):
    """A Dense layer computing with a CSR kernel."""

    def call(self, inputs):
        x = tf.reshape(inputs, (-1, self.row_length))
        y = tf.reshape(csr_matmul(x, *self.csr()), tf.concat([tf.shape(inputs)[:-1], [self.rows]], axis=0))
        return self.finish(y)


class SparseConv2D(_CSRLayer):
    """A channels_last Conv2D layer whose kernel is stored in CSR form."""

    def __init__(self, rows, row_length, nonzeros, kernel_size, strides, padding, dilation_rate, **kwargs):
        super().__init__(rows, row_length, nonzeros, **kwargs)
        self.kernel_size, self.strides = tuple(kernel_size), tuple(strides)
        self.padding, self.dilation_rate = padding, tuple(dilation_rate)

    def call(self, inputs):
        values, columns, pointers, shape = self.csr()
        indices = tf.stack([_row_ids(pointers, shape[0]), tf.cast(columns, tf.int32)], axis=1)
        dense = tf.scatter_nd(indices, values, shape)
        kernel = tf.reshape(tf.transpose(dense), (*self.kernel_size, -1, self.rows))
        y = tf.nn.conv2d(inputs, kernel, strides=self.strides, padding=self.padding.upper(),
                         dilations=self.dilation_rate)
        return self.finish(y)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "dilation_rate": self.dilation_rate}


def sparse_layer(layer, kernel, bias):
    """(a SparseDense / SparseConv2D computing as `layer` does with `kernel` and `bias`, its weights)."""
    common = dict(activation=keras.activations.serialize(layer.activation), use_bias=layer.use_bias,
                  name=layer.name)
    matrix = kernel.reshape(-1, kernel.shape[-1]).T
    values, columns, pointers = csr = to_csr(matrix)
    if kernel.ndim == 2:
        new = SparseDense(matrix.shape[0], matrix.shape[1], len(values), **common)
    else:
        if layer.data_format != "channels_last" or layer.groups != 1:
            raise ValueError(f"layer {layer.name!r}: the sparse format supports channels_last Conv2D layers "
                             "without groups")
        new = SparseConv2D(matrix.shape[0], matrix.shape[1], len(values), layer.kernel_size, layer.strides,
                           layer.padding, layer.dilation_rate, **common)
    return new, list(csr) + ([bias] if layer.use_bias else [])
