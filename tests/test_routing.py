"""fit's plumbing: metadata routing, groups, cv='prefit' and verbose progress."""

import re
from typing import ClassVar

import numpy as np
import pytest
import sklearn
from joblib import Memory
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GroupKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_validate,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from skcfe import CFEnsembleClassifier, CFEnsembleTransformer
from skcfe._matrix import cv_splits

from .conftest import light_estimators

N = 120
X, Y = make_classification(n_samples=N, n_features=5, n_informative=3, random_state=0)
ROW_ID = np.arange(N, dtype=float)
X_ID = np.column_stack([ROW_ID, X])  # column 0 identifies the row for the recorders
WEIGHTS = np.random.default_rng(0).uniform(0.5, 2.0, N)
GROUPS = np.arange(N) % 15  # 15 groups of 8 rows, both classes in most


def routing(enabled):
    return sklearn.config_context(enable_metadata_routing=enabled)


class WeightRecorder(GaussianNB):
    """GaussianNB that logs the rows and sample weights of each fit (class-level log)."""

    log: ClassVar[list] = []

    def fit(self, X, y, sample_weight=None):
        type(self).log.append((np.asarray(X)[:, 0].astype(int),
                               None if sample_weight is None else np.asarray(sample_weight)))
        return super().fit(X, y, sample_weight=sample_weight)


class MetadataRecorder(GaussianNB):
    """GaussianNB whose fit takes an arbitrary metadata ``tag`` and logs it per fit."""

    log: ClassVar[list] = []

    def fit(self, X, y, tag=None):
        type(self).log.append((np.asarray(X)[:, 0].astype(int), tag))
        return super().fit(X, y)


class GroupRecorder(GaussianNB):
    """GaussianNB that logs, per predict_proba, the rows it was fitted on and the rows it predicts."""

    log: ClassVar[list] = []

    def fit(self, X, y, sample_weight=None):
        self.fit_rows_ = np.asarray(X)[:, 0].astype(int)
        return super().fit(X, y, sample_weight=sample_weight)

    def predict_proba(self, X):
        type(self).log.append((self.fit_rows_, np.asarray(X)[:, 0].astype(int)))
        return super().predict_proba(X)


@pytest.fixture(autouse=True)
def _clear_logs():
    for recorder in (WeightRecorder, MetadataRecorder, GroupRecorder):
        recorder.log = []


def fold_rows(cv=3, y=Y):
    return [train for train, _ in StratifiedKFold(cv).split(X_ID, y)]


# -- metadata routing ------------------------------------------------------


def test_requested_sample_weight_reaches_pipeline_steps_in_folds_and_refit():
    with routing(True):
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=True),
                             WeightRecorder().set_fit_request(sample_weight=True))
        clf = CFEnsembleClassifier([("pipe", pipe)], cv=3, combiner="cf", random_state=0)
        clf.fit(X_ID, Y, sample_weight=WEIGHTS)
    expected = fold_rows() + [np.arange(N)]
    assert len(WeightRecorder.log) == len(expected)
    for (_, weight), train in zip(WeightRecorder.log, expected):
        np.testing.assert_array_equal(weight, WEIGHTS[train])  # the weights of those rows
    # The scaler got them too: its statistics are weighted.
    scaler = clf.estimators_[0][0]
    np.testing.assert_allclose(scaler.mean_, np.average(X_ID, axis=0, weights=WEIGHTS))


def test_routing_with_every_weight_requested_gives_the_unrouted_model():
    def make(requested):
        ests = [("pipe", make_pipeline(StandardScaler(), LogisticRegression())),
                ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))]
        if requested:
            ests[0][1][0].set_fit_request(sample_weight=True)
            ests[0][1][1].set_fit_request(sample_weight=True)
            ests[1][1].set_fit_request(sample_weight=True)
        return CFEnsembleClassifier(ests, cv=3, random_state=0)

    plain = make(False).fit(X, Y, sample_weight=WEIGHTS)
    with routing(True):  # set_fit_request exists only then
        routed = make(True).fit(X, Y, sample_weight=WEIGHTS)
        proba = routed.predict_proba(X)
    np.testing.assert_allclose(proba, plain.predict_proba(X))


def test_default_estimators_request_sample_weight_under_routing():
    with routing(True):
        clf = CFEnsembleClassifier(cv=2, combiner="cf", random_state=0)
        routed = clf.fit(X, Y, sample_weight=WEIGHTS).predict_proba(X)
    plain = CFEnsembleClassifier(cv=2, combiner="cf", random_state=0)
    np.testing.assert_allclose(routed, plain.fit(X, Y, sample_weight=WEIGHTS).predict_proba(X))


