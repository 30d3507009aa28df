"""Synthetic problems for testing and benchmarking stacked ensembles.

Two generators are provided:

* :func:`make_probability_matrix` draws the probability matrix ``R`` of an
  ensemble directly (rows are data points, columns are base classifiers), with
  base classifiers whose errors are correlated, so that the plain mean of the
  base predictions is far from perfect and a learned combination has room to
  improve on it.
* :func:`make_imbalanced_classification` draws a feature matrix ``X`` from a
  class-conditional Gaussian mixture with a known Bayes posterior, for
  end-to-end tests in which real base estimators are fitted.

Both return the exact posterior ``p(y | latent)`` of their generating model, so
tests can compare a fitted model with the Bayes-optimal answer.
"""

from numbers import Integral, Real

import numpy as np
from scipy.special import log_softmax, logsumexp
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["make_imbalanced_classification", "make_probability_matrix"]

# Class separation of the latent evidence in make_probability_matrix: the Bayes
# ROC-AUC of the binary latent is Phi(_SEPARATION) ~ 0.99, so the oracle is
# strong and every loss of the base classifiers comes from their own noise,
# the shared subgroup shifts and miscalibration.
_SEPARATION = 2.5
# Standard deviation of the per-subgroup shift of the evidence ("hard
# regions"). Large enough that, with the shared noise, it keeps even the best
# combination of the default classifiers well below the Bayes oracle, small
# enough that a good combination still clearly beats the mean.
_SUBGROUP_SCALE = 0.75
# Scale of classifier noise: sigma_j = _NOISE_SCALE * sqrt(1 / q_j**2 - 1), so
# q_j is (up to this scale) the correlation between a classifier's view and
# the latent evidence; q_j = 1 is noise free and q_j -> 0 is pure noise.
_NOISE_SCALE = 1.0
# Log-scale spread of per-classifier quality exponents around `quality`:
# wide, so that an ensemble holds both strong and nearly useless members.
_QUALITY_SPREAD = 1.5
# Log-scale spread of per-classifier temperatures (over/under-confidence).
_TEMPERATURE_SPREAD = 0.5
# Standard deviation of per-classifier, per-class logit offsets.
_BIAS_SCALE = 0.5

# Scale of the cluster centres of make_imbalanced_classification at
# class_sep=1, relative to cluster standard deviations of about one.
_CENTER_SCALE = 1.0
# Range of eigenvalues of the cluster covariances: unequal and correlated
# clusters make the Bayes boundary quadratic and break naive Bayes' assumption.
_EIGEN_RANGE = (0.3, 1.5)
# Dirichlet concentration of subgroup weights within a class: some subgroups
# are rare, which local models (trees, kNN) and global ones (linear) handle
# differently.
_SUBGROUP_CONCENTRATION = 2.0
# Fraction of columns passed through the monotone map exp(x / (3 s)), with
# s = max(1, class_sep) so values stay moderate at any separation. A bijective
# per-feature map leaves p(y | x) unchanged, but skews the marginals so that
# scale-sensitive models (linear, kNN, naive Bayes) and scale-invariant trees
# make different errors.
_WARP_FRACTION = 0.25


# --------------------------------------------------------------------------
# validation: scikit-learn's parameter constraints (as sklearn.datasets'
# generators declare them), plus the two rules that involve two parameters
# --------------------------------------------------------------------------

# Wider than scikit-learn's "random_state" constraint (an int in
# [0, 2**32 - 1], a RandomState or None): any non-negative int seeds a
# SeedSequence, and a numpy Generator is used as given.
_RANDOM_STATE = [
    Interval(Integral, 0, None, closed="left"),
    np.random.RandomState,
    np.random.Generator,
    None,
]

# Shared by both generators. Binary problems bound positive_rate by 1/2; for K
# classes the bound is 1/K, which :func:`_check_positive_rate` adds.
_COMMON_CONSTRAINTS = {
    "n_samples": [Interval(Integral, 1, None, closed="left")],
    "n_classes": [Interval(Integral, 2, None, closed="left")],
    "positive_rate": [Interval(Real, 0, 0.5, closed="right")],
    "n_subgroups": [Interval(Integral, 1, None, closed="left")],
    "labeled_fraction": [Interval(Real, 0, 1, closed="right")],
    "random_state": _RANDOM_STATE,
}


