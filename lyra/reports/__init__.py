"""lyra.reports: offline HTML tear sheets of a session or a research backtest."""
