"""aekit: image autoencoders."""
__version__ = "0.1.0"
