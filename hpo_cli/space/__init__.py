"""Search spaces and the one encoding between parameter values and the unit cube.

A space is an ordered set of named parameters. Every strategy that works in the unit cube
(random, Sobol, Halton, LHS, GP-BO, evolution) goes through :meth:`SearchSpace.decode` and
:meth:`SearchSpace.encode`, so no strategy branches on parameter types.

Semantics, defined once here:

* ``float``: ``low <= x <= high``; ``log: true`` samples uniformly in log space (``low > 0``);
  ``step`` snaps to ``low + k * step``; ``size`` makes it a vector (an int, or the name of a
  dimension the task fixes at run time, e.g. ``n_coefficients``).
* ``int``: inclusive bounds ``low <= k <= high`` (both endpoints can be drawn), optional
  ``step`` or ``log``; the value is always a Python ``int``.
* ``categorical``: ``choices``; the value itself is returned, never an index.
* ``when: {other: value}`` (or a list of values) makes a parameter conditional: it is present
  only when every named parameter is present and has one of the listed values. The named
  parameter must be declared earlier in the space.
"""

from hpo_cli.space.params import (
    CategoricalParam,
    Conditions,
    FloatParam,
    IntParam,
    Param,
    ParamValue,
    SearchSpace,
)
from hpo_cli.space.parse import parse_space

__all__ = [
    "CategoricalParam",
    "Conditions",
    "FloatParam",
    "IntParam",
    "Param",
    "ParamValue",
    "SearchSpace",
    "parse_space",
]