def test_declined_sample_weight_is_not_passed_and_the_fit_succeeds():
    with routing(True):
        ests = [("nb", WeightRecorder().set_fit_request(sample_weight=False)),
                ("knn", KNeighborsClassifier())]  # takes no sample_weight at all
        clf = CFEnsembleClassifier(ests, cv=3, combiner="cf", random_state=0)
        clf.fit(X_ID, Y, sample_weight=WEIGHTS)
        unweighted = CFEnsembleClassifier(ests, cv=3, combiner="cf", random_state=0).fit(X_ID, Y)
    assert len(WeightRecorder.log) == 8 and all(w is None for _, w in WeightRecorder.log)
    # skcfe itself still consumes the weights (the supervised term).
    assert not np.allclose(clf.coef_, unweighted.coef_)


def test_unset_request_under_routing_names_the_estimator_and_the_fix():
    with routing(True), pytest.raises(Exception, match=r"GaussianNB.set_fit_request"):
        CFEnsembleClassifier([("nb", GaussianNB())], cv=3).fit(X, Y, sample_weight=WEIGHTS)


def test_arbitrary_metadata_reaches_the_base_estimator_that_requests_it():
    tag = np.arange(N) * 10
    with routing(True):
        ests = [("rec", MetadataRecorder().set_fit_request(tag=True))] + light_estimators()
        CFEnsembleClassifier(ests, cv=3, combiner="cf", random_state=0).fit(X_ID, Y, tag=tag)
    expected = fold_rows() + [np.arange(N)]
    assert len(MetadataRecorder.log) == 4
    for (rows, got), train in zip(MetadataRecorder.log, expected):
        np.testing.assert_array_equal(rows, train)
        np.testing.assert_array_equal(got, tag[train])  # indexed with the rows


def test_aliased_metadata_is_passed_under_its_own_name():
    with routing(True):
        nb = WeightRecorder().set_fit_request(sample_weight="nb_weight")
        CFEnsembleClassifier([("nb", nb)], cv=3, combiner="cf").fit(X_ID, Y, nb_weight=WEIGHTS)
    np.testing.assert_array_equal(WeightRecorder.log[-1][1], WEIGHTS)


def test_metadata_without_routing_is_an_error_that_says_to_enable_it():
    clf = CFEnsembleClassifier(light_estimators(), cv=3)
    with pytest.raises(ValueError, match="only supported if enable_metadata_routing=True"):
        clf.fit(X, Y, tag=np.arange(N))
    with routing(True), pytest.raises(TypeError, match=r"unexpected argument\(s\) \{'tag'\}"):
        clf.fit(X, Y, tag=np.arange(N))  # nobody requests it


def test_metadata_routing_object():
    with routing(True):
        ests = [("nb", GaussianNB().set_fit_request(sample_weight=True)),
                ("knn", KNeighborsClassifier())]
        router = CFEnsembleClassifier(ests, cv=GroupKFold(3)).get_metadata_routing()
        assert router.consumes("fit", ["sample_weight", "groups", "tag"]) == {"sample_weight", "groups"}
        # skcfe consumes sample_weight itself, and requests nothing by default
        transformer = CFEnsembleTransformer(ests).set_fit_request(sample_weight=True)
        assert transformer.get_metadata_routing().consumes("fit", ["groups"]) == set()
        prefit = CFEnsembleClassifier(ests, cv="prefit").get_metadata_routing()
        assert prefit.consumes("fit", ["sample_weight", "groups"]) == set()


def test_transformer_in_a_pipeline_under_routing():
    with routing(True):
        cfe = CFEnsembleTransformer([("nb", WeightRecorder().set_fit_request(sample_weight=True))],
                                    cv=3, random_state=0).set_fit_request(sample_weight=True)
        pipe = make_pipeline(cfe, LogisticRegression().set_fit_request(sample_weight=True))
        pipe.fit(X_ID, Y, sample_weight=WEIGHTS)
    np.testing.assert_array_equal(WeightRecorder.log[-1][1], WEIGHTS)


# -- groups ----------------------------------------------------------------


def leaked_groups(log, groups, refit_rows=None):
    """Groups on both sides of a fold fit: fitted on and predicted by one model."""
    leaks = set()
    for fit_rows, predicted in log:
        if refit_rows is not None and np.array_equal(fit_rows, refit_rows):
            continue  # the refit predicting unlabeled rows, not a fold
        leaks |= set(groups[fit_rows]) & set(groups[predicted])
    return leaks


