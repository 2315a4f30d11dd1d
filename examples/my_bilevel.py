"""A differentiable problem of your own: ridge regression with one prior precision per feature.

cd examples && hpo run task=bilevel task.build=my_bilevel.build space=my_bilevel strategy=hoag
"""

import torch

from hpo_cli.hypergrad.problem import BilevelProblem, InnerOptimizer

gen = torch.Generator().manual_seed(0)
X = torch.randn(80, 5, generator=gen, dtype=torch.float64)
y = X @ torch.tensor([1.0, -2.0, 0.0, 0.0, 0.5], dtype=torch.float64) + 0.5 * torch.randn(
    80, generator=gen, dtype=torch.float64
)
X_train, y_train, X_val, y_val = X[:50], y[:50], X[50:], y[50:]


def build(layout):
    """layout: the space's hyperparameters (here log_precision, shape (5,))."""

    def inner_loss(theta, hp, t):  # t: the minibatch index (None = all); full batch here
        prior = torch.exp(hp["log_precision"]) * theta**2
        return 0.5 * ((X_train @ theta - y_train) ** 2).mean() + 0.5 * prior.sum() / len(y_train)

    def outer_loss(theta, hp):  # the criterion: validation MSE
        return ((X_val @ theta - y_val) ** 2).mean()

    theta0 = torch.zeros(5, dtype=torch.float64)
    return BilevelProblem(
        theta0,
        inner_loss,
        outer_loss,
        layout,
        n_steps=100,
        optimizer=InnerOptimizer(lr=0.1, momentum=0.9),
    )
