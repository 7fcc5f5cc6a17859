"""Reading run records into comparisons, the alignment-tax table and HTML reports (``evalsuite.reports``)."""
