"""etude resumable training: a linear regression that a short time limit cuts several times.

`Train` is a `ResumableTask`. It saves a checkpoint (weights and epoch) after every epoch, and
each epoch takes a little time on purpose, so that the time limit (`--requirements`, two
seconds by default) stops it before the end. At the limit the direct launcher sends SIGTERM;
the job is recorded as timed out and etude starts it again in the same folder, where it
resumes from its checkpoint. With `--graceful`, the task instead looks at `remaining_time()`
before each epoch and stops by itself, raising `GracefulTimeout`, when the epoch would not fit.

The script then trains the same model in this process without interruption and checks that the
weights are the same: stopping and resuming must not change the result. It prints the number
of attempts and the final loss, and exits with status 1 if the two results differ.

    python examples/resumable_training.py --workspace runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from etude import (
    Config,
    GracefulTimeout,
    Meta,
    Param,
    PathGenerator,
    ResumableTask,
    experiment,
    field,
)
from etude.launchers import DirectLauncher


class Dataset(Config):
    """A generated regression problem: y = X @ w + noise."""

    samples: Param[int] = 256
    features: Param[int] = 8
    noise: Param[float] = 0.1
    seed: Param[int] = 0

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        x = rng.normal(size=(self.samples, self.features))
        w = rng.normal(size=self.features)
        return x, x @ w + self.noise * rng.normal(size=self.samples)


def gradient_step(w: np.ndarray, x: np.ndarray, y: np.ndarray, lr: float) -> np.ndarray:
    """One epoch of full-batch gradient descent on the mean squared error."""
    return w - lr * (x.T @ (x @ w - y) / len(y))


def mse(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((x @ w - y) ** 2))


class Train(ResumableTask):
    data: Param[Dataset]
    lr: Param[float] = 0.05
    epochs: Param[int] = 40
    # Meta: how long an epoch lasts, and whether to stop early, do not change the result.
    epoch_seconds: Meta[float] = 0.1
    graceful: Meta[bool] = False
    checkpoint: Meta[Path] = field(default_factory=PathGenerator("checkpoint.npz"))
    result: Meta[Path] = field(default_factory=PathGenerator("result.json"))

    def execute(self) -> None:
        x, y = self.data.load()
        w, epoch, attempts = np.zeros(x.shape[1]), 0, 0
        if self.checkpoint.exists():
            with np.load(self.checkpoint) as saved:
                w, epoch, attempts = saved["w"], int(saved["epoch"]), int(saved["attempts"])
        attempts += 1
        print(f"attempt {attempts}: starting at epoch {epoch}", flush=True)
        self.save(w, epoch, attempts)
        while epoch < self.epochs:
            left = self.remaining_time()  # None without a time limit
            if self.graceful and left is not None and left < 3 * self.epoch_seconds:
                raise GracefulTimeout(f"{left:.2f} s left: not enough for epoch {epoch + 1}")
            w = gradient_step(w, x, y, self.lr)
            time.sleep(self.epoch_seconds)  # stands for the real work of an epoch
            epoch += 1
            self.save(w, epoch, attempts)
            print(f"epoch {epoch}: loss {mse(w, x, y):.6f}", flush=True)
        summary = {"attempts": attempts, "loss": mse(w, x, y), "weights": w.tolist()}
        self.result.write_text(json.dumps(summary))

    def save(self, w: np.ndarray, epoch: int, attempts: int) -> None:
        """Write the checkpoint atomically: a stop at any moment leaves the old or the new one."""
        tmp = self.checkpoint.with_name(f".{self.checkpoint.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as out:
                np.savez(out, w=w, epoch=epoch, attempts=attempts)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.checkpoint)
        finally:
            tmp.unlink(missing_ok=True)  # only left if the stop came before the rename


def uninterrupted(data: Dataset, lr: float, epochs: int) -> np.ndarray:
    """The same training in this process, in one go."""
    x, y = data.load()
    w = np.zeros(x.shape[1])
    for _ in range(epochs):
        w = gradient_step(w, x, y, lr)
    return w


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, default=Path("runs"))
    parser.add_argument("--requirements", default="duration=2s", help="e.g. duration=2s")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--epoch-seconds", type=float, default=0.1)
    parser.add_argument("--max-retries", type=int, default=20)
    parser.add_argument("--graceful", action="store_true", help="stop before the limit")
    args = parser.parse_args()

    with experiment(args.workspace, "resumable", launcher=DirectLauncher(kill_grace=2)):
        data = Dataset.C()
        train = Train.C(
            data=data, epochs=args.epochs, epoch_seconds=args.epoch_seconds, graceful=args.graceful
        )
        train.submit(requirements=args.requirements, max_retries=args.max_retries)

    summary = json.loads(train.result.read_text())
    expected = uninterrupted(data, train.lr, train.epochs)
    weights = np.array(summary["weights"])
    same = np.allclose(weights, expected, rtol=1e-12, atol=1e-12)
    print(f"attempts: {summary['attempts']}")
    print(f"final loss: {summary['loss']:.6f}")
    print(f"max difference from uninterrupted training: {np.max(np.abs(weights - expected)):.3g}")
    print(f"matches uninterrupted training: {'yes' if same else 'no'}")
    print(f"job folder: {train.jobpath}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
