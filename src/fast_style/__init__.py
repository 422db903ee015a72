"""fast-style: feed-forward neural style transfer (Johnson et al., 2016) on Lightning and Hydra."""

__version__ = "0.1.0"

from fast_style.runs import register_resolvers as _register_resolvers

# ${fast_style.run_name:...} in configs/train.yaml: resolvable wherever fast_style is imported.
_register_resolvers()
