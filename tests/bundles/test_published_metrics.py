"""The shipped weights of every network bundle reproduce its published numbers (issue 18 item 4).

- ``test_published_eval_metrics``: the bundle's own ``scripts/evaluate.py`` on its whole held-out set gives
  ``configs/metadata.json``'s ``eval_metrics`` (network and no-registration keys; not timings, peers, instance
  optimisation or the bundle's other trainings);
- ``test_per_pair_results``: for the bundles whose whole set is too slow for the default suite, the script on one to
  four held-out pairs gives the per-pair rows of ``docs/results/results.json`` (the whole set runs with ``-m slow``);
- ``test_a_damaged_network_fails``: the same check with the network's output layer zeroed fails, so a regression of
  the weights is caught.

Tolerances (absolute, :func:`tests.bundles.published.tolerance`): 2e-3 for Dice, LNCC, mutual information and SD of
log J; 0.02 for distances in mm or pixels and folding in %; 5e-4 for folding fractions; 5e-5 for mean squared
differences; plus one unit of the last published digit (the scripts round ``eval_metrics`` to 2-5 decimals). The
CPU results are deterministic; the margins allow for other BLAS builds and thread counts.

The two ``classical_*`` bundles are not here: their ``models/model.pt`` holds optimisation results (an affine
``theta``, B-spline ``control_points``), not network weights, and they have no ``evaluate.py``
(``test_classical_bundles.py`` runs their optimisation).
"""

from __future__ import annotations

import os

import pytest
import torch

from tests.bundles.published import (
    BUNDLES_DIR,
    MEANS,
    PAIRS,
    compare,
    compare_rows,
    published_metrics,
    zero_output_layer,
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """The scripts set process-wide state: ITK's thread variable, torch's RNG seed, grad mode."""
    monkeypatch.setenv(
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    )
    grad = torch.is_grad_enabled()
    with torch.random.fork_rng():
        yield
    torch.set_grad_enabled(grad)


def _marks(case) -> list:
    """``slow`` for the slow cases, a strict ``xfail`` naming the drift for those known not to reproduce."""
    return [pytest.mark.slow] * case.slow + [pytest.mark.xfail(strict=True, reason=case.drift)] * bool(case.drift)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c)) for c in MEANS])
def test_published_eval_metrics(case, tmp_path):
    keys, problems = compare(published_metrics(case.bundle), case.run(tmp_path, None), case.digits, case.ignore)
    assert keys, f"{case.id}: no published eval_metrics to compare"
    assert not problems, f"{case.id}: shipped weights vs configs/metadata.json eval_metrics:\n" + "\n".join(problems)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.bundle) for c in PAIRS])
def test_per_pair_results(case, tmp_path):
    keys, problems = compare_rows(case.reference(), case.run(tmp_path, None), case.by, case.digits, case.skip)
    assert keys, f"{case.bundle}: nothing compared"
    assert not problems, f"{case.bundle}, models/model.pt vs docs/results/results.json:\n" + "\n".join(problems)


def test_a_damaged_network_fails(tmp_path):
    """paired_mrus_prostate's 2 pairs with the output layer zeroed (the network then does not register): the
    network's Dice and TRE move to the no-registration values, far outside the tolerances."""
    case = next(c for c in PAIRS if c.bundle == "paired_mrus_prostate")
    weights = zero_output_layer(BUNDLES_DIR / case.bundle / "models" / "model.pt", tmp_path / "zeroed.pt")
    measured = case.run(tmp_path, weights)
    _, problems = compare_rows(case.reference(), measured, case.by, case.digits, case.skip)
    failed = {p.split(": ")[1] for p in problems if p.startswith("network")}
    assert {"dice_gland", "dice_transition_zone", "tre_mm"} <= failed, problems
    assert not [p for p in problems if p.startswith("none")], problems