@pytest.mark.parametrize("routed", [False, True])
@pytest.mark.parametrize("cv", [GroupKFold(3), StratifiedGroupKFold(3)])
def test_no_group_is_split_between_a_fold_fit_and_its_predictions(routed, cv):
    with routing(routed):
        clf = CFEnsembleClassifier([("rec", GroupRecorder())], cv=cv, combiner="cf", random_state=0)
        clf.fit(X_ID, Y, groups=GROUPS)
    fold_log = GroupRecorder.log[:3]  # fit's fold fits; later calls are the refit's
    assert len(fold_log) == 3
    assert sorted(np.concatenate([rows for _, rows in fold_log])) == list(range(N))
    assert leaked_groups(fold_log, GROUPS) == set()


def test_without_groups_the_folds_do_split_groups():
    # The recorder detects leaks: the test above can fail.
    CFEnsembleClassifier([("rec", GroupRecorder())], cv=3, combiner="cf").fit(X_ID, Y)
    assert leaked_groups(GroupRecorder.log[:3], GROUPS)


def test_group_folds_as_a_pure_function():
    splits = cv_splits(StratifiedGroupKFold(4), X, Y, {"groups": GROUPS})
    assert len(splits) == 4
    for train, test in splits:
        assert not set(GROUPS[train]) & set(GROUPS[test])


@pytest.mark.parametrize("routed", [False, True])
def test_groups_in_semi_supervised_mode(routed):
    y = Y.copy()
    y[::4] = -1
    labeled = np.flatnonzero(y != -1)
    with routing(routed):
        clf = CFEnsembleClassifier([("rec", GroupRecorder())] + light_estimators(),
                                   cv=GroupKFold(3), unlabeled_label=-1, random_state=0)
        clf.fit(X_ID, y, groups=GROUPS)
    fold_log = GroupRecorder.log[:3]
    assert sorted(np.concatenate([rows for _, rows in fold_log])) == list(labeled)
    assert leaked_groups(fold_log, GROUPS) == set()
    assert set(clf.predict(X_ID)) <= {0, 1}


def test_outer_search_routes_groups_to_the_inner_splitter():
    clf = CFEnsembleClassifier([("rec", GroupRecorder())], cv=GroupKFold(3), combiner="cf")
    with routing(True):
        result = cross_validate(clf, X_ID, Y, cv=GroupKFold(2), params={"groups": GROUPS})
    assert np.all(result["test_score"] > 0.5)
    # 2 outer fits, each: 3 inner fold predictions, then the outer test rows.
    inner = [entry for k, entry in enumerate(GroupRecorder.log) if k % 4 < 3]
    assert len(inner) == 6 and leaked_groups(inner, GROUPS) == set()


@pytest.mark.parametrize("routed", [False, True])
@pytest.mark.parametrize("params", [{"cv": 3}, {"cv": "prefit", "combiner": "cf"}])
def test_groups_with_folds_that_ignore_them_are_an_error(routed, params):
    ests = [(name, est.fit(X, Y)) for name, est in light_estimators()]
    with routing(routed), pytest.raises(ValueError, match="got groups, but"):
        CFEnsembleClassifier(ests, **params).fit(X, Y, groups=GROUPS)


def test_groups_of_the_wrong_length():
    with pytest.raises(ValueError, match="groups has 119 entries but X has 120 rows"):
        CFEnsembleClassifier(light_estimators(), cv=GroupKFold(3)).fit(X, Y, groups=GROUPS[:-1])


