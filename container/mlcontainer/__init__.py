"""Training, evaluation and serving code of the abalone model, one image for every SageMaker job.

``mlcontainer preprocess|train|evaluate|serve`` (or the image's ``preprocess``, ``train``,
``evaluate`` and ``serve`` commands) runs one step of the lifecycle under ``/opt/ml``, or
under ``$ML_PREFIX`` for local runs.
"""

__version__ = "1.0.0"
