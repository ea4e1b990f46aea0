"""The configuration file: one module per section (its typed settings and their checks), the shared
checks that word every error as ``file:line: field: what is wrong``, and :class:`Config`, the whole file.

>>> from rollguard.settings import Config, parse_config
>>> parse_config("alpha: 0.02").alpha, Config().alpha
(0.02, 0.01)
"""

from rollguard.settings.config import Config, ConfigError, load_config, parse_config

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]
