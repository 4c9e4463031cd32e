"""Statistics of the evaluation harness, checked against scipy, worked examples and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from deepaq.errors import ConfigError
from deepaq.evaluation import stats
from deepaq.evaluation.stats import _weighted_kendall, _weighted_pearson, _weighted_ranks
from deepaq.mapping import Mapping, _spread_ties, fit_mapping


@pytest.fixture
def tied_data():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=40), 1)  # ties on purpose
    y = np.round(x + rng.normal(scale=0.8, size=40), 1)
    return x, y


def test_point_estimates_match_scipy(tied_data):
    x, y = tied_data
    assert stats.pearson(x, y) == pytest.approx(sps.pearsonr(x, y).statistic, abs=1e-12)
    assert stats.spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert stats.kendall(x, y) == pytest.approx(sps.kendalltau(x, y).statistic, abs=1e-12)
    assert stats.rmse(x, y) == pytest.approx(np.sqrt(np.mean((x - y) ** 2)))
    assert math.isnan(stats.pearson(np.ones(5), np.arange(5.0)))


def test_weighted_statistics_equal_replicated_data(tied_data):
    """A bootstrap resample as integer weights gives exactly the replicated sample's statistics."""
    x, y = tied_data
    rng = np.random.default_rng(0)
    w = rng.integers(0, 4, size=(5, x.size)).astype(float)
    ranks_x = _weighted_ranks(x, w)
    taus = _weighted_kendall(x, y, w)
    for row, wi in enumerate(w):
        rep_x, rep_y = np.repeat(x, wi.astype(int)), np.repeat(y, wi.astype(int))
        assert _weighted_pearson(x[None], y[None], wi[None])[0] == pytest.approx(sps.pearsonr(rep_x, rep_y).statistic)
        expected = dict(zip(rep_x, sps.rankdata(rep_x)))
        kept = wi > 0
        assert np.allclose(ranks_x[row][kept], [expected[v] for v in x[kept]])
        srcc = _weighted_pearson(ranks_x[row][None], _weighted_ranks(y, wi[None]), wi[None])[0]
        assert srcc == pytest.approx(sps.spearmanr(rep_x, rep_y).statistic)
        assert taus[row] == pytest.approx(sps.kendalltau(rep_x, rep_y).statistic)


def test_bootstrap_resamples_whole_groups():
    groups = np.repeat(np.arange(6), 4)
    w = stats.group_weights(groups, 50, np.random.default_rng(1))
    assert w.shape == (50, 24)
    for row in w:  # members of one group always carry the same weight, and 6 groups are drawn
        assert all(len(set(row[groups == g])) == 1 for g in range(6))
        assert row.sum() == 24


def test_bootstrap_ci_covers_true_correlation_at_nominal_rate():
    """200 simulated studies (n = 60, rho = 0.6): the 95 % interval should cover rho ~95 % of the time."""
    rho, n, sims, n_boot = 0.6, 60, 200, 400
    rng = np.random.default_rng(12)
    cov = [[1, rho], [rho, 1]]
    data = rng.multivariate_normal([0, 0], cov, size=(sims, n))
    covered = 0
    for s in range(sims):
        x, y = data[s, :, 0], data[s, :, 1]
        w = stats.group_weights(np.arange(n), n_boot, rng)
        r = _weighted_pearson(x[None], y[None], w)
        lo, hi = np.quantile(r, [0.025, 0.975])
        covered += lo <= rho <= hi
    rate = covered / sims
    assert 0.89 <= rate <= 0.99, rate  # binomial sd at 200 draws is 1.5 %; percentile CIs undercover slightly


