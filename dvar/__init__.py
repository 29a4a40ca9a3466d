"""dvar: masked discrete diffusion vs autoregression on reasoning and planning tasks."""

__version__ = "0.1.0"
