"""The report as one self-contained HTML page: charts, the numbers under them, no network.

`upsell.report.page` renders a `upsell.domain.report.Report` into the page; `numbers` formats
money and ratios for the report's locale; `charts` holds what every section shares (its value
types, the layout and colours of the Plotly figures); `revenue` and `offers` build the sections.
"""
