"""upsell: an expansion-revenue engine for subscription and digital-product businesses."""

__version__ = "0.5.0"
