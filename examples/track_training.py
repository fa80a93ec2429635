"""Record a small training with run tracking: parameters, scalars, a table, a plot, an
artifact and a model — then find the run again.

    python examples/track_training.py [--workspace runs] [--lr 0.05] [--epochs 30]

A logistic regression trained by gradient descent with numpy on scikit-learn's digits (is it
a 7?; the data ships with scikit-learn: no download). Every epoch reports the train and
validation loss; the end reports the accuracy, a confusion table, a loss plot, the predictions
as an artifact and the weights as the output model. The last lines query the workspace for
the run and print what it recorded (results on stdout).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from etude.tracking import Run


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    features = digits.data / 16.0
    labels = (digits.target == 7).astype(float)
    return train_test_split(features, labels, test_size=0.3, random_state=seed)


def loss_of(weights: np.ndarray, features: np.ndarray, labels: np.ndarray) -> float:
    probabilities = 1 / (1 + np.exp(-features @ weights))
    eps = 1e-9
    return float(-np.mean(labels * np.log(probabilities + eps)
                          + (1 - labels) * np.log(1 - probabilities + eps)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default="runs")
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()  # recorded in section Args by Run.init below

    run = Run.init(project="examples/digits", name="logistic", tags=["numpy"],
                   workspace=args.workspace)
    model = run.connect({"l2": 1e-3, "init_scale": 0.01}, name="model")
    train_x, val_x, train_y, val_y = load_data(args.seed)
    rng = np.random.default_rng(args.seed)
    weights = rng.normal(scale=model["init_scale"], size=train_x.shape[1])
    for epoch in range(args.epochs):
        probabilities = 1 / (1 + np.exp(-train_x @ weights))
        gradient = train_x.T @ (probabilities - train_y) / len(train_y) + model["l2"] * weights
        weights -= args.lr * gradient
        run.logger.report_scalar("loss", "train", loss_of(weights, train_x, train_y), epoch)
        run.logger.report_scalar("loss", "val", loss_of(weights, val_x, val_y), epoch)
    predictions = (1 / (1 + np.exp(-val_x @ weights)) > 0.5).astype(float)
    accuracy = float(np.mean(predictions == val_y))
    run.logger.report_single_value("accuracy", accuracy)
    confusion = [{"truth": int(t), "predicted": int(p),
                  "count": int(np.sum((val_y == t) & (predictions == p)))}
                 for t in (0, 1) for p in (0, 1)]
    run.logger.report_table("confusion", "val", iteration=args.epochs, table=confusion)
    report_plot(run, args.epochs)
    run.upload_artifact("predictions", np.stack([val_y, predictions], axis=1))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.npy"
        np.save(path, weights)
        run.log_model(path, name="weights", framework="numpy")
    run.close()

    found = Run.query(project="examples/digits", workspace=args.workspace,
                      where="metrics.accuracy > 0.5", order_by="-metrics.accuracy", limit=1)
    best = found[0]
    print(f"run {best.id[:12]}: accuracy {best.metrics['accuracy']['accuracy']['last']:.3f}")
    print(f"val loss: {best.metrics['loss']['val']['last']:.4f} after "
          f"{best.metrics['loss']['val']['count']} epochs")
    print(f"artifacts: {sorted(best.artifacts)}, models: {sorted(best.models['output'])}")


def report_plot(run: Run, epochs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, val = run.get_scalars("loss")["loss"]["val"]
    figure, axes = plt.subplots()
    axes.plot(range(len(val)), val)
    axes.set_title("validation loss")
    run.logger.report_matplotlib_figure("curves", "val", iteration=epochs, figure=figure)
    plt.close(figure)


if __name__ == "__main__":
    main()
