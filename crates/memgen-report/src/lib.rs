//! memgen-report: image grids, plots and reports.
