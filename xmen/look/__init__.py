"""Looking at results: listing (the facade over index, rows, columns, render and frames), compare, plot, report,
watch and the ``-p`` predicates."""