def test_the_cache_keys_on_groups_and_routed_metadata(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    with routing(True):
        clf = CFEnsembleClassifier([("rec", MetadataRecorder().set_fit_request(tag=True))],
                                   cv=GroupKFold(3), combiner="cf", memory=memory)

        def fits(**metadata):
            before = len(MetadataRecorder.log)
            clf.fit(X_ID, Y, **metadata)
            return len(MetadataRecorder.log) - before

        assert fits(groups=GROUPS, tag=ROW_ID) == 4
        assert fits(groups=GROUPS, tag=ROW_ID) == 0
        assert fits(groups=GROUPS, tag=ROW_ID + 1) == 4  # other metadata
        other_groups = np.arange(N) // 8  # blocks of rows instead of stripes
        assert fits(groups=other_groups, tag=ROW_ID + 1) == 4  # other folds
        assert fits(groups=other_groups, tag=ROW_ID + 1) == 0


# -- cv='prefit' and FrozenEstimator --------------------------------------


def fitted_on_half(labels):
    """Base estimators fitted on the first half of the rows, with the user's labels."""
    return [(name, est.fit(X[: N // 2], labels[: N // 2])) for name, est in light_estimators()]


@pytest.mark.parametrize("labels", [Y, np.array(["no", "yes"])[Y]])
def test_prefit_uses_the_estimators_as_they_are(labels):
    ests = fitted_on_half(labels)
    X2, y2 = X[N // 2:], labels[N // 2:]
    params = {n: e.get_params() for n, e in ests}
    clf = CFEnsembleClassifier(ests, cv="prefit", combiner="cf", random_state=0).fit(X2, y2)
    assert all(fitted is est for fitted, (_, est) in zip(clf.estimators_, ests))
    assert clf.named_estimators_["nb"] is ests[0][1]
    assert {n: e.get_params() for n, e in ests} == params
    # R is their predict_proba on X: the same model as on that matrix precomputed.
    R = np.column_stack([est.predict_proba(X2)[:, 1] for _, est in ests])
    pre = CFEnsembleClassifier("precomputed", combiner="cf", random_state=0).fit(R, y2)
    R_new = np.column_stack([est.predict_proba(X[:10])[:, 1] for _, est in ests])
    np.testing.assert_allclose(clf.predict_proba(X[:10]), pre.predict_proba(R_new))
    assert list(clf.classes_) == sorted(set(labels))


@pytest.mark.parametrize("routed", [False, True])
def test_prefit_with_sample_weight_reaches_only_the_combiner(routed):
    knn = KNeighborsClassifier().fit(X[: N // 2], Y[: N // 2])  # its fit takes no weights
    ests = [("knn", knn), ("nb", GaussianNB().fit(X[: N // 2], Y[: N // 2]))]
    X2, y2, w2 = X[N // 2:], Y[N // 2:], WEIGHTS[N // 2:]
    with routing(routed):
        weighted = CFEnsembleClassifier(ests, cv="prefit", combiner="cf").fit(X2, y2, sample_weight=w2)
    plain = CFEnsembleClassifier(ests, cv="prefit", combiner="cf").fit(X2, y2)
    assert weighted.estimators_[0] is knn
    assert not np.allclose(weighted.coef_, plain.coef_)


def test_prefit_needs_fitted_estimators():
    with pytest.raises(NotFittedError, match="cv='prefit' uses the base estimators as they are, "
                                             "but 'nb' \\(GaussianNB\\) is not fitted"):
        CFEnsembleClassifier(light_estimators(), cv="prefit").fit(X, Y)


def test_prefit_estimator_fitted_on_other_labels_is_explained():
    ests = [("nb", GaussianNB().fit(X, Y + 5))]
    with pytest.raises(ValueError, match=r"'nb' predicts classes \[5, 6\] that y does not have"):
        CFEnsembleClassifier(ests, cv="prefit").fit(X, Y)


@pytest.mark.parametrize("routed", [False, True])
@pytest.mark.parametrize("labels", [Y, np.array(["no", "yes"])[Y]])
def test_frozen_estimators_with_sample_weight_equal_prefit(routed, labels):
    ests = fitted_on_half(labels)
    frozen = [(name, FrozenEstimator(est)) for name, est in ests]
    X2, y2, w2 = X[N // 2:], labels[N // 2:], WEIGHTS[N // 2:]
    with routing(routed):
        clf = CFEnsembleClassifier(frozen, cv=3, combiner="cf", random_state=0)
        clf.fit(X2, y2, sample_weight=w2)
        prefit = CFEnsembleClassifier(ests, cv="prefit", combiner="cf", random_state=0)
        prefit.fit(X2, y2, sample_weight=w2)
        np.testing.assert_allclose(clf.predict_proba(X), prefit.predict_proba(X))
    assert clf.estimators_[0] is frozen[0][1]  # FrozenEstimator clones to itself
    assert clf.score(X2, y2) > 0.7


def test_prefit_in_semi_supervised_mode():
    ests = fitted_on_half(Y)
    y = Y.copy()
    y[::3] = -1
    clf = CFEnsembleClassifier(ests, cv="prefit", unlabeled_label=-1, random_state=0).fit(X, y)
    assert set(clf.predict(X)) <= {0, 1}


# -- verbose ---------------------------------------------------------------


def test_verbose_prints_every_fold_fit_with_its_time_and_the_sweeps(capsys):
    clf = CFEnsembleClassifier(light_estimators(), cv=3, combiner="cf", verbose=1, random_state=0)
    clf.fit(X, Y)
    out = capsys.readouterr().out.splitlines()
    for name in ("nb", "tree"):
        for k in (1, 2, 3):
            assert sum(bool(re.fullmatch(rf"\[skcfe\] \.+ {name}: fold {k} of 3, total=\s+\d+\.\ds",
                                         line)) for line in out) == 1
        assert sum(f"{name}: refit on all {N} rows, total=" in line for line in out) == 1
    sweeps = [line for line in out if line.startswith("[ALS] sweep")]
    assert len(sweeps) == clf.n_iter_ and all("objective=" in line for line in sweeps)
    assert all(len(line) == 70 for line in out if line.startswith("[skcfe]"))


def test_silent_by_default(capsys):
    CFEnsembleClassifier(light_estimators(), cv=3, combiner="cf").fit(X, Y)
    assert capsys.readouterr().out == ""