def test_bootstrap_agreement_returns_intervals_around_estimates(tied_data):
    x, y = tied_data
    est = stats.bootstrap_agreement(x, y, np.arange(x.size) // 4, n_boot=300, seed=2)
    for name in ("pcc", "srcc", "kendall", "rmse"):
        e = est[name]
        assert e.low <= e.value <= e.high, name
    assert est["pcc"].value == pytest.approx(sps.pearsonr(x, y).statistic)
    with pytest.raises(ConfigError):
        stats.bootstrap_agreement(x, y[:-1])


def test_williams_test_matches_worked_examples():
    # Field, "Discovering Statistics": exam performance vs anxiety (-.441) and revision time (.397),
    # anxiety vs revision -.709, n = 103: t(100) = 5.09.
    t, p = stats.williams_test(0.397, -0.441, -0.709, 103)
    assert t == pytest.approx(5.09, abs=0.005)
    assert p < 1e-5
    # bruceR::cor_diff(r1 = .20, r2 = .45, n = 100, rcov = .80): t(97) = -4.56, p = 1e-05.
    t, p = stats.williams_test(0.20, 0.45, 0.80, 100)
    assert t == pytest.approx(-4.56, abs=0.005)
    assert p == pytest.approx(1.5e-5, abs=0.5e-5)


def test_steiger_z_is_calibrated_under_the_null_and_agrees_with_williams():
    # Steiger (1980) example: r12 = .5, r13 = .4, r23 = .1, n = 103; Z1* and Williams nearly agree.
    z, p = stats.steiger_z(0.5, 0.4, 0.1, 103)
    t, _ = stats.williams_test(0.5, 0.4, 0.1, 103)
    assert z == pytest.approx(t, abs=0.01) and 0.3 < p < 0.45
    # Under H0 (corr(y, a) = corr(y, b) = .5, corr(a, b) = .4) both tests reject about 5 % at alpha = .05.
    rng = np.random.default_rng(5)
    cov = np.array([[1, 0.5, 0.5], [0.5, 1, 0.4], [0.5, 0.4, 1]])
    n, sims = 40, 1500
    reject_w = reject_s = 0
    for d in rng.multivariate_normal(np.zeros(3), cov, size=(sims, n)):
        r = np.corrcoef(d.T)
        reject_w += stats.williams_test(r[0, 1], r[0, 2], r[1, 2], n)[1] < 0.05
        reject_s += stats.steiger_z(r[0, 1], r[0, 2], r[1, 2], n)[1] < 0.05
    assert 0.03 <= reject_w / sims <= 0.075
    assert 0.03 <= reject_s / sims <= 0.075
    with pytest.raises(ConfigError):
        stats.steiger_z(0.5, 0.4, 0.1, 3)


def test_kfold_by_group_never_splits_a_group():
    groups = np.repeat(["a", "b", "c", "d", "e", "f", "g"], 3)
    folds = stats.kfold_by_group(groups, k=5, seed=0)
    assert len(folds) == 5
    seen = np.concatenate([test for _, test in folds])
    assert sorted(seen) == list(range(groups.size))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    with pytest.raises(ConfigError):
        stats.kfold_by_group(["a", "a"], k=5)


def test_cross_validated_predictions_never_see_their_own_group():
    x = np.arange(12.0)
    groups = np.repeat(np.arange(4), 3)
    seen = {}

    def fit(xt, yt):
        return lambda xs: np.full(len(xs), xt.mean())  # predicts the training mean

    pred = stats.cross_validated(x, x, groups, fit, k=4)
    for g in range(4):
        held = groups == g
        seen[g] = pred[held][0]
        assert seen[g] == pytest.approx(x[~held].mean())


def test_fisher_mean():
    assert stats.fisher_mean([0.5, 0.5]) == pytest.approx(0.5)
    assert stats.fisher_mean([0.9, 0.1]) == pytest.approx(np.tanh((np.arctanh(0.9) + np.arctanh(0.1)) / 2))
    assert math.isnan(stats.fisher_mean([]))


@pytest.mark.parametrize("kind", ["cubic", "mlp", "quantile"])
def test_mapping_is_monotone_improves_pcc_and_round_trips(kind, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, 120)  # a distance: lower is better
    y = 1 + 4 / (1 + np.exp(4 * (x - 1.5))) + rng.normal(0, 0.15, x.size)
    m = fit_mapping(x, y, kind)
    pred = m(x)
    assert not m.increasing
    grid = np.linspace(-1, 4, 500)  # also beyond the data: clamped, never turning around
    assert np.all(np.diff(m(grid)) <= 1e-9)
    assert stats.pearson(pred, y) > abs(stats.pearson(x, y)) + 0.01
    assert stats.spearman(pred, y) == pytest.approx(-stats.spearman(x, y), abs=0.02)
    loaded = Mapping.load(m.save(tmp_path / "map.json"))
    assert np.allclose(loaded(x), pred)


def test_quantile_mapping_keeps_the_spread_at_the_top():
    """Quantile matching sends the lowest distances to the top of the subjective range, where a
    least-squares fit regresses to the conditional mean of noisy ratings."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 3, 400)
    y = np.clip(100 - 25 * x + rng.normal(0, 15, x.size), 0, 100)
    top = np.quantile(y, 0.99)
    assert fit_mapping(x, y, "quantile")(x.min()) == pytest.approx(y.max(), abs=1e-9)
    assert fit_mapping(x, y, "quantile")(np.quantile(x, 0.01)) >= top - 1.0  # the ceiling's ties: a short ramp
    assert fit_mapping(x, y, "cubic")(x.min()) < top


def test_quantile_mapping_never_ties_two_scores_at_a_ceiling_or_floor():
    """Many items at 100 (and at 0) and many scores at exactly 0: the mapping still keeps the
    range, sends 0 to the top and orders every two different scores."""
    rng = np.random.default_rng(2)
    x = np.r_[np.zeros(40), rng.exponential(2.0, 960)]
    y = np.clip(100 - 20 * x + rng.normal(0, 5, x.size), 0, 100)
    m = fit_mapping(x, y, "quantile")
    inside = np.sort(x[(x > 0) & (x < x.max())])
    assert m(0.0) == pytest.approx(100.0) and m(x.max()) == pytest.approx(0.0)
    assert np.all(np.diff(m(inside)) < 0)
    ramps = _spread_ties(np.array([5.0, 5.0, 3.0, 3.0]))  # a run, then a run at the end
    assert np.all(np.diff(ramps) < 0) and ramps[0] == 5.0 and ramps[-1] == 3.0


def test_mapping_rejects_bad_input(tmp_path):
    with pytest.raises(ConfigError):
        fit_mapping([1, 2, 3], [1, 2, 3])
    with pytest.raises(ConfigError):
        fit_mapping([1, 2, 3, np.nan], [1, 2, 3, 4])
    with pytest.raises(ConfigError):
        fit_mapping([1, 2, 3, 4], [1, 2, 3, 4], kind="quartic")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        Mapping.load(tmp_path / "bad.json")
