"""fast-style: feed-forward neural style transfer (Johnson et al., 2016) on Lightning and Hydra."""

__version__ = "0.1.0"