def _check_positive_rate(positive_rate, n_classes):
    """``positive_rate`` within (0, 1/n_classes], the rule that needs ``n_classes``."""
    limit = 1.0 / n_classes
    if positive_rate > limit:
        raise ValueError(
            f"positive_rate must be in (0, 1/n_classes] = (0, {limit:g}] for "
            f"n_classes={n_classes}: it is the frequency of the rarest class "
            f"{n_classes - 1}; got {positive_rate!r}. Pass e.g. {min(0.1, limit):g}."
        )


def _child_generators(random_state, n_streams):
    """Independent generators, one per component of a generator.

    Giving each component (labels, noise, ...) its own stream keeps a
    component unchanged when a parameter that only affects another component
    changes, so that comparisons at a fixed seed (e.g. two qualities) differ
    only in what the parameter controls.
    """
    if isinstance(random_state, np.random.Generator):
        # Drawing entropy (rather than Generator.spawn, numpy >= 1.25) works
        # on every supported numpy and advances the caller's generator.
        entropy = [int(v) for v in random_state.integers(0, 2**32, size=4)]
    elif isinstance(random_state, Integral):
        entropy = int(random_state)
    else:
        # None or a RandomState: consuming from it follows scikit-learn's
        # convention that repeated calls with one instance give different draws.
        entropy = [
            int(v)
            for v in check_random_state(random_state).randint(0, 2**32 - 1, size=4, dtype=np.int64)
        ]
    return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(n_streams)]


# --------------------------------------------------------------------------
# shared sampling helpers
# --------------------------------------------------------------------------


def _class_priors(n_classes, positive_rate):
    """Class priors: the last class is the rarest; the others share the rest."""
    priors = np.full(n_classes, (1.0 - positive_rate) / (n_classes - 1))
    priors[-1] = positive_rate
    return priors


def _allocate(total, weights, capacity=None, minimum=None):
    """Split an integer total by weights (largest remainder), within bounds.

    When the total covers every bucket's ``minimum`` (bounded by its
    capacity), each bucket gets at least that many, so that no class is left
    empty when it can be helped; otherwise the split is purely proportional.
    """
    weights = np.asarray(weights, dtype=float)
    k = weights.size
    counts = np.zeros(k, dtype=np.int64)
    capacity = np.full(k, np.iinfo(np.int64).max) if capacity is None else capacity
    if minimum is not None:
        floor = np.minimum(minimum, capacity)
        if floor.sum() <= total:
            counts[:] = floor
    remaining = total - counts.sum()
    if remaining > 0:
        share = weights / weights.sum() * total
        extra = np.clip(np.floor(share) - counts, 0, None).astype(np.int64)
        extra = np.minimum(extra, capacity - counts)
        # Floors can overshoot after the minimum was granted; trim if needed.
        while extra.sum() > remaining:
            extra[np.argmax(extra)] -= 1
        counts += extra
        remaining = total - counts.sum()
        frac = share - np.floor(share)
        order = np.lexsort((np.arange(k), -frac))
        while remaining > 0:
            progressed = False
            for idx in order:
                if remaining == 0:
                    break
                if counts[idx] < capacity[idx]:
                    counts[idx] += 1
                    remaining -= 1
                    progressed = True
            if not progressed:
                break
    return counts


def _draw_labels(priors, n_samples, rng):
    """Labels with fixed class counts in random order.

    Fixed counts realize the class priors exactly; since the order is a
    uniform permutation, each row's marginal label distribution is exactly
    ``counts / n_samples``, which is the prior the posteriors use.
    """
    counts = _allocate(n_samples, priors, minimum=np.ones(priors.size, dtype=np.int64))
    y = np.repeat(np.arange(priors.size), counts)
    return rng.permutation(y), counts


def _labeled_mask(y, n_classes, labeled_fraction, rng):
    """Stratified mask with exactly ``max(1, round(f * n))`` labeled rows."""
    n = y.size
    n_labeled = max(1, round(labeled_fraction * n))
    class_counts = np.bincount(y, minlength=n_classes)
    per_class = _allocate(
        n_labeled,
        class_counts.astype(float),
        capacity=class_counts,
        minimum=(class_counts > 0).astype(np.int64),
    )
    mask = np.zeros(n, dtype=bool)
    # One permutation of all rows, then the first members of each class: the
    # draw does not depend on how the per-class quotas came out.
    order = rng.permutation(n)
    for k in range(n_classes):
        rows = order[y[order] == k]
        mask[rows[: per_class[k]]] = True
    return mask


