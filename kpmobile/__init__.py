"""kpmobile: benchmark keypoint and detection models on Android phones and servers."""

__version__ = "0.1.0"
