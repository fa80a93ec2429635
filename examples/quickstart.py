"""etude quickstart: a grid of learning rates for a linear model, then an evaluation of each.

Run it with `make demo` (or `python examples/quickstart.py --workspace runs`). The experiment
runs twice: the first run trains and evaluates, the second finds every job done and reuses it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from etude import Config, LightweightTask, Meta, Param, PathGenerator, Task, experiment, field


class Dataset(Config):
    """A generated regression problem: y = X @ w + noise."""

    samples: Param[int] = 512
    features: Param[int] = 8
    noise: Param[float] = 0.1
    seed: Param[int] = 0

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        x = rng.normal(size=(self.samples, self.features))
        w = rng.normal(size=self.features)
        y = x @ w + self.noise * rng.normal(size=self.samples)
        split = self.samples * 3 // 4
        return x[:split], y[:split], x[split:], y[split:]


class LinearModel(Config):
    """Weights are a runtime attribute, filled by training or by `LoadWeights`."""

    l2: Param[float] = 0.0


class LoadWeights(LightweightTask):
    """Runs in the evaluation's job process, before it, to load the trained weights."""

    model: Param[LinearModel]
    path: Meta[Path]

    def execute(self) -> None:
        self.model.weights = np.load(self.path)


class Train(Task):
    data: Param[Dataset]
    model: Param[LinearModel]
    lr: Param[float]
    epochs: Param[int] = 200
    weights: Meta[Path] = field(default_factory=PathGenerator("weights.npy"))

    def task_outputs(self, dep):
        return dep(LoadWeights.C(model=self.model, path=self.weights))

    def execute(self) -> None:
        x, y, _, _ = self.data.load()
        w = np.zeros(x.shape[1])
        for epoch in range(self.epochs):
            grad = x.T @ (x @ w - y) / len(y) + self.model.l2 * w
            w -= self.lr * grad
            if epoch % 50 == 0:
                print(f"epoch {epoch}: train mse {np.mean((x @ w - y) ** 2):.4f}")
        np.save(self.weights, w)


class Evaluate(Task):
    data: Param[Dataset]
    model: Param[LinearModel]

    def execute(self) -> None:
        _, _, x, y = self.data.load()
        mse = float(np.mean((x @ self.model.weights - y) ** 2))
        Path("metrics.json").write_text(json.dumps({"test_mse": mse}))


def run(workspace: Path, lrs: list[float]) -> list[tuple[float, Evaluate]]:
    results = []
    with experiment(workspace, "quickstart"):
        data = Dataset.C()
        for lr in lrs:
            model = LinearModel.C()
            loader = Train.C(data=data, model=model, lr=lr).submit()
            evaluation = Evaluate.C(data=data, model=model)
            evaluation.submit(init_tasks=[loader])
            results.append((lr, evaluation))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspace", type=Path, default=Path("runs"))
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.001, 0.01, 0.1, 0.5])
    args = parser.parse_args()

    print("== first run")
    results = run(args.workspace, args.lrs)
    print(f"\n{'lr':>8}  {'test mse':>10}  job folder")
    for lr, evaluation in results:
        mse = json.loads((evaluation.jobpath / "metrics.json").read_text())["test_mse"]
        print(f"{lr:>8}  {mse:>10.4f}  {evaluation.jobpath}")

    print("\n== second run (same configurations: every job is reused)")
    run(args.workspace, args.lrs)
    print(
        f"\nAll jobs live under {args.workspace.resolve() / 'jobs'}; try `etude -w "
        f"{args.workspace} jobs list`."
    )


if __name__ == "__main__":
    main()
