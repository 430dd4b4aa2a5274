"""The error types stackgan reports: every one is a :class:`StackGANError`.

The command line turns a ``StackGANError`` (and a bad value or a file-system error) into one
clean line instead of a traceback (``stackgan -v`` shows it). Each error type lives next to the
code that raises it and subclasses ``StackGANError`` as well as the built-in type it always
was (``ConfigError`` is still a ``ValueError``, ``RunDirError`` a ``FileExistsError``), so
existing ``except ValueError`` code keeps working. This module imports nothing from the
package, so any layer can use it.

Where they are: ``ConfigError`` (config_parse), ``DatasetError`` (data.io), ``CheckpointError``
(checkpoint), ``ConvertError`` (convert), ``TextEncoderError`` and ``CaptionError`` (text.base),
``Torch7Error`` (text.torch7), ``MetricError`` (metrics.base), ``EfficientNetError``
(models.efficientnet), ``RunDirError`` (train.rundir), ``DeviceError`` (utils.runtime),
``TextFileError`` (utils.textio), ``ImageFileError`` (utils.images), ``ArchiveError``
(utils.archive), ``WriteError`` (utils.cache), and :class:`TrainingError` here.
"""

from __future__ import annotations


class StackGANError(Exception):
    """Base of the errors the library raises for bad input, files or runs (one CLI line)."""


class TrainingError(StackGANError, RuntimeError):
    """Training cannot go on (a NaN or infinite loss or weight); names the iteration."""
