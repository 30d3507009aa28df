"""skcfe: scikit-learn compatible stacking through CF-Ensemble."""

from ._classifier import CFEnsembleClassifier
from ._library import default_estimators, model_library
from ._losses import focal_loss, focal_loss_gradient
from ._posterior import focal_posterior_correction
from ._transformer import CFEnsembleTransformer
from .level1.display import SelectionDisplay

__version__ = "0.1.0"

__all__ = [
    "CFEnsembleClassifier",
    "CFEnsembleTransformer",
    "SelectionDisplay",
    "__version__",
    "default_estimators",
    "focal_loss",
    "focal_loss_gradient",
    "focal_posterior_correction",
    "model_library",
]