def _noise_scale(quality):
    """Noise standard deviation of a view whose quality is `quality`.

    ``sqrt(1 / q**2 - 1)`` makes ``q`` the correlation between a unit-variance
    signal and the noisy view: 1 is noise free, 0 pure noise. Quality is
    floored so the scale stays finite; logits are divided by the nominal view
    variance, so a tiny nominal quality sends every classifier to the prior,
    the right limit, instead of overflowing.
    """
    q = np.maximum(quality, 1e-150)
    return _NOISE_SCALE * np.sqrt(np.maximum(1.0 / q**2 - 1.0, 0.0))


def _softmax(logits, axis=-1):
    # Not scipy.special.softmax: its rounding differs in the last bits, and the
    # generated data sets (benchmarks, test oracles) are kept bitwise as they were.
    return np.exp(log_softmax(logits, axis=axis))


def _log_priors(counts):
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


# --------------------------------------------------------------------------
# public generators
# --------------------------------------------------------------------------


@validate_params(
    {
        **_COMMON_CONSTRAINTS,
        "n_classifiers": [Interval(Integral, 1, None, closed="left")],
        "quality": [Interval(Real, 0, 1, closed="right")],
        "diversity": [Interval(Real, 0, 1, closed="both")],
    },
    prefer_skip_nested_validation=True,
)
def make_probability_matrix(
    n_samples=1000,
    n_classifiers=10,
    *,
    n_classes=2,
    positive_rate=0.1,
    quality=0.7,
    diversity=0.5,
    n_subgroups=8,
    labeled_fraction=1.0,
    random_state=None,
):
    """Generate an ensemble's probability matrix with correlated base errors.

    Each data point ``i`` has a latent evidence vector
    ``mu_i = s * onehot(y_i) + eps_i`` (``eps_i ~ N(0, I_K)``, ``s = 2.5`` a
    fixed class separation), whose exact posterior is
    ``p(y = k | mu_i) = softmax_k(log pi_k + s * mu_ik)``. Base classifier
    ``j`` does not see ``mu_i``; it sees

    ``u_ij = mu_i + shift[g_i] + sqrt(1 - diversity) * sigma * xi_i
    + sqrt(diversity) * sigma_j * xi_ij``

    where ``g_i`` is the point's subgroup and ``shift[g] ~ N(0, 0.75**2 I_K)``
    an offset shared by all classifiers (a hard region that pushes every
    classifier the same wrong way), ``xi_i`` noise shared by all classifiers
    and ``xi_ij ~ N(0, I_K)`` noise of classifier ``j`` alone. ``sigma`` is
    the noise scale of the nominal ``quality`` and ``sigma_j`` that of the
    classifier's own quality. The shift and the shared noise enter every
    classifier with equal weight, so neither averaging nor any other affine
    combination of the classifiers removes them.

    Classifier ``j`` reports ``softmax(beta_j * (log pi + s * u_ij / v) +
    c_j)``, where ``v`` is the variance of the view of a classifier of nominal
    quality (which would calibrate that classifier), ``beta_j`` a random
    temperature (over-confident when > 1) and ``c_j`` random per-class logit
    offsets. Because all classifiers scale their evidence like a nominal one,
    weak classifiers are over-confident and strong ones under-confident.
    Classifiers thus differ in quality and calibration, and a learned
    weighting beats the plain mean of ``R``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of data points (rows of ``R``), at least 1.
    n_classifiers : int, default=10
        Number of base classifiers, at least 1.
    n_classes : int, default=2
        Number of classes ``K``, at least 2.
    positive_rate : float, default=0.1
        Frequency of the rarest class. For binary problems this is the rate of
        the positive class 1 and must be in (0, 0.5]. For ``K > 2`` classes
        the rarest class is ``K - 1`` with this frequency, the other classes
        share the rest equally, and it must be in (0, 1/K]. Class counts are
        fixed (rounded from the priors), with at least one row per class when
        ``n_samples >= K``.
    quality : float, default=0.7
        How informative the base classifiers are, in (0, 1]. Classifier ``j``
        has quality ``q_j = quality ** exp(1.5 z_j)`` with ``z_j ~ N(0, 1)``,
        so qualities spread widely around ``quality`` (some good, some weak)
        and all rise with it; its noise scale is
        ``sigma_j = sqrt(1 / q_j**2 - 1)``, so ``q_j`` is the correlation of a
        unit-variance signal with its noisy view. ``quality=1`` gives
        noise-free classifiers that still suffer the subgroup shifts and their
        miscalibration; values near 0 give nearly uninformative ones.
    diversity : float, default=0.5
        Independence of the classifiers' noise, in [0, 1]: 0 means every
        classifier shares the same noise (fully correlated errors), 1 means
        independent noise. The latent noise and the subgroup shifts are shared
        at any diversity.
    n_subgroups : int, default=8
        Number of subgroups with a shared shift (hard regions), at least 1.
        Rows are assigned to subgroups uniformly at random.
    labeled_fraction : float, default=1.0
        Fraction of rows marked as labeled, in (0, 1]. Exactly
        ``max(1, round(labeled_fraction * n_samples))`` rows are labeled,
        stratified by class so that every class present has a labeled row when
        the count allows it.
    random_state : int, RandomState instance, Generator or None, default=None
        Seed of every random draw. The same integer gives identical output.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        R : ndarray of shape (n_samples, q)
            Base probabilities in [0, 1]. Binary: ``q = n_classifiers`` and
            column ``j`` is classifier ``j``'s ``P(y = 1)``. Multiclass:
            ``q = n_classifiers * n_classes`` and column ``j * n_classes + k``
            is classifier ``j``'s ``P(y = k)``; each classifier's ``K``
            columns sum to 1.
        y : ndarray of shape (n_samples,)
            Integer labels in ``0 .. K - 1`` (binary: 1 is the minority).
        labeled : ndarray of shape (n_samples,), dtype bool
            Which rows are labeled.
        posterior : ndarray of shape (n_samples, n_classes)
            The exact ``p(y | mu_i)`` of the generating model, rows summing to
            1, with the realized class frequencies as the prior.
        n_classes : int
            Number of classes ``K``.
        subgroup : ndarray of shape (n_samples,)
            Subgroup of each row.
        classifier_quality : ndarray of shape (n_classifiers,)
            Quality ``q_j`` of each classifier.

    Examples
    --------
    >>> from skcfe.datasets import make_probability_matrix
    >>> data = make_probability_matrix(200, 5, random_state=0)
    >>> data.R.shape, data.y.shape, data.posterior.shape
    ((200, 5), (200,), (200, 2))
    """
    _check_positive_rate(positive_rate, n_classes)
    # Python scalars, so that numpy scalars of any precision draw the same data.
    n_samples, n_classifiers, n_classes, n_subgroups = (
        int(v) for v in (n_samples, n_classifiers, n_classes, n_subgroups)
    )
    positive_rate, quality, diversity, labeled_fraction = (
        float(v) for v in (positive_rate, quality, diversity, labeled_fraction)
    )
    rng_labels, rng_latent, rng_groups, rng_clf, rng_noise, rng_mask = _child_generators(
        random_state, 6
    )

    K, m, n = n_classes, n_classifiers, n_samples
    priors = _class_priors(K, positive_rate)
    y, counts = _draw_labels(priors, n, rng_labels)
    mu = _SEPARATION * np.eye(K)[y] + rng_latent.standard_normal((n, K))
    posterior = _softmax(_log_priors(counts) + _SEPARATION * mu)

    shifts = _SUBGROUP_SCALE * rng_groups.standard_normal((n_subgroups, K))
    subgroup = rng_groups.integers(n_subgroups, size=n)
    row_shift = shifts[subgroup]

    # One row of draws per classifier, so adding classifiers leaves the
    # existing ones unchanged.
    z = rng_clf.standard_normal((m, 2 + K))
    q = quality ** np.exp(_QUALITY_SPREAD * z[:, 0])
    temperature = np.exp(_TEMPERATURE_SPREAD * z[:, 1])
    offsets = _BIAS_SCALE * z[:, 2:]
    # The shared noise enters every classifier with the same loading (that of
    # the nominal quality): with unequal loadings, contrasts between
    # classifiers would cancel it exactly and "shared" errors would not be
    # shared. Individual noise carries each classifier's own quality.
    shared_scale = np.sqrt(1.0 - diversity) * _noise_scale(quality)
    own_scale = np.sqrt(diversity) * _noise_scale(q)
    # Every classifier scales its evidence as if it had the nominal quality:
    # weak classifiers are then over-confident and strong ones
    # under-confident, as in real ensembles, which is what makes the plain
    # mean of probabilities worse than a learned weighting.
    nominal_var = 1.0 + _SUBGROUP_SCALE**2 + _noise_scale(quality) ** 2

    # The subgroup shift and shared noise are common to all classifiers with
    # equal weight, so no affine combination of their views removes them.
    common = mu + row_shift + shared_scale * rng_noise.standard_normal((n, K))
    log_prior = np.log(priors)
    probs = np.empty((n, m, K))
    for j in range(m):
        view = common + own_scale[j] * rng_noise.standard_normal((n, K))
        logits = temperature[j] * (log_prior + _SEPARATION * view / nominal_var)
        probs[:, j, :] = _softmax(logits + offsets[j])

    R = probs[:, :, 1] if K == 2 else probs.reshape(n, m * K)
    R = np.clip(R, 0.0, 1.0)
    labeled = _labeled_mask(y, K, labeled_fraction, rng_mask)
    return Bunch(
        R=R,
        y=y,
        labeled=labeled,
        posterior=posterior,
        n_classes=K,
        subgroup=subgroup,
        classifier_quality=q,
    )


