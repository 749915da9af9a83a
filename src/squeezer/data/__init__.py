"""Speech data: Lhotse manifests, importers, the offline synthetic corpus, batching."""
