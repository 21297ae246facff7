"""upsell: an expansion-revenue engine for subscription and digital-product businesses."""

__version__ = "0.4.0"
