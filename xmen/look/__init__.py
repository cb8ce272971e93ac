"""Looking at results: listing, selection, compare, plot, report."""
