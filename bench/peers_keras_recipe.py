"""peers_keras_recipe.py — the seed program in Keras 3 (TensorFlow backend),
run by bench/peers.sh with the peers' venv python: VGG16 without its top at
32x32, frozen, Flatten / Dense 1024 relu / Dense 10 softmax, SGD 0.01 with
Keras' legacy decay 1e-6 written the modern way (learning_rate=
InverseTimeDecay(0.01, decay_steps=1, decay_rate=1e-6): lr / (1 + 1e-6 *
iterations), the legacy formula), momentum 0.9, Nesterov, categorical
cross-entropy, batch 32, then evaluate on the test set.  The program is the
seed's line for line; only keras.datasets.cifar10.load_data() (a download)
is replaced by reading the same CIFAR-10 binary records graft reads.

  peers_keras_recipe.py CIFAR_DIR_OR_BIN TEST_BIN EPOCHS THREADS WEIGHTS [SIZE]
    WEIGHTS: a Keras VGG16 notop .h5 file, or none (random weights: speed only;
    the imagenet .h5 is not reachable from these machines).
Prints `key value` lines: epoch_seconds (one per epoch), test_accuracy,
test_loss, versions."""
import os
import sys
import time

THREADS = int(sys.argv[4])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
import numpy as np
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(THREADS)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
from keras.applications.vgg16 import VGG16, preprocess_input
from keras.layers import Dense, Flatten
from keras.models import Model
from keras.optimizers import SGD
from keras.optimizers.schedules import InverseTimeDecay


def load_cifar(path):
    """(x uint8 [N, 32, 32, 3] RGB, y [N, 1]) from CIFAR-10 .bin records, as load_data() returns them."""
    files = [os.path.join(path, "data_batch_%d.bin" % k) for k in range(1, 6)] if os.path.isdir(path) else [path]
    raw = np.concatenate([np.fromfile(f, np.uint8).reshape(-1, 3073) for f in files])
    return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), raw[:, :1].astype(np.int64)


class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        print("epoch_seconds %.2f  # epoch %d loss %.4f" % (time.time() - self.t0, epoch + 1, logs["loss"]),
              flush=True)


def main():
    data, test, epochs, weights = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[5]
    size = int(sys.argv[6]) if len(sys.argv) > 6 else 32
    print("versions tensorflow=%s keras=%s" % (tf.__version__, keras.__version__), flush=True)
    x_train, y_train = load_cifar(data)
    x_test, y_test = load_cifar(test)
    y_train = keras.utils.to_categorical(y_train, 10)
    y_test = keras.utils.to_categorical(y_test, 10)
    x_train = preprocess_input(x_train.astype("float32"))
    x_test = preprocess_input(x_test.astype("float32"))

    # --- the seed program ---
    base_model = VGG16(weights=None if weights == "none" else weights, include_top=False,
                       input_shape=(size, size, 3))
    x = base_model.output
    x = Flatten()(x)
    x = Dense(1024, activation="relu")(x)
    predictions = Dense(10, activation="softmax")(x)
    model = Model(inputs=base_model.input, outputs=predictions)
    for layer in base_model.layers:
        layer.trainable = False
    lr = InverseTimeDecay(initial_learning_rate=0.01, decay_steps=1, decay_rate=1e-6)
    model.compile(optimizer=SGD(learning_rate=lr, momentum=0.9, nesterov=True),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0, callbacks=[EpochTimes()])
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    # --- end of the seed program ---
    print("test_loss %.4f" % loss)
    print("test_accuracy %.4f" % acc)


if __name__ == "__main__":
    main()
