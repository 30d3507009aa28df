"""SelectionDisplay: every candidate combiner's selection score, and the choice."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .selection import default_scoring


class SelectionDisplay:
    """Plot of the level-1 selection of a fitted :class:`CFEnsembleClassifier`.

    One row per candidate: the score of its pooled out-of-fold predictions,
    with the spread of its fold scores (one standard deviation). The
    candidates that predict (the chosen one, or the Super Learner's members,
    each labelled with its pool weight) are drawn in a different colour.
    Build it with :meth:`from_estimator`.

    Parameters
    ----------
    candidates : list of str
        Candidate names.
    mean_scores, std_scores : ndarray of shape (n_candidates,)
    chosen : list of str
        Names of the candidates in use.
    scoring : str
        Label of the score axis.
    weights : ndarray of shape (n_candidates,) or None
        Super Learner pool weights, written beside the members.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    errorbar_ : list of matplotlib containers

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from skcfe import CFEnsembleClassifier, SelectionDisplay
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = CFEnsembleClassifier(
    ...     [("nb", GaussianNB()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))],
    ...     cv=3, random_state=0,
    ... ).fit(X, y)
    >>> display = SelectionDisplay.from_estimator(clf)
    >>> len(display.ax_.get_yticklabels()) == len(clf.selection_results_["candidate"])
    True
    """

    def __init__(
        self,
        candidates: Sequence[str],
        mean_scores: ArrayLike,
        std_scores: ArrayLike,
        chosen: Sequence[str],
        scoring: str = "score",
        weights: ArrayLike | None = None,
    ) -> None:
        self.candidates = list(candidates)
        self.mean_scores = np.asarray(mean_scores, dtype=float)
        self.std_scores = np.asarray(std_scores, dtype=float)
        self.chosen = list(chosen)
        self.scoring = scoring
        self.weights = weights

    @classmethod
    def from_estimator(cls, estimator: BaseEstimator, *, ax: Any = None) -> "SelectionDisplay":
        """Plot the selection of a fitted classifier (``combiner='auto'``).

        Parameters
        ----------
        estimator : CFEnsembleClassifier or Pipeline
            Fitted with a selection (``combiner`` 'auto', 'select' or a list
            of candidates); a fitted Pipeline whose last step is one.
        ax : matplotlib Axes, default=None
            Axes to plot on; a new figure when None.

        Returns
        -------
        display : SelectionDisplay
        """
        if isinstance(estimator, Pipeline):
            estimator = estimator[-1]
        if not hasattr(estimator, "combiner"):
            raise TypeError(
                "SelectionDisplay.from_estimator needs a CFEnsembleClassifier (or a Pipeline "
                f"ending in one); got {type(estimator).__name__}."
            )
        check_is_fitted(estimator, "combiner_")
        results = estimator.selection_results_
        if results is None:
            raise ValueError(
                f"This classifier ran no selection (combiner_={estimator.combiner_!r}: "
                "combiner='cf' or a single estimator, or too few labeled rows of a class for "
                "the selection's cross-validation); refit it with combiner='auto' to plot one."
            )
        scoring = estimator.scoring
        if scoring is None:
            scoring = default_scoring(len(estimator.classes_))
        label = scoring if isinstance(scoring, str) else getattr(scoring, "__name__", "score")
        weights = results.get("weight")
        if estimator.combiner_ == "super_learner":
            chosen = [c for c, w in zip(results["candidate"], weights) if w > 0]
        else:
            chosen, weights = [estimator.combiner_], None
        display = cls(results["candidate"], results["pooled_test_score"],
                      results["std_test_score"], chosen, scoring=label, weights=weights)
        return display.plot(ax=ax)

    def plot(self, ax: Any = None) -> "SelectionDisplay":
        """Draw the plot.

        Parameters
        ----------
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : SelectionDisplay
            With ``ax_``, ``figure_`` and ``errorbar_`` set.
        """
        import matplotlib.pyplot as plt

        new_figure = ax is None
        if new_figure:
            _, ax = plt.subplots(figsize=(7, 0.35 * len(self.candidates) + 1.2))
        rows = np.arange(len(self.candidates))[::-1]
        chosen = np.array([name in self.chosen for name in self.candidates])
        self.errorbar_ = []
        for mask, color, label in ((~chosen, "C0", "candidate"), (chosen, "C3", "chosen")):
            if mask.any():
                self.errorbar_.append(ax.errorbar(
                    self.mean_scores[mask], rows[mask], xerr=self.std_scores[mask],
                    fmt="o", color=color, capsize=3, label=label,
                ))
        if self.weights is not None:
            for row, mean, weight in zip(rows, self.mean_scores, self.weights):
                if weight > 0:
                    ax.annotate(f"w={weight:.2f}", (mean, row), textcoords="offset points",
                                xytext=(6, 4), fontsize="x-small")
        ax.set_yticks(rows, self.candidates)
        ax.set_xlabel(f"inner-CV {self.scoring} (pooled out-of-fold; bars: std over folds)")
        ax.legend(loc="best", fontsize="small")
        if new_figure:  # room for the longest candidate name
            ax.figure.tight_layout()
        self.ax_, self.figure_ = ax, ax.figure
        return self