@validate_params(
    {
        **_COMMON_CONSTRAINTS,
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "class_sep": [Interval(Real, 0, 1000, closed="right")],
        "n_informative": [Interval(Integral, 1, None, closed="left")],
        "label_noise": [Interval(Real, 0, 1, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def make_imbalanced_classification(
    n_samples=2000,
    n_features=20,
    *,
    n_classes=2,
    positive_rate=0.1,
    class_sep=1.0,
    n_informative=5,
    n_subgroups=3,
    label_noise=0.0,
    labeled_fraction=1.0,
    random_state=None,
):
    """Generate an imbalanced classification problem with a known posterior.

    Labels are drawn first with fixed class counts. The ``n_informative``
    informative features of a row of class ``k`` come from one of
    ``n_subgroups`` Gaussian clusters of that class (random centres scaled by
    ``class_sep``, random correlated covariances, Dirichlet cluster weights).
    Clusters of different classes that land close together form hard regions.
    The other features are independent standard normal noise. A random
    quarter of all columns is then passed through the monotone map
    ``exp(x / (3 * max(1, class_sep)))``, which skews their marginals without
    changing ``p(y | x)``. The Bayes posterior is therefore a ratio of Gaussian mixture
    densities with quadratic, multi-modal boundaries, so linear models, naive
    Bayes, trees and nearest neighbours all err, and differently. With label
    noise, a fraction of the labels is redrawn from the class prior.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of rows, at least 1.
    n_features : int, default=20
        Number of columns, at least ``n_informative``.
    n_classes : int, default=2
        Number of classes ``K``, at least 2.
    positive_rate : float, default=0.1
        Frequency of the rarest class: class 1 for binary problems (in
        (0, 0.5]); class ``K - 1`` for ``K > 2`` (in (0, 1/K]), with the other
        classes sharing the rest equally.
    class_sep : float, default=1.0
        Scale of the cluster centres, in (0, 1000]. Larger values separate the
        classes more; beyond about 10 they are essentially disjoint.
    n_informative : int, default=5
        Number of informative features, in [1, n_features].
    n_subgroups : int, default=3
        Number of Gaussian clusters per class, at least 1.
    label_noise : float, default=0.0
        Probability in [0, 1) that a row's label is replaced by a draw from
        the class prior. The class frequencies are unchanged in expectation,
        and the posterior becomes ``(1 - label_noise) * p_clean +
        label_noise * prior``.
    labeled_fraction : float, default=1.0
        Fraction of rows marked as labeled, in (0, 1]. Exactly
        ``max(1, round(labeled_fraction * n_samples))`` rows are labeled,
        stratified by class.
    random_state : int, RandomState instance, Generator or None, default=None
        Seed of every random draw. The same integer gives identical output.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        X : ndarray of shape (n_samples, n_features)
            Features.
        y : ndarray of shape (n_samples,)
            Integer labels in ``0 .. K - 1`` (binary: 1 is the minority).
        labeled : ndarray of shape (n_samples,), dtype bool
            Which rows are labeled.
        posterior : ndarray of shape (n_samples, n_classes)
            The exact ``p(y | x)`` of the generator, rows summing to 1.
        n_classes : int
            Number of classes ``K``.
        subgroup : ndarray of shape (n_samples,)
            Cluster of each row within its (noise-free) class.
        informative : ndarray of shape (n_informative,)
            Column indices of the informative features.

    Examples
    --------
    >>> from skcfe.datasets import make_imbalanced_classification
    >>> data = make_imbalanced_classification(500, 8, random_state=0)
    >>> data.X.shape, data.posterior.shape
    ((500, 8), (500, 2))
    """
    if n_informative > n_features:
        raise ValueError(
            f"n_informative must not exceed n_features; got n_informative="
            f"{n_informative} > n_features={n_features}. Lower n_informative or "
            "raise n_features."
        )
    _check_positive_rate(positive_rate, n_classes)
    # Python scalars, so that numpy scalars of any precision draw the same data.
    n_samples, n_features, n_classes, n_informative, n_subgroups = (
        int(v) for v in (n_samples, n_features, n_classes, n_informative, n_subgroups)
    )
    positive_rate, class_sep, label_noise, labeled_fraction = (
        float(v) for v in (positive_rate, class_sep, label_noise, labeled_fraction)
    )
    (rng_labels, rng_clusters, rng_rows, rng_columns, rng_noise, rng_mask) = _child_generators(
        random_state, 6
    )

    K, G, p, n = n_classes, n_subgroups, n_informative, n_samples
    y_clean, counts = _draw_labels(_class_priors(K, positive_rate), n, rng_labels)

    centers = class_sep * _CENTER_SCALE * rng_clusters.standard_normal((K, G, p))
    rotations = np.linalg.qr(rng_clusters.standard_normal((K, G, p, p)))[0]
    eigen = rng_clusters.uniform(*_EIGEN_RANGE, size=(K, G, p))
    chol = rotations * np.sqrt(eigen)[:, :, None, :]  # Sigma = chol @ chol.T
    weights = rng_clusters.dirichlet(np.full(G, _SUBGROUP_CONCENTRATION), size=K)

    # Each row picks its cluster by inverse CDF on one uniform, so the draw
    # count does not depend on the class composition.
    u = rng_rows.random(n)
    cdf = np.cumsum(weights, axis=1)
    subgroup = np.minimum((u[:, None] > cdf[y_clean]).sum(axis=1), G - 1)
    latent = rng_rows.standard_normal((n, p))
    informative_values = centers[y_clean, subgroup] + np.einsum(
        "nij,nj->ni", chol[y_clean, subgroup], latent
    )

    # log p(x_inf | k) = logsumexp_g [log w_kg + log N(x_inf; c_kg, Sigma_kg)];
    # the noise features have the same density under every class and cancel.
    log_density = np.empty((n, K, G))
    for k in range(K):
        for g in range(G):
            rotation, scale = rotations[k, g], np.sqrt(eigen[k, g])
            whitened = ((informative_values - centers[k, g]) @ rotation) / scale
            log_density[:, k, g] = (
                np.log(weights[k, g]) - 0.5 * np.sum(whitened**2, axis=1) - np.sum(np.log(scale))
            )
    log_joint = _log_priors(counts) + logsumexp(log_density, axis=2)
    posterior = _softmax(log_joint)

    X = np.empty((n, n_features))
    columns = rng_columns.permutation(n_features)
    informative = np.sort(columns[:p])
    # Keep the informative features in their drawn order inside the sorted
    # column slots; which slot holds which is irrelevant to the posterior.
    X[:, informative] = informative_values
    noise_columns = np.setdiff1d(np.arange(n_features), informative)
    X[:, noise_columns] = rng_columns.standard_normal((n, noise_columns.size))
    warped = rng_columns.random(n_features) < _WARP_FRACTION
    X[:, warped] = np.exp(X[:, warped] / (3.0 * max(1.0, class_sep)))

    # Draw replacement labels for every row so the stream does not depend on
    # how many rows flip.
    flip = rng_noise.random(n) < label_noise
    redrawn = rng_noise.choice(K, size=n, p=counts / n)
    y = np.where(flip, redrawn, y_clean)
    posterior = (1.0 - label_noise) * posterior + label_noise * (counts / n)

    labeled = _labeled_mask(y, K, labeled_fraction, rng_mask)
    return Bunch(
        X=X,
        y=y,
        labeled=labeled,
        posterior=posterior,
        n_classes=K,
        subgroup=subgroup,
        informative=informative,
    )
